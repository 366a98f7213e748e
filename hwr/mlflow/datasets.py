"""The images a run saw, as MLflow dataset inputs (the runs table's *Datasets* column): one per
split, each a table of image paths and labels with a digest of their content, so two runs show the
same digest only when every label and every image file is the same."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import mlflow
import pandas as pd
from mlflow.data.pandas_dataset import PandasDataset
from mlflow.exceptions import MlflowException

from hwr.config import DataConfig
from hwr.data.remote import is_remote

DIGEST_CHARS = 16
INSERT_RACE_RETRIES = 3
# What SQLite, PostgreSQL and MySQL say (through MLflow, directly or over REST) when an insert
# breaks a unique key.
_UNIQUE_VIOLATION = re.compile(r"unique constraint|duplicate key|duplicate entry", re.IGNORECASE)


def content_digest(images: pd.Series, texts: pd.Series, paths: pd.Series) -> str:
    """Hex digest over each row's image name, its label and its image file's bytes (a missing or
    unreadable file counts as empty), in row order."""
    digest = hashlib.sha256()
    for image, text, path in zip(images, texts, paths):
        digest.update(f"{image}\0{text}\0".encode("utf-8"))
        digest.update(_file_digest(path))
    return digest.hexdigest()[:DIGEST_CHARS]


def _file_digest(path: str) -> bytes:
    try:
        return hashlib.sha256(Path(path).read_bytes()).digest()
    except OSError:
        return b""


def data_source(data: DataConfig) -> str:
    """What a dataset input points at: the labels CSV, or for pages (no CSV) the data folder;
    for ``s3://`` data the prefix's URI."""
    if is_remote(data.data):
        return data.data.strip().rstrip("/")
    labels = data.labels_path()
    return str(labels.resolve()) if labels.is_file() else str(Path(data.data).expanduser().resolve())


def split_dataset(frame: pd.DataFrame, source: str, name: str, text_column: str = "text") -> PandasDataset:
    """A dataset of one split: ``frame``'s ``image`` and ``text_column`` (the target), digested with
    :func:`content_digest` over its ``path`` files."""
    table = frame[["image", text_column]].reset_index(drop=True)
    return mlflow.data.from_pandas(table, source=source, name=name, targets=text_column,
                                   digest=content_digest(frame["image"], frame[text_column], frame["path"]))


def log_splits(frames: dict[str, pd.DataFrame], source: str, name: str) -> dict[str, PandasDataset]:
    """Log one dataset input per split (context = the split, name ``<name>-<split>``) to the active
    run; returns them by split, for metrics logged with ``dataset=``."""
    datasets = {split: split_dataset(frame, source, f"{name}-{split}") for split, frame in frames.items()}
    for split, dataset in datasets.items():
        log_dataset(dataset, split)
    return datasets


def log_dataset(dataset: PandasDataset, context: str) -> None:
    """Log ``dataset`` as an input of the active run, tagged with ``context`` (the split).

    MLflow's SQL store looks a dataset up by (experiment, name, digest) and inserts it when
    missing, in two steps: two runs of one experiment logging the same new dataset at once (the
    parallel trials of a Spark ``tune``) can both miss it, and the later insert then breaks the
    table's unique key. By then the dataset is stored, so that one error is retried, up to
    ``INSERT_RACE_RETRIES`` times; any other error is raised at once.

    Raises:
        MlflowException: what the tracking store raised, when not a lost insert race or when the
            retries ran out.
    """
    for attempt in range(INSERT_RACE_RETRIES + 1):
        try:
            mlflow.log_input(dataset, context=context)
            return
        except MlflowException as error:
            if attempt == INSERT_RACE_RETRIES or not _UNIQUE_VIOLATION.search(str(error)):
                raise
