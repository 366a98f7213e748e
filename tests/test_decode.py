"""CTC decoding on hand-made probability arrays: greedy (best path) and prefix beam search."""

import numpy as np
import pytest

from hwr.data.charset import Charset
from hwr.model.decode import beam_decode, decode, greedy_decode

CHARSET = Charset(("a", "b"))  # ids: 0 blank, 1 a, 2 b


def frames(*rows) -> np.ndarray:
    """``(1, time, 3)`` probabilities from per-frame rows (blank, a, b)."""
    return np.array([rows], np.float32)


def test_greedy_merges_repeats_and_a_blank_separates_doubled_letters():
    probs = frames([.1, .8, .1], [.2, .7, .1], [.9, .05, .05], [.1, .6, .3], [.1, .1, .8], [.3, .1, .6])
    texts, confidence = greedy_decode(probs, CHARSET)
    assert texts == ["aab"]  # a a (merged) | blank | a | b b (merged)
    assert confidence[0] == pytest.approx(np.mean([.8, .6, .8]))  # first frame of each emitted character


def test_greedy_all_blank_is_empty_with_the_blank_probability_as_confidence():
    texts, confidence = greedy_decode(frames([.9, .05, .05], [.7, .2, .1]), CHARSET)
    assert texts == [""] and confidence[0] == pytest.approx(0.8)


def test_beam_sums_paths_where_greedy_takes_the_best_one():
    # Greedy reads blank, blank -> "" (path probability .6 * .6 = .36); the label "a" has
    # a·a + a·blank + blank·a = .16 + .24 + .24 = .64, so beam search reads "a".
    probs = frames([.6, .4, 0.0], [.6, .4, 0.0])
    assert greedy_decode(probs, CHARSET)[0] == [""]
    texts, confidence = beam_decode(probs, CHARSET, beam_width=4)
    assert texts == ["a"]
    assert confidence[0] == pytest.approx(np.sqrt(0.64), abs=1e-3)  # exp(log p / time)


def test_beam_agrees_with_greedy_on_a_confident_batch():
    probs = np.concatenate([frames([.05, .9, .05], [.9, .05, .05], [.05, .05, .9]),
                            frames([.05, .05, .9], [.05, .05, .9], [.9, .05, .05])])
    assert beam_decode(probs, CHARSET, 5)[0] == greedy_decode(probs, CHARSET)[0] == ["ab", "b"]


def test_empty_batch_and_unknown_decoder():
    empty = np.zeros((0, 4, 3), np.float32)
    assert decode(empty, CHARSET, "beam")[0] == [] and decode(empty, CHARSET)[0] == []
    with pytest.raises(ValueError, match="decoder='viterbi'"):
        decode(frames([1.0, 0.0, 0.0]), CHARSET, "viterbi")
