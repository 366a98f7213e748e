"""Bad input: each case gives an error naming the CSV row and file; ``skip`` counts and lists it."""

import shutil

import pandas as pd
import pytest

from conftest import DHSD
from hwr.config import DataConfig
from hwr.config import ModelConfig
from hwr.data.dataset import prepare_data
from hwr.data.labels import random_split
from hwr.errors import BadInputError

GOOD = ["images/writer1/1_0.png", "images/writer1/1_1.png", "images/writer1/1_10.png"]


@pytest.fixture
def folder(tmp_path):
    """A data folder with three real DHSD images and one corrupt PNG."""
    for rel in GOOD:
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(DHSD / rel, tmp_path / rel)
    (tmp_path / "images/corrupt.png").write_bytes(b"\x89PNG garbage")
    return tmp_path


def write_csv(folder, bad_row: dict | None, split_col=True):
    rows = [{"image": GOOD[0], "text": "Königshain", "split": "train"},
            {"image": GOOD[1], "text": "Söllingen", "split": "val"},
            {"image": GOOD[2], "text": "Hähnichen", "split": "test"}]
    if bad_row:
        rows.append({"split": "train", **bad_row})
    frame = pd.DataFrame(rows)
    if not split_col:
        frame = frame.drop(columns="split")
    frame.to_csv(folder / "labels.csv", index=False)
    return DataConfig(data=str(folder))


def prepare(cfg, time_steps=40):
    return prepare_data(cfg, ModelConfig(img_width=4 * time_steps), seed=1)


BAD_CASES = [
    ({"image": "images/missing.png", "text": "Kiel"}, "image file does not exist"),
    ({"image": "images/corrupt.png", "text": "Kiel"}, "cannot read image"),
    ({"image": GOOD[0], "text": ""}, "empty label"),
    ({"image": "../outside.png", "text": "Kiel"}, "outside the data folder"),
    ({"image": GOOD[0], "text": "ab" * 20 + "a"}, "needs 41 CTC frames but the model emits 40"),
    ({"image": GOOD[0], "text": "Kiel", "split": "holdout"}, "split is 'holdout'"),
]


@pytest.mark.parametrize("bad_row, reason", BAD_CASES, ids=[c[1][:20] for c in BAD_CASES])
def test_bad_row_error_names_row_file_and_reason(folder, bad_row, reason):
    cfg = write_csv(folder, bad_row)
    with pytest.raises(BadInputError) as info:
        prepare(cfg)
    message = str(info.value)
    assert "row 5" in message  # header is line 1, the bad row is the 4th data row
    assert repr(bad_row["image"]) in message
    assert reason in message


@pytest.mark.parametrize("bad_row, reason", BAD_CASES, ids=[c[1][:20] for c in BAD_CASES])
def test_skip_counts_and_lists_the_bad_row(folder, bad_row, reason):
    cfg = write_csv(folder, bad_row)
    data = prepare(DataConfig(data=cfg.data, on_bad_input="skip"))
    assert len(data.bad.rows) == 1
    listed = data.bad.to_frame().iloc[0]
    assert listed.row == 5 and listed.file == bad_row["image"] and reason in listed.reason
    assert sum(len(f) for f in data.frames.values()) == 3


def test_missing_column_is_named(folder):
    cfg = write_csv(folder, None)
    with pytest.raises(BadInputError, match="no column 'transcription' \\(parameter text_col\\)"):
        prepare(DataConfig(data=cfg.data, text_col="transcription", on_bad_input="skip"))


def test_other_column_names_field_museum_layout(folder):
    frame = pd.read_csv(write_csv(folder, None).labels_path())
    frame.rename(columns={"image": "image_location", "text": "transcription"}).to_csv(
        folder / "words_metadata.csv", index=False)
    data = prepare(DataConfig(data=str(folder), labels="words_metadata.csv",
                              image_col="image_location", text_col="transcription"))
    assert data.texts("val") == ["Söllingen"]


def test_unknown_characters_in_val_do_not_crash(folder):
    cfg = write_csv(folder, None)
    frame = pd.read_csv(cfg.labels_path())
    frame.loc[1, "text"] = "Zürich"  # Z, ü, r, c not in the train label "Königshain"
    frame.to_csv(cfg.labels_path(), index=False)
    data = prepare(cfg)
    assert data.charset.unknown("Zürich") and data.texts("val") == ["Zürich"]


def test_random_split_is_seeded_with_requested_fractions():
    a, b = random_split(1000, 0.1, 0.2, seed=7), random_split(1000, 0.1, 0.2, seed=7)
    assert (a == b).all()
    assert (a == "val").sum() == 100 and (a == "test").sum() == 200
    assert not (a == random_split(1000, 0.1, 0.2, seed=8)).all()


@pytest.mark.parametrize("relative, key", [
    ("images/a.png", "images/a.png"), ("./images//a.png", "images/a.png"), ("images/../b.png", "b.png"),
    ("../secret.png", None), ("images/../../x.png", None), ("/etc/passwd", None), ("", None), ("..", None),
])
def test_s3_keys_never_leave_the_prefix(relative, key):
    from hwr.data.remote import inside

    assert inside(relative) == key


def test_s3_uri_is_split_into_bucket_and_prefix():
    from hwr.data.remote import is_remote, split_uri
    from hwr.errors import BadInputError

    assert split_uri("s3://team-data/letters/1870/") == ("team-data", "letters/1870")
    assert split_uri("s3://team-data") == ("team-data", "")
    assert is_remote("S3://x/y") and not is_remote("../shared/data/dhsd")
    with pytest.raises(BadInputError, match="expected s3://bucket/prefix"):
        split_uri("s3:///prefix")


def test_paths_escaping_the_folder_and_links(folder):
    from hwr.data.labels import locate_image

    (folder / "linked").symlink_to(DHSD / "images", target_is_directory=True)
    (folder / "inner").symlink_to(folder / "images", target_is_directory=True)
    root = folder.resolve()
    assert locate_image(root, GOOD[0]) == (str(root / GOOD[0]), None)
    assert locate_image(root, "inner/writer1/1_0.png") == (str(root / GOOD[0]), None)  # a link inside: fine
    assert locate_image(root, "images/../" + GOOD[0]) == (str(root / GOOD[0]), None)
    for path in ("../x.png", "images/../../x.png", "/etc/passwd", str(DHSD / GOOD[0])):
        assert "points outside the data folder" in locate_image(root, path, allow_links_outside=True)[1]
    assert "symbolic link" in locate_image(root, "linked/writer1/1_0.png")[1]
    assert locate_image(root, "linked/writer1/1_0.png", True) == (str((DHSD / GOOD[0]).resolve()), None)


def test_predict_table_ignores_split_values_with_split_all(folder):
    from hwr.data.sources import image_table

    cfg = write_csv(folder, {"image": GOOD[0], "text": "Kiel", "split": "heldout"})
    table = image_table(cfg, "all")
    assert len(table) == 4 and (table.error == "").all() and table.split.tolist()[-1] == "heldout"
    assert image_table(cfg, "val").image.tolist() == [GOOD[1]]
    frame = pd.read_csv(cfg.labels_path()).assign(split="heldout")
    frame.to_csv(cfg.labels_path(), index=False)
    with pytest.raises(BadInputError, match=r"split='test' matches no row .*: its column 'split' holds 'heldout' "
                                            r"\(4 rows\); pass split=all"):
        image_table(cfg, "test")


def test_predict_folder_lists_links_outside_as_unreadable_unless_allowed(folder):
    from hwr.data.sources import image_table

    (folder / "elsewhere").symlink_to(DHSD / "images" / "writer2", target_is_directory=True)
    (folder / "one.png").symlink_to(DHSD / GOOD[1])
    (folder / "same.png").symlink_to(folder / GOOD[0])  # a link inside the folder: an image like any other
    table = image_table(DataConfig(data=str(folder)), labelled=False)
    errors = dict(zip(table.image, table.error))
    assert "symbolic link" in errors["elsewhere"] and "symbolic link" in errors["one.png"]
    assert errors["same.png"] == "" and errors[GOOD[0]] == ""
    allowed = image_table(DataConfig(data=str(folder), allow_links_outside=True), labelled=False)
    n_writer2 = len(list((DHSD / "images" / "writer2").glob("*.png")))
    assert len(allowed) == len(table) - 1 + n_writer2 and (allowed.error == "").all()  # the link dir: its images
    assert "elsewhere/" + sorted(p.name for p in (DHSD / "images" / "writer2").glob("*.png"))[0] in allowed.image.tolist()
