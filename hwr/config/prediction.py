"""The parameters of ``predict``, each declared once (see :mod:`hwr.config.params`); the CSV
column names are declared by :class:`~hwr.config.training.DataConfig` and shared.

Knows nothing of MLflow or TensorFlow, so the entry point checks parameters before anything
heavy loads.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from hwr.config.params import COUNT, NOT_BLANK, POSITIVE, UNIT_INTERVAL, Config, param, parse_bool, same_as
from hwr.config.training import SPLITS, DataConfig, TrainConfig
from hwr.errors import ConfigError

DECODERS = ("greedy", "beam", "beam_lm")
BACKENDS = ("local", "spark")
ALL_SPLITS = "all"
SPLITS_ALLOWED = (ALL_SPLITS, *SPLITS)
DEFAULT_LABELS = "labels.csv"
NO_LABELS = ("", "none")


@dataclass(frozen=True)
class PredictConfig(Config):
    """Everything one ``predict`` call needs (names are the MLproject parameters)."""

    model: str = param("models:/hwr-crnn@champion",
                       "MLflow URI of a prediction model (models:/NAME@alias, models:/NAME/VERSION, "
                       "runs:/RUN_ID/model), or several separated by commas to compare them. The full model "
                       "(hwr-crnn-full) is refused with a clear message", rule=NOT_BLANK)
    data: str = param("../shared/data/dhsd", "a folder with a labels CSV, a folder of PNG/JPEG images "
                                             "(searched recursively) without labels, or a folder of page "
                                             "scans with PAGE-XML or ALTO files (see format)", rule=NOT_BLANK)
    labels: str = param(DEFAULT_LABELS, "labels CSV inside `data` (or absolute); `none` ignores labels; when "
                                        "the default labels.csv does not exist, `data` is read as an unlabelled "
                                        "folder; another CSV that does not exist is an error")
    image_col: str = same_as(DataConfig, "image_col")
    text_col: str = same_as(DataConfig, "text_col")
    split_col: str = param("split", "CSV column with train/val/test; without it, train's seeded random split "
                                    "(seed 42) is used")
    split: str = param(ALL_SPLITS, "which rows of the labels CSV (or lines of the pages) to transcribe",
                       choices=SPLITS_ALLOWED)
    format: str = same_as(DataConfig, "format")
    split_by: str = same_as(DataConfig, "split_by")
    split_file: str = same_as(DataConfig, "split_file")
    deskew: bool = same_as(DataConfig, "deskew")
    line_fill: str = same_as(DataConfig, "line_fill")
    line_cache: str = same_as(DataConfig, "line_cache")
    allow_links_outside: bool = same_as(DataConfig, "allow_links_outside")
    keep_existing: bool = param(False, "pages only: leave lines that already have a transcription untouched in "
                                       "the written page files (default: the prediction comes first and the "
                                       "old text is kept beside it)", parse=parse_bool)
    output: str = param("output/predictions.csv",
                        "predictions CSV path (`output/` is git-ignored); with several models one CSV per "
                        "model, NAME_<model>.csv; the report folder NAME_report/ is written beside it, and for "
                        "pages the page files with the transcriptions in NAME_pages/ (NAME_<model>_pages/)",
                        rule=NOT_BLANK)
    decoder: str = param("greedy", "CTC decoding: greedy takes the best class per frame; beam is prefix beam "
                                   "search (keras.ops.ctc_decode); beam_lm is prefix beam search with the "
                                   "character 6-gram language model of the training labels that the model "
                                   "carries (Hooker lines: test CER 0.442 -> 0.395, about 30 ms more per line)",
                         choices=DECODERS)
    beam_width: int = param(10, "beams kept per frame with decoder=beam or beam_lm", rule=POSITIVE)
    tta: bool = param(False, "test-time augmentation: decode the probabilities averaged over each image and "
                             "two slanted copies (three forward passes; DHSD test CER with decoder=beam_lm "
                             "0.106 -> 0.100, greedy 0.154 -> 0.144)", parse=parse_bool)
    lexicon: str = param("none", "optional UTF-8 text file, one allowed transcription per line (`none`: no "
                                 "lexicon); predictions are replaced by the closest entry when the similarity "
                                 "reaches lexicon_threshold (raw and corrected text and metrics are both kept)")
    lexicon_threshold: float = param(0.8, "minimum normalised Levenshtein similarity 1 - distance / max(len) "
                                          "for a lexicon replacement, e.g. Berlln -> Berlin scores 0.83",
                                     rule=UNIT_INTERVAL)
    batch_size: int = param(64, "images read, checked and transcribed per chunk (memory stays flat with the "
                                "number of images)", rule=POSITIVE)
    system_metrics: bool = same_as(TrainConfig, "system_metrics")
    max_images: int = param(0, "transcribe only the first N images (0 = all), for quick runs", rule=COUNT)
    max_unreadable: float = param(0.5, "fail the run (status FAILED, exit 2) when more than this fraction of the "
                                       "images is unreadable, or when all are; the per-row reasons stay in the "
                                       "CSV", rule=UNIT_INTERVAL)
    backend: str = param("local", "local: transcribe in this process; spark: with mlflow.pyfunc.spark_udf on "
                                  "the Spark master `spark_master` (the images are read and checked here, "
                                  "transcribed on the executors; same CSV and report)", choices=BACKENDS)
    spark_master: str = param("", "Spark master URL for backend=spark, e.g. spark://127.0.0.1:7077 (empty: "
                                  "$SPARK_MASTER, else local[2] in this process)")

    def model_uris(self) -> list[str]:
        return [u.strip() for u in self.model.split(",") if u.strip()]

    def lexicon_path(self) -> str | None:
        """The lexicon file, or None for ``none`` / empty."""
        return None if self.lexicon.strip().lower() in NO_LABELS else self.lexicon

    def data_config(self) -> DataConfig:
        """The data set's parameters (those ``predict`` shares with ``train`` by name); bad rows are
        always skipped (reported per row)."""
        shared = {f.name for f in dataclasses.fields(DataConfig)} & {f.name for f in dataclasses.fields(self)}
        return DataConfig(**{name: getattr(self, name) for name in shared}, on_bad_input="skip")

    def labelled(self, data: DataConfig | None = None) -> bool:
        """Whether ``data`` is read through a labels CSV (``data``: the data set's configuration as
        read, e.g. the local view of ``s3://`` data; default :meth:`data_config`).

        Raises:
            ConfigError: a ``labels`` file other than the default that does not exist.
        """
        if self.labels.strip().lower() in NO_LABELS:
            return False
        labels = (data or self.data_config()).labels_path()
        if labels.is_file():
            return True
        if self.labels == DEFAULT_LABELS:
            return False
        raise ConfigError(f"labels={self.labels!r}: no such file {str(labels)!r}")

    def check(self) -> None:
        if not self.model_uris():
            raise ConfigError("model: give at least one model URI, e.g. models:/hwr-crnn@champion")
        if not self.output.lower().endswith(".csv"):
            raise ConfigError(f"output={self.output!r}: expected a .csv path")
