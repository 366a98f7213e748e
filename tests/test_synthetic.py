"""Synthetic lines for ``pretrain``: fonts and their glyphs, text cut from a corpus, drawing, and
the written set (with matplotlib's DejaVu fonts, which every install has)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from hwr.data.synthetic import (RENDER_HEIGHT, corpus_lines, held_out, load_fonts, render_line,
                                write_synthetic)
from hwr.errors import ConfigError

TEXTS = ["the botanist wrote", "to Darwin from Kew", "on the 3rd of May 1851", "seeds & roots"]


@pytest.fixture(scope="module")
def dejavu() -> list:
    import matplotlib

    folder = Path(matplotlib.get_data_path()) / "fonts" / "ttf"
    return load_fonts(f"{folder / 'DejaVuSans.ttf'},{folder / 'DejaVuSerif-Italic.ttf'}")


def test_fonts_know_their_glyphs(dejavu):
    assert [f.path.name for f in dejavu] == ["DejaVuSans.ttf", "DejaVuSerif-Italic.ttf"]
    assert all(f.covers("Königshain, 1851 & Co.") for f in dejavu)
    assert not any(f.covers("a \ue000 b") for f in dejavu)  # a private-use character: no glyph


def test_no_fonts_or_a_broken_font_is_a_clear_error(tmp_path):
    with pytest.raises(ConfigError, match="no .ttf or .otf font found"):
        load_fonts(str(tmp_path))
    broken = tmp_path / "broken.ttf"
    broken.write_bytes(b"not a font")
    with pytest.raises(ConfigError, match="cannot read .*broken.ttf"):
        load_fonts(str(tmp_path))


def test_held_out_lines_are_a_tenth_of_the_training_lines_within_bounds():
    assert held_out(20000) == held_out(3000) == {"val": 300, "test": 200}
    assert held_out(1500) == {"val": 150, "test": 150}
    assert held_out(32) == held_out(1) == {"val": 8, "test": 8}


def test_corpus_lines_are_runs_of_its_words_at_its_line_lengths():
    lines = corpus_lines(TEXTS, 200, np.random.default_rng(0))
    running = " ".join(TEXTS)
    assert all(line in running for line in lines)  # contiguous runs of the corpus's words
    longest, shortest = max(map(len, TEXTS)), min(map(len, TEXTS))
    # a line stops at the first word that reaches its drawn length (or at the corpus's end)
    assert all(len(line) < longest + max(map(len, running.split())) + 1 for line in lines)
    assert max(map(len, lines)) >= shortest
    assert len(set(lines)) > len(TEXTS)  # words meet new neighbours
    assert corpus_lines(TEXTS, 20, np.random.default_rng(1)) == corpus_lines(TEXTS, 20, np.random.default_rng(1))
    with pytest.raises(ConfigError, match="no words"):
        corpus_lines(["", "  "], 3, np.random.default_rng(0))


def test_lines_stay_within_the_frames_the_model_emits():
    """A word data set (DHSD: 40 frames at 40 x 160) must not get lines its model cannot emit:
    words are added only while the line fits, and a lone word too long for it is skipped."""
    from hwr.data.synthetic import frames_needed

    assert frames_needed("Kiel") == 4 and frames_needed("Hoof") == 5 and frames_needed("ll ll") == 7
    texts = ["the botanist wrote to Darwin from Kew on the 3rd of May 1851 about seeds and roots"] * 3
    free = corpus_lines(texts, 200, np.random.default_rng(0))
    assert max(map(frames_needed, free)) > 20
    capped = corpus_lines(texts, 200, np.random.default_rng(0), max_frames=20)
    assert max(map(frames_needed, capped)) <= 20 and max(map(frames_needed, capped)) >= 15
    assert all(c == f or f.startswith(c + " ") for c, f in zip(capped, free))  # the same runs, cut shorter


def test_a_word_too_long_for_the_model_is_skipped_and_counted(dejavu, tmp_path):
    texts = ["seeds", "roots", "Kew", "Donaudampfschifffahrtsgesellschaft"]
    written = write_synthetic(tmp_path / "set", texts, dejavu, 60, seed=0, max_frames=12)
    frame = pd.read_csv(tmp_path / "set" / "labels.csv", keep_default_na=False)
    assert written.skipped > 0 and written.written == 60 + sum(held_out(60).values()) - written.skipped
    assert frame.text.map(len).max() <= 12 and "Donaudampfschifffahrtsgesellschaft" not in set(frame.text)


def test_a_drawn_line_is_dark_ink_on_lighter_paper_and_grows_with_its_text(dejavu):
    rng = np.random.default_rng(0)
    short, long = render_line("seeds", dejavu[0], rng), render_line("seeds and roots from Kew", dejavu[0], rng)
    assert short.dtype == np.uint8 and short.shape[0] == long.shape[0] == RENDER_HEIGHT
    assert long.shape[1] > 3 * short.shape[1]
    for image in (short, long):
        assert image.min() < 100 and np.median(image) > 150  # some dark ink, mostly paper
        columns_with_ink = (image < 100).any(axis=0)
        assert columns_with_ink[: image.shape[1] // 2].any() and columns_with_ink[image.shape[1] // 2:].any()


def test_written_set_has_its_splits_counts_skips_and_is_reused(dejavu, tmp_path):
    texts = TEXTS + ["an \ue000 glyph no font has"]
    folder = tmp_path / "set"
    written = write_synthetic(folder, texts, dejavu, 40, seed=3)
    frame = pd.read_csv(folder / "labels.csv", keep_default_na=False)
    assert written.skipped > 0 and not frame.text.str.contains("\ue000").any()
    assert written.written == len(frame) == 40 + sum(held_out(40).values()) - written.skipped
    assert set(frame.split) == {"train", "val", "test"}
    assert set(frame.font) <= {"DejaVuSans.ttf", "DejaVuSerif-Italic.ttf"}
    assert all((folder / image).is_file() for image in frame.image)
    stamp = (folder / frame.image[0]).stat().st_mtime_ns
    again = write_synthetic(folder, texts, dejavu, 40, seed=3)
    assert again == written and (folder / frame.image[0]).stat().st_mtime_ns == stamp


def test_pretrain_without_fonts_stops_before_a_run_opens(tmp_path, tracking_uri):
    from mlflow import MlflowClient

    from hwr.config import PretrainConfig
    from hwr.training.pretrain import run_pretrain

    with pytest.raises(ConfigError, match=f"fonts='{tmp_path}': no .ttf or .otf font found"):
        run_pretrain(PretrainConfig().replace(fonts=str(tmp_path)))
    assert not MlflowClient().search_experiments() or not MlflowClient().search_runs(
        [e.experiment_id for e in MlflowClient().search_experiments()])
