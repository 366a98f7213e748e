"""The character n-gram language model and the CTC prefix beam search that consults it."""

import numpy as np
import pytest

from hwr.data.charset import Charset
from hwr.model.decode import greedy_decode
from hwr.model.language import CharNgram, lm_beam_decode

CHARSET = Charset.from_texts(["cat cot dog"])


def frames(*rows: dict[str, float]) -> np.ndarray:
    """``(1, time, V + 1)`` probabilities: each row maps characters ("-" = blank) to probability."""
    out = np.full((1, len(rows), CHARSET.num_classes), 1e-6, np.float32)
    for t, row in enumerate(rows):
        for char, p in row.items():
            out[0, t, 0 if char == "-" else CHARSET.encode(char)[0]] = p
    return out


def test_probabilities_of_every_next_character_sum_to_one():
    lm = CharNgram(["cat", "cat", "cot"], CHARSET, order=3)
    for context in ("", "c", "ca", "zz"):
        assert sum(lm.prob(context, c) for c in CHARSET.chars) == pytest.approx(1.0)
    assert lm.prob("c", "a") > lm.prob("c", "o") > lm.prob("c", "d")  # seen twice, once, never


def test_the_language_model_settles_an_ambiguous_character():
    lm = CharNgram(["cat"] * 20, CHARSET, order=3)
    probs = frames({"c": 0.9}, {"-": 0.9}, {"o": 0.5, "a": 0.45}, {"-": 0.9}, {"t": 0.9})
    assert greedy_decode(probs, CHARSET)[0] == ["cot"]
    assert lm_beam_decode(probs, CHARSET, lm, beam_width=5, alpha=0.0, beta=0.0)[0] == ["cot"]
    texts, confidence = lm_beam_decode(probs, CHARSET, lm, beam_width=5, alpha=1.0, beta=0.0)
    assert texts == ["cat"] and 0.0 < confidence[0] <= 1.0


def test_a_doubled_letter_needs_a_blank_between_its_frames():
    lm = CharNgram(["dog"], CHARSET, order=2)
    merged = frames({"d": 0.9}, {"o": 0.9}, {"o": 0.9}, {"g": 0.9})
    separated = frames({"d": 0.9}, {"o": 0.9}, {"-": 0.9}, {"o": 0.9}, {"g": 0.9})
    assert lm_beam_decode(merged, CHARSET, lm, 5, alpha=0.0, beta=0.0)[0] == ["dog"]
    assert lm_beam_decode(separated, CHARSET, lm, 5, alpha=0.0, beta=0.0)[0] == ["doog"]


def test_a_saved_language_model_loads_with_the_same_probabilities_and_weights(tmp_path):
    from hwr.model.language import LanguageModel

    saved = LanguageModel(CharNgram(["cat", "cot", "act"], CHARSET, order=3), alpha=0.4, beta=0.5)
    loaded = LanguageModel.load(saved.save(tmp_path / "lm.json"), CHARSET)
    assert (loaded.alpha, loaded.beta, loaded.ngram.order) == (0.4, 0.5, 3)
    for context, char in [("", "c"), ("c", "a"), ("ca", "t"), ("xy", "o")]:
        assert loaded.ngram.prob(context, char) == pytest.approx(saved.ngram.prob(context, char))


def test_beam_lm_decoding_needs_a_language_model():
    from hwr.model.decode import decode
    from hwr.model.language import LanguageModel

    probs = frames({"c": 0.9}, {"a": 0.45, "o": 0.5}, {"t": 0.9})
    with pytest.raises(ValueError, match="needs a language model"):
        decode(probs, CHARSET, "beam_lm")
    lm = LanguageModel(CharNgram(["cat"] * 20, CHARSET, order=3), alpha=1.0, beta=0.0)
    assert decode(probs, CHARSET, "beam_lm", beam_width=5, language=lm)[0] == ["cat"]
