"""CER/WER against hand-worked values."""

import pytest

from hwr.evaluation.metrics import cer, edit_distance, wer


def test_edit_distance_hand_worked():
    assert edit_distance("kitten", "sitting") == 3  # k->s, e->i, +g
    assert edit_distance("Straße", "Strasse") == 2  # ß->s, +s


def test_cer_is_corpus_level_not_mean_of_samples():
    # edits: "abcd"->"abxd" 1, "ef"->"" 2  => 3 edits / 6 reference characters
    assert cer(["abcd", "ef"], ["abxd", ""]) == pytest.approx(3 / 6)
    # the mean of per-sample rates would be (1/4 + 2/2) / 2 = 0.625, which is not the corpus CER
    assert cer(["abcd", "ef"], ["abxd", ""]) != pytest.approx(0.625)


def test_cer_counts_insertions_and_can_exceed_one():
    assert cer(["a"], ["abc"]) == pytest.approx(2.0)
    assert cer(["Köln"], ["Köln"]) == 0.0


def test_wer_over_whitespace_tokens():
    # "Groß Köris" vs "Gross Köris": 1 substituted word of 2; "a b c" vs "a c": 1 deletion of 3
    assert wer(["Groß Köris", "a b c"], ["Gross Köris", "a c"]) == pytest.approx(2 / 5)
    assert wer(["Bad  Saarow"], ["Bad Saarow"]) == 0.0  # spacing differences are not word errors


def test_length_mismatch_is_an_error():
    with pytest.raises(ValueError, match="2 references but 1 hypotheses"):
        cer(["a", "b"], ["a"])


def test_decomposed_and_composed_text_are_equal():
    decomposed = "Mu\u0308ller"  # u + combining diaeresis
    assert edit_distance(decomposed, "Müller") == 0 and edit_distance(decomposed, "Muller") == 1
    assert cer([decomposed], ["Müller"]) == 0 and wer([f"in {decomposed}"], ["in Müller"]) == 0
