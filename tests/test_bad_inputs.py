"""The bad-input catalogue, training data: each case goes through the data preparation ``train``
runs and must end in a clear error or a counted, reported skip: never a stack trace from inside
TensorFlow, never a silent skip. The catalogue goes on in ``tests/test_bad_predict.py`` (a run
over every bad row, ``predict``'s data), ``tests/test_bad_requests.py`` (the served model) and
``tests/test_bad_runs.py`` (a run that diverges, a tracking server that is down).
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from bad_data import SOURCE_IMAGE, SPECIAL_KINDS, link_outside, prepare_small, small_data_set, write_special_image
from conftest import DHSD
from hwr.errors import BadInputError

DECOMPOSED = "Mu\u0308ller"  # "u" + combining diaeresis: the same text as "Müller" in NFC


@pytest.mark.parametrize("kind", SPECIAL_KINDS)
def test_train_data_decodes_and_uses_16bit_rgba_cmyk_and_extreme_widths(tmp_path, kind):
    from hwr.data.images import load_image

    rel = write_special_image(tmp_path, kind)
    data = prepare_small(small_data_set(tmp_path, [{"image": rel, "text": "Königshain-Wiederau"}]))
    assert not data.bad.rows
    assert rel in data.frames["train"].image.tolist() and data.images["train"].shape == (2, 32, 128)
    if kind in ("16bit", "rgba", "cmyk"):  # the same word, whatever the encoding
        original = cv2.imread(str(DHSD / SOURCE_IMAGE), cv2.IMREAD_GRAYSCALE).astype(float)
        decoded = load_image(tmp_path / rel).astype(float)
        if kind == "rgba":
            assert decoded[:, :10].min() == 255  # transparent: white paper
            decoded, original = decoded[:, 10:], original[:, 10:]
        assert np.abs(decoded - original).mean() < 3


def test_train_data_csv_that_is_not_utf8_is_one_clear_error(tmp_path):
    cfg = small_data_set(tmp_path)
    text = (tmp_path / "labels.csv").read_text(encoding="utf-8")
    (tmp_path / "labels.csv").write_bytes(text.encode("latin-1"))  # ö of Königshain as the byte 0xf6
    with pytest.raises(BadInputError) as info:
        prepare_small(cfg)
    message = str(info.value)
    assert str(tmp_path / "labels.csv") in message and "not UTF-8" in message and "byte 0xf6" in message
    assert "line 2" in message and "\n" not in message


def test_train_data_csv_with_a_byte_order_mark_is_read(tmp_path):
    cfg = small_data_set(tmp_path)
    text = (tmp_path / "labels.csv").read_text(encoding="utf-8")
    (tmp_path / "labels.csv").write_text(text, encoding="utf-8-sig")  # as Excel saves "CSV UTF-8"
    assert len(prepare_small(cfg).frames["train"]) == 1


def test_train_data_csv_without_the_named_columns(tmp_path):
    cfg = small_data_set(tmp_path)
    with pytest.raises(BadInputError, match=r"no column 'transcription' \(parameter text_col\); columns are "
                                            r"\['image', 'text', 'split'\]"):
        prepare_small(cfg.replace(text_col="transcription"))
    with pytest.raises(BadInputError, match=r"no column 'file' \(parameter image_col\)"):
        prepare_small(cfg.replace(image_col="file"))


def test_train_data_csv_with_only_a_header(tmp_path):
    cfg = small_data_set(tmp_path)
    cfg.labels_path().write_text("image,text,split\n", encoding="utf-8")
    with pytest.raises(BadInputError, match=r"labels.csv: no rows, only the header \['image', 'text', 'split'\]"):
        prepare_small(cfg)


ESCAPES = {"dotdot": "../../etc/passwd", "absolute": "/etc/passwd", "symlink": None}


@pytest.mark.parametrize("case", ESCAPES)
def test_train_data_paths_escaping_the_data_folder(tmp_path, case):
    folder = tmp_path / "data"
    folder.mkdir()
    image = ESCAPES[case] or link_outside(folder)
    cfg = small_data_set(folder, [{"image": image, "text": "Söllingen"}])
    with pytest.raises(BadInputError) as info:
        prepare_small(cfg)
    message = str(info.value)
    assert "row 5" in message and repr(image) in message and "outside the data folder" in message
    if case == "symlink":
        assert "symbolic link" in message and "allow_links_outside=true" in message
    # allow_links_outside follows symbolic links only: `..` and absolute paths stay refused
    allowed = cfg.replace(allow_links_outside=True, on_bad_input="skip")
    data = prepare_small(allowed)
    if case == "symlink":
        assert not data.bad.rows and image in data.frames["train"].image.tolist()
        assert data.frames["train"].set_index("image").path[image] == str((DHSD / "images/writer1/1_1.png").resolve())
    else:
        assert [b.reason for b in data.bad.rows] == [f"image path points outside the data folder "
                                                     f"{str(folder.resolve())!r}"]


def test_nfc_labels_charset_lexicon_and_scores(tmp_path):
    from hwr.evaluation import metrics
    from hwr.evaluation.lexicon import Lexicon
    from hwr.evaluation.scoring import confusions, per_sample, summary_metrics

    cfg = small_data_set(tmp_path, [{"image": SOURCE_IMAGE, "text": DECOMPOSED},
                                    {"image": SOURCE_IMAGE, "text": "Müller"}])
    data = prepare_small(cfg)
    assert data.texts("train")[1:] == ["Müller", "Müller"] and len(data.texts("train")[1]) == 6
    assert "ü" in data.charset.chars and "\u0308" not in data.charset.chars
    assert data.charset.encode(DECOMPOSED) == data.charset.encode("Müller") and not data.charset.unknown(DECOMPOSED)
    assert metrics.cer([DECOMPOSED], ["Müller"]) == 0 and metrics.wer([DECOMPOSED], ["Müller"]) == 0
    assert metrics.edit_distance(DECOMPOSED, "Muller") == 1
    assert per_sample([DECOMPOSED], ["Müller"])[0].tolist() == [0]
    assert summary_metrics([DECOMPOSED], ["Müller"])["exact_match"] == 1.0
    assert confusions([DECOMPOSED], ["Muller"]).values.tolist() == [["substitution", "ü", "u", 1]]
    assert Lexicon([DECOMPOSED]).correct("Müller") == ("Müller", 1.0)
