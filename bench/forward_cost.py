"""Milliseconds per image of the prediction model's forward pass, for model variants side by side.

    .venv/bin/python bench/forward_cost.py [--images 448] [--batch 64] [--variant "NAME=VALUE ..."] ...

Each variant is hwr's default ``ModelConfig`` with the given overrides (an empty string is the
default itself). The images are random ``(40, 160, 1)`` float32 arrays (the cost does not depend on
the pixels); each variant is traced once, then timed three times over all images in batches of
``--batch``, and the best time is printed. Without ``--variant`` a fixed set is timed that splits
the cost between the convolutions and the LSTMs (tiny LSTMs leave the convolutions' share, tiny
convolutions the LSTMs'), see docs/performance.md.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from hwr.cli import parse_config
from hwr.config import ModelConfig
from hwr.model.crnn import build_crnn, prediction_model
from hwr.model.inference import predict_probs

SPLIT = ["", "conv_filters=32,64,128 lstm1_units=128", "conv_filters=16,32,64 lstm1_units=128",
         "lstm2_units=32", "conv_filters=8,16,32", "conv_filters=32,64,128 lstm1_units=8 lstm2_units=8",
         "conv_filters=8,8,8 lstm1_units=128"]
NUM_CLASSES = 80  # about DHSD's charset


def ms_per_image(cfg: ModelConfig, images: np.ndarray, batch: int) -> tuple[float, int]:
    """Best of three passes over ``images`` ``(n, h, w, 1)`` float32: milliseconds per image, and
    the model's parameter count."""
    recognizer = prediction_model(build_crnn(cfg, NUM_CLASSES))
    run = lambda: [predict_probs(recognizer, images[i:i + batch], batch) for i in range(0, len(images), batch)]
    run()
    best = float("inf")
    for _ in range(3):
        started = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - started)
    return 1000 * best / len(images), recognizer.count_params()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=448)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--variant", action="append", help='overrides of the default model, e.g. "lstm1_units=128"')
    args = parser.parse_args()
    for text in args.variant if args.variant is not None else SPLIT:
        cfg = parse_config(ModelConfig, "model", [f"--{p}" for p in text.split()])
        images = np.random.default_rng(0).random((args.images, cfg.img_height, cfg.img_width, 1), np.float32)
        ms, params = ms_per_image(cfg, images, args.batch)
        print(f"{text or '(default)':55} {params:9,} parameters {ms:7.3f} ms per image", flush=True)


if __name__ == "__main__":
    main()
