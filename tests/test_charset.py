"""Charset: ids 1..V with blank 0, round trips, unknown characters, extension."""

import pytest

from hwr.data.charset import BLANK, Charset, ctc_frames_needed


def test_blank_is_zero_and_chars_start_at_one():
    charset = Charset.from_texts(["ba", "ß"])
    assert BLANK == 0
    assert charset.chars == ("a", "b", "ß")
    assert charset.encode("abß") == [1, 2, 3]
    assert charset.num_classes == 4


def test_round_trip_of_training_labels():
    texts = ["Königshain-Wiederau", "Groß Köris", "Söllingen"]
    charset = Charset.from_texts(texts)
    for text in texts:
        assert charset.decode(charset.encode(text)) == text


def test_decode_ignores_blank_and_padding():
    charset = Charset.from_texts(["ab"])
    assert charset.decode([0, 1, 0, 2, -1, -1]) == "ab"


def test_unknown_characters_raise_or_are_dropped():
    charset = Charset.from_texts(["abc"])
    with pytest.raises(KeyError, match="'é'"):
        charset.encode("cabé")
    assert charset.encode("cabé", drop_unknown=True) == [3, 1, 2]
    assert charset.unknown("abé") == {"é"}


def test_extend_keeps_existing_ids(tmp_path):
    base = Charset.from_texts(["abc"])
    extended, added = base.extend(["aäß"])
    assert added == "ßä" or added == "äß"
    assert extended.chars[:3] == base.chars
    assert extended.encode("abc") == base.encode("abc")
    assert Charset.load(extended.save(tmp_path / "c.json")) == extended


def test_ctc_frames_needed_counts_repeats():
    assert ctc_frames_needed([1, 2, 3]) == 3
    assert ctc_frames_needed([1, 1, 2, 2, 2]) == 5 + 3  # a blank between each repeated pair


def test_decomposed_text_is_the_same_character_in_nfc():
    decomposed = "Mu\u0308ller"  # u + combining diaeresis
    charset = Charset.from_texts([decomposed, "Müller"])
    assert "ü" in charset.chars and "\u0308" not in charset.chars
    assert charset.encode(decomposed) == charset.encode("Müller") and not charset.unknown(decomposed)
    assert charset.extend(["Bu\u0308hl"]) == (Charset(charset.chars + ("B", "h")), "Bh")
