"""Shared fixtures: small subsets of the real data (../shared/data), tiny models, temp MLflow stores."""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("HWR_SHARED_DATA", ROOT.parent / "shared" / "data"))
DHSD = SHARED / "dhsd"
HOOKER = SHARED / "hooker"

# The longest files first, by seconds summed per file on the AVX2-only host (2026-12-07), so that in
# `make test`'s two workers (a file at a time, in collection order) neither is left alone with one
# of them at the end; the other files follow in pytest's order.
LONGEST_FIRST = ("test_team.py", "test_tune.py", "test_faults.py", "test_predict.py", "test_train_e2e.py",
                 "test_finetune.py", "test_pages.py", "test_learning.py", "test_promote.py", "test_bad_predict.py",
                 "test_legacy_models.py", "test_pretrain.py", "test_project.py", "test_pyfunc.py", "test_serving.py")

# A tiny CRNN that trains in seconds on a CPU.
TINY_MODEL = dict(img_height=32, img_width=128, conv_filters="16,32", dense_units=32, dropout=0.0,
                  lstm1_units=32, lstm2_units=32, kernel_size=3)


def write_subset(source: Path, out_csv: Path, per_split: dict[str, int], seed: int = 0) -> Path:
    """A labels CSV holding the first rows of each split of a shared data set (images stay in place)."""
    table = pd.read_csv(source / "labels.csv", dtype=str, keep_default_na=False)
    parts = [table[table.split == split].head(n) for split, n in per_split.items()]
    pd.concat(parts).to_csv(out_csv, index=False)
    return out_csv


def pytest_collection_modifyitems(items):
    """Run the files of :data:`LONGEST_FIRST` first, in its order (a stable sort: each file's tests
    keep their order)."""
    rank = {name: i for i, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))


@pytest.fixture(autouse=True)
def _quiet_tf(monkeypatch):
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "2")


@pytest.fixture
def tracking_uri(tmp_path, monkeypatch):
    """A fresh sqlite tracking store (artifacts beside it) set for this test and its subprocesses."""
    import mlflow

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.chdir(tmp_path)
    mlflow.set_tracking_uri(uri)
    yield uri
    mlflow.set_tracking_uri(None)


@pytest.fixture
def dhsd_subset(tmp_path) -> Path:
    """Labels CSV of 32 train / 16 val / 16 test DHSD rows (use with ``data=DHSD``)."""
    return write_subset(DHSD, tmp_path / "dhsd_subset.csv", {"train": 32, "val": 16, "test": 16})


def tiny_config(labels: Path, data: Path = DHSD, **changes):
    """A TrainConfig for a tiny model on a subset CSV."""
    from hwr.config import TrainConfig

    return TrainConfig().replace(**{"data": str(data), "labels": str(labels), "epochs": 1, "max_minutes": 0, "patience": 0,
                                    "batch_size": 16, **TINY_MODEL, **changes}).validate()


def dhsd_rows(per_split: dict[str, int], max_len: int = 24) -> pd.DataFrame:
    """The first DHSD rows of each split whose labels fit a tiny model (<= ``max_len`` characters)."""
    table = pd.read_csv(DHSD / "labels.csv", dtype=str, keep_default_na=False)
    table = table[table.text.str.len() <= max_len]
    return pd.concat([table[table.split == s].head(n) for s, n in per_split.items()])[["image", "text", "split"]]
