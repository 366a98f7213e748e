"""Archive formats: PAGE-XML and ALTO pages in (reading, line cutting, splits, bad lines) and out
(transcriptions written back, schema-valid), on the four real Hooker pages and on ALTO files
converted from them with OCR-D's ``page-to-alto`` (``make venv-tools``)."""

from __future__ import annotations

import os
import subprocess
import unicodedata
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest
from lxml import etree

from conftest import HOOKER, ROOT, SHARED, TINY_MODEL

from hwr.config import DataConfig
from hwr.data.images import load_image
from hwr.data.labels import BadInputLog, read_labels
from hwr.data.pages import formats
from hwr.data.pages.cutting import cut_line
from hwr.data.pages.lines import as_csv, line_table
from hwr.errors import BadInputError

PAGES = SHARED / "hooker-pages"
PAGE_NS = "http://schema.primaresearch.org/PAGE/gts/pagecontent/"
PAGE_TO_ALTO = Path(os.environ.get("HWR_PAGE_TO_ALTO", ROOT / ".venv-tools" / "bin" / "page-to-alto"))


def page_folder(tmp: Path, edit=None, version: str = "2013-07-15") -> Path:
    """A copy of the Hooker page files in ``tmp`` (images linked), each optionally edited
    (``edit(tree, ns)``) and moved to another PAGE schema version."""
    tmp.mkdir(parents=True, exist_ok=True)
    for xml in sorted(PAGES.glob("*.xml")):
        (tmp / f"{xml.stem}.jpg").symlink_to(PAGES / f"{xml.stem}.jpg")
        text = xml.read_text(encoding="utf-8").replace(PAGE_NS + "2013-07-15", PAGE_NS + version)
        tree = etree.ElementTree(etree.fromstring(text.encode("utf-8")))
        if edit is not None:
            edit(tree, {"p": PAGE_NS + version})
        tree.write(str(tmp / xml.name), xml_declaration=True, encoding="UTF-8")
    return tmp


@pytest.fixture(scope="module")
def alto_folders(tmp_path_factory) -> dict[str, Path]:
    """The four pages converted to ALTO 4.2, 3.1 and 2.0 by ``page-to-alto`` (images linked)."""
    if not PAGE_TO_ALTO.is_file():
        pytest.fail(f"{PAGE_TO_ALTO} missing: run `make venv-tools` (OCR-D's page-to-alto converter)")
    folders = {}
    for version in ("4.2", "3.1", "2.0"):
        out = tmp_path_factory.mktemp(f"alto{version}")
        for xml in sorted(PAGES.glob("*.xml")):
            command = [str(PAGE_TO_ALTO), "--alto-version", version, "--no-check-words", "--dummy-word",
                       "--no-check-border", "-l", "ERROR", str(xml)]
            alto = subprocess.run(command, check=True, capture_output=True).stdout
            (out / xml.name).write_bytes(alto)
            (out / f"{xml.stem}.jpg").symlink_to(PAGES / f"{xml.stem}.jpg")
        folders[version] = out
    return folders


def hooker_lines() -> pd.DataFrame:
    table = pd.read_csv(HOOKER / "labels.csv", dtype=str, keep_default_na=False)
    pages = {p.stem for p in PAGES.glob("*.xml")}
    table = table[table.page.isin(pages)]
    return table.assign(line_id=[Path(i).stem[len(p) + 1:] for i, p in zip(table.image, table.page)])


# --- pages in ---------------------------------------------------------------------------------

def test_pagexml_lines_are_the_ground_truth_lines():
    truth = hooker_lines()
    read = [(p.page_id, l.line_id, l.text) for xml in sorted(PAGES.glob("*.xml"))
            for p in [formats.read_page(xml, "pagexml")] for l in p.lines]
    assert len(read) == len(truth) == 121
    assert set(read) == set(zip(truth.page, truth.line_id, truth.text))
    first = formats.read_page(PAGES / "JDH_2_16_72_002.xml", "pagexml").lines[0]
    assert first.text == "a very gentlemenly agreeable & apparently" and first.baseline.shape[1] == 2


def test_text_is_normalised_to_nfc(tmp_path):
    def decompose(tree, ns):
        tree.find(".//p:TextLine/p:TextEquiv/p:Unicode", ns).text = "Caf\u0065\u0301"

    folder = page_folder(tmp_path / "pages", decompose)
    text = formats.read_page(folder / "JDH_2_16_72_002.xml", "pagexml").lines[0].text
    assert text == "Caf\u00e9" and unicodedata.is_normalized("NFC", text)


def test_alto_reads_the_same_lines_as_its_page(alto_folders):
    page = formats.read_page(PAGES / "JDH_2_16_73_005.xml", "pagexml")
    for version, folder in alto_folders.items():
        assert formats.detect(folder, folder / "labels.csv") == "alto"
        alto = formats.read_page(folder / "JDH_2_16_73_005.xml", "alto")
        assert [(l.line_id, l.text) for l in alto.lines] == [(l.line_id, l.text) for l in page.lines], version
        assert alto.image_path == folder / "JDH_2_16_73_005.jpg"
        if version != "2.0":  # ALTO 2 has no polygons: the line's box instead
            assert np.array_equal(alto.lines[3].polygon, page.lines[3].polygon)


def test_cut_lines_match_the_published_line_images():
    """Without deskewing and with a white fill (how ../shared/data/hooker was cut), every line cut
    from the pages is within a few grey levels of the published line image."""
    truth = hooker_lines().set_index(["page", "line_id"])
    diffs = []
    for xml in sorted(PAGES.glob("*.xml")):
        page = formats.read_page(xml, "pagexml")
        scan = load_image(page.image_path)
        for line in page.lines:
            cut = cut_line(scan, line.polygon, None, background=255)
            ref = load_image(HOOKER / truth.loc[(page.page_id, line.line_id), "image"])
            resized = cv2.resize(cut, (ref.shape[1], ref.shape[0]), interpolation=cv2.INTER_AREA)
            diffs.append(np.abs(resized.astype(float) - ref).mean())
    assert len(diffs) == 121
    assert np.mean(diffs) < 5.0, np.mean(diffs)


def test_deskew_levels_a_tilted_line():
    page = np.full((200, 400), 230, np.uint8)
    cv2.line(page, (40, 80), (360, 80), 0, 6)
    tilt = cv2.getRotationMatrix2D((200, 100), -8, 1.0)  # clockwise: descends to the right
    page = cv2.warpAffine(page, tilt, (400, 200), borderValue=230)
    corners = np.array([[30, 60], [370, 60], [370, 100], [30, 100]], np.float64)
    polygon = cv2.transform(corners[None], tilt)[0].round().astype(np.int32)
    baseline = cv2.transform(np.array([[[40.0, 80.0], [360.0, 80.0]]]), tilt)[0].round().astype(np.int32)

    def ink_rows(image):
        return int((image < 100).any(axis=1).sum())

    assert ink_rows(cut_line(page, polygon, baseline)) <= 9 < ink_rows(cut_line(page, polygon, None))


def test_a_folder_of_pages_is_detected_and_split_by_page():
    cfg = DataConfig(data=str(PAGES))
    assert formats.detect(PAGES, cfg.labels_path()) == "pagexml"
    table = line_table(cfg.replace(line_cache=str(ROOT / ".pytest_cache" / "lines")), "pagexml", seed=42)
    per_page = table.groupby("page")["split"].nunique()
    assert (per_page == 1).all() and set(table["split"]) == {"train", "val", "test"}
    assert (table["problem"] == "").all() and len(table) == 121


def test_split_by_document_and_from_a_split_file(tmp_path):
    root = tmp_path / "pages"
    for doc, stems in {"letter_a": ["JDH_2_16_72_002", "JDH_2_16_73_002"],
                       "letter_b": ["JDH_2_16_73_005"], "letter_c": ["JDH_2_16_86_004"]}.items():
        (root / doc / "page").mkdir(parents=True)
        for stem in stems:  # the Transkribus layout: images in the document, PAGE files in page/
            (root / doc / f"{stem}.jpg").symlink_to(PAGES / f"{stem}.jpg")
            (root / doc / "page" / f"{stem}.xml").symlink_to(PAGES / f"{stem}.xml")
    cfg = DataConfig(data=str(root), line_cache=str(tmp_path / "cache"), split_by="document")
    table = line_table(cfg, "pagexml", seed=3)
    assert table.groupby("document")["split"].nunique().eq(1).all()
    assert set(table["document"]) == {"letter_a", "letter_b", "letter_c"} and (table["problem"] == "").all()

    split_file = tmp_path / "split.csv"
    pd.DataFrame({"page": ["JDH_2_16_72_002", "JDH_2_16_73_002", "JDH_2_16_73_005"],
                  "split": ["train", "val", "test"]}).to_csv(split_file, index=False)
    with pytest.raises(BadInputError, match="no split for page JDH_2_16_86_004"):
        line_table(cfg.replace(split_file=str(split_file)), "pagexml", seed=3)
    pd.DataFrame({"page": ["JDH_2_16_86_004"], "split": ["train"]}).to_csv(split_file, mode="a", header=False,
                                                                           index=False)
    table = line_table(cfg.replace(split_file=str(split_file)), "pagexml", seed=3)
    assert table.groupby("page")["split"].first().to_dict() == {
        "JDH_2_16_72_002": "train", "JDH_2_16_73_002": "val", "JDH_2_16_73_005": "test", "JDH_2_16_86_004": "train"}


def break_lines(tree, ns):
    """No Coords on the first line of every page, the second line's polygon off the page."""
    lines = tree.findall(".//p:TextLine", ns)
    lines[0].remove(lines[0].find("p:Coords", ns))
    lines[1].find("p:Coords", ns).set("points", "5000,5000 5100,5000 5100,5040 5000,5040")


def test_bad_lines_are_named_under_error_and_counted_under_skip(tmp_path):
    folder = page_folder(tmp_path / "pages", break_lines)
    (folder / "JDH_2_16_86_004.jpg").unlink()  # a page whose image is missing
    cfg = DataConfig(data=str(folder), line_cache=str(tmp_path / "cache"))
    with pytest.raises(BadInputError, match=r"JDH_2_16_72_002.xml, line l_1055: the line has no Coords"):
        line_table(cfg, "pagexml", seed=42)

    skip = cfg.replace(on_bad_input="skip")
    csv_cfg = as_csv(skip, seed=42)
    bad = BadInputLog("skip", csv_cfg.labels_path())
    kept = read_labels(csv_cfg, 42, bad)
    reasons = bad.to_frame().set_index("file")["reason"]
    assert len(kept) + len(reasons) == 121
    assert reasons["JDH_2_16_72_002.xml, line l_1055"] == "the line has no Coords points"
    assert "lies outside the 1524x2409 page" in reasons["JDH_2_16_72_002.xml, line tr_2_tl_4"]
    assert (reasons.index.str.startswith("JDH_2_16_86_004.xml")).sum() == 29
    assert reasons[reasons.index.str.startswith("JDH_2_16_86_004.xml")].str.contains("does not exist").all()
    assert len(reasons) == 3 * 2 + 29


def test_lines_without_transcription_are_not_samples_even_without_coordinates(tmp_path):
    def strip_text(tree, ns):
        lines = tree.findall(".//p:TextLine", ns)
        for line in lines[:2]:
            line.remove(line.find("p:TextEquiv", ns))
        lines[0].remove(lines[0].find("p:Coords", ns))

    folder = page_folder(tmp_path / "pages", strip_text)
    cfg = DataConfig(data=str(folder), line_cache=str(tmp_path / "cache"))
    csv_cfg = as_csv(cfg, seed=42)  # policy error, yet no error: the coordinate-less line has no text
    bad = BadInputLog("error", csv_cfg.labels_path())
    assert len(read_labels(csv_cfg, 42, bad)) == 121 - 4 * 2 and not bad.rows


# --- pages out --------------------------------------------------------------------------------

def predictions_for(page) -> dict[str, tuple[str, float]]:
    return {l.line_id: (f"machine {n} \u00e9", 0.5 + n / 100) for n, l in enumerate(page.lines)}


def test_pagexml_2013_gets_the_prediction_and_keeps_the_old_text(tmp_path):
    xml = PAGES / "JDH_2_16_73_005.xml"
    page = formats.read_page(xml, "pagexml")
    data, repairs = formats.write_transcriptions(page, predictions_for(page), keep_existing=False)
    assert formats.validate(data) == []
    assert any("clipped negative coordinates" in r for r in repairs)
    (tmp_path / "out.xml").write_bytes(data)
    written = formats.read_page(tmp_path / "out.xml", "pagexml")
    assert [l.text for l in written.lines] == [f"machine {n} \u00e9" for n in range(len(page.lines))]
    assert all(np.array_equal(a.polygon, b.polygon) for a, b in zip(written.lines, page.lines))
    ns = {"p": PAGE_NS + "2013-07-15"}
    line = etree.fromstring(data).find(".//p:TextLine", ns)
    assert line.find("p:TextEquiv", ns).get("conf") == "0.5000"
    assert line.get("comments").endswith(page.lines[0].text)

    kept, _ = formats.write_transcriptions(page, predictions_for(page), keep_existing=True)
    (tmp_path / "kept.xml").write_bytes(kept)
    assert [l.text for l in formats.read_page(tmp_path / "kept.xml", "pagexml").lines] == [l.text for l in page.lines]


def test_pagexml_2019_keeps_the_old_text_as_a_second_textequiv(tmp_path):
    folder = page_folder(tmp_path / "pages", version="2019-07-15")
    page = formats.read_page(folder / "JDH_2_16_72_002.xml", "pagexml")
    data, _ = formats.write_transcriptions(page, predictions_for(page), keep_existing=False)
    assert formats.validate(data) == []
    ns = {"p": PAGE_NS + "2019-07-15"}
    equivs = etree.fromstring(data).find(".//p:TextLine", ns).findall("p:TextEquiv", ns)
    assert [(e.get("index"), e.findtext("p:Unicode", namespaces=ns)) for e in equivs] == [
        ("1", "machine 0 \u00e9"), ("2", page.lines[0].text)]


def test_alto_gets_words_with_confidence_and_validates(alto_folders):
    for version, folder in alto_folders.items():
        page = formats.read_page(folder / "JDH_2_16_72_002.xml", "alto")
        data, _ = formats.write_transcriptions(page, predictions_for(page), keep_existing=False)
        assert formats.validate(data) == [], version
        root = etree.fromstring(data)
        ns = {"a": etree.QName(root).namespace}
        line = root.find(".//a:TextLine", ns)
        strings = line.findall("a:String", ns)
        assert [s.get("CONTENT") for s in strings] == ["machine", "0", "\u00e9"]
        assert {s.get("WC") for s in strings} == {"0.5000"}
        assert strings[0].findtext("a:ALTERNATIVE", namespaces=ns) == page.lines[0].text


def test_validation_finds_schema_errors():
    data = (PAGES / "JDH_2_16_72_002.xml").read_bytes()
    errors = formats.validate(data)
    assert any("TranskribusMetadata" in e for e in errors)
    with pytest.raises(BadInputError, match="no schema shipped"):
        formats.validate(b"<root xmlns='urn:other'/>")


# --- the verbs on pages -----------------------------------------------------------------------

@pytest.mark.slow
def test_train_finetune_and_predict_on_pages(tracking_uri, tmp_path, alto_folders):
    import mlflow

    from hwr.config import FinetuneConfig, PredictConfig, TrainConfig
    from hwr.prediction.predict import run_predict
    from hwr.training.finetune import run_finetune
    from hwr.training.train import run_train

    cache = str(tmp_path / "cache")
    cfg = TrainConfig().replace(data=str(PAGES), line_cache=cache, epochs=1, patience=0, batch_size=16,
                                on_bad_input="skip", **{**TINY_MODEL, "img_width": 512}).validate()
    trained = run_train(cfg)
    client = mlflow.MlflowClient()
    run = client.get_run(trained.run_id)
    assert run.data.params["format"] == "auto" and run.data.metrics["n_train"] > 0
    split = pd.read_csv(client.download_artifacts(trained.run_id, "split.csv"))
    assert split.groupby("page")["split"].nunique().eq(1).all() and split["page"].nunique() == 4

    tuned = run_finetune(FinetuneConfig().replace(
        base_model=trained.models.full_uri, data=str(alto_folders["4.2"]), line_cache=cache, head_epochs=1,
        full_epochs=0, batch_size=16, on_bad_input="skip", register=False).validate())
    assert client.get_run(tuned.run_id).data.metrics["n_train"] > 0

    for folder, fmt in ((PAGES, "pagexml"), (alto_folders["4.2"], "alto")):
        output = tmp_path / fmt / "predictions.csv"
        result = run_predict(PredictConfig(model=trained.models.prediction_uri, data=str(folder), line_cache=cache,
                                           output=str(output)).validate())
        metrics = client.get_run(result.run_id).data.metrics
        assert metrics["n_pages"] == 4 and metrics["n_pages_invalid"] == 0 and metrics["n_images"] == 121
        assert "cer" in metrics  # the pages' transcriptions are the truth
        predicted = pd.read_csv(output, dtype=str, keep_default_na=False)
        assert written_texts(tmp_path / fmt / "predictions_pages", fmt) == {
            (r.page, r.line_id): r.prediction if fmt == "pagexml" else " ".join(r.prediction.split())
            for r in predicted.itertuples()}


def written_texts(folder: Path, fmt: str) -> dict[tuple[str, str], str]:
    """``{(page, line id): text}`` as written: PAGE's first ``TextEquiv/Unicode`` verbatim, ALTO's
    ``String/@CONTENT`` joined by spaces."""
    texts = {}
    for xml in sorted(folder.glob("*.xml")):
        root = etree.parse(str(xml)).getroot()
        ns = {"x": etree.QName(root).namespace}
        if fmt == "pagexml":
            for line in root.iterfind(".//x:TextLine", ns):
                texts[xml.stem, line.get("id")] = line.find("x:TextEquiv/x:Unicode", ns).text or ""
        else:
            for line in root.iterfind(".//x:TextLine", ns):
                texts[xml.stem, line.get("ID")] = " ".join(s.get("CONTENT") for s in line.iterfind("x:String", ns)
                                                          if s.get("CONTENT"))
    return texts

