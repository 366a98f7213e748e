"""Pages in: how closely hwr's line cutting reproduces the published Hooker line images, and what
reading and cutting a page costs.

For each of the four pages in ../shared/data/hooker-pages, every line is cut from the scan with
:func:`hwr.data.pages.cutting.cut_line`, resized to its published image in ../shared/data/hooker
(cut by the data set's authors along the same polygons) and compared: mean absolute difference in
grey levels (0-255), over the whole image and inside the polygon only. Printed for the four
combinations of deskewing and fill, then the time to read a PAGE file and to read and cut a page.

    python bench/page_cutting.py [--repeats 5]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import cv2
import numpy as np
import pandas as pd

from hwr.data.images import load_image
from hwr.data.pages import formats
from hwr.data.pages.cutting import cut_line, page_background

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"


def compare(deskew: bool, white: bool) -> dict:
    labels = pd.read_csv(SHARED / "hooker" / "labels.csv", dtype=str, keep_default_na=False).set_index("image")
    whole, inside = [], []
    for xml in sorted((SHARED / "hooker-pages").glob("*.xml")):
        page = formats.read_page(xml, "pagexml")
        scan = load_image(page.image_path)
        for line in page.lines:
            name = f"lines/{page.page_id}_{line.line_id}.png"
            assert name in labels.index, name
            ref = load_image(SHARED / "hooker" / name).astype(np.float64)
            cut = cut_line(scan, line.polygon, line.baseline if deskew else None, 255 if white else None)
            diff = np.abs(cv2.resize(cut, ref.shape[::-1], interpolation=cv2.INTER_AREA) - ref)
            whole.append(diff.mean())
            inside.append(diff[ref < 255].mean())
    return {"deskew": deskew, "fill": "white" if white else "background", "lines": len(whole),
            "mean_abs_diff": np.mean(whole), "median": np.median(whole), "max": np.max(whole),
            "inside_polygon": np.mean(inside)}


def timings(repeats: int) -> dict:
    files = sorted((SHARED / "hooker-pages").glob("*.xml"))
    read, cut = [], []
    for _ in range(repeats):
        for xml in files:
            started = time.perf_counter()
            page = formats.read_page(xml, "pagexml")
            read.append(time.perf_counter() - started)
            scan = load_image(page.image_path)
            background = page_background(scan)
            for line in page.lines:
                cut_line(scan, line.polygon, line.baseline, background)
            cut.append(time.perf_counter() - started)
    return {"read PAGE file (ms, median)": 1000 * np.median(read),
            "read + decode scan + cut all lines (ms per page, median)": 1000 * np.median(cut)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=5, help="timing repeats over the four pages")
    args = parser.parse_args()
    table = pd.DataFrame([compare(d, w) for d in (False, True) for w in (True, False)])
    print(table.to_string(index=False, float_format=lambda v: f"{v:.1f}"))
    for name, value in timings(args.repeats).items():
        print(f"{name}: {value:.1f}")


if __name__ == "__main__":
    main()
