"""Configuration of the ``predict`` verb: parameters, defaults, validation and help texts.

Knows nothing of MLflow or TensorFlow, so the entry point can check parameters before anything
heavy loads.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from hwr.config import ConfigError, DataConfig
from hwr.decode import DECODERS
from hwr.sources import ALL_SPLITS, SPLITS_ALLOWED

HELP = {
    "model": "MLflow URI of a prediction model (e.g. models:/hwr-crnn@champion, models:/hwr-crnn/3, "
             "runs:/RUN_ID/model), or several separated by commas to compare them",
    "data": "folder with a labels CSV, or a folder of PNG/JPEG images (searched recursively) without labels",
    "labels": "labels CSV inside --data (or absolute); 'none' ignores labels; when the default labels.csv "
              "does not exist, --data is read as an unlabelled image folder",
    "image_col": "CSV column with the image path (relative to --data)",
    "text_col": "CSV column with the ground-truth transcription",
    "split_col": "CSV column with train/val/test",
    "split": f"which rows of the labels CSV to transcribe: one of {SPLITS_ALLOWED}",
    "output": "predictions CSV path (one per model when several: NAME_<model>.csv); the report "
              "folder NAME_report/ is written beside it",
    "decoder": f"CTC decoding: one of {DECODERS}",
    "beam_width": "beams kept per frame with --decoder beam",
    "lexicon": "optional text file ('none': no lexicon), one allowed transcription per line; "
               "predictions are replaced by the closest entry (raw and corrected text are both kept)",
    "lexicon_threshold": "minimum normalised Levenshtein similarity in [0, 1] for a lexicon replacement",
    "batch_size": "images read and transcribed per chunk (memory stays flat with the number of images)",
    "max_images": "transcribe only the first N images (0 = all), for quick runs",
}


DEFAULT_LABELS = "labels.csv"
NO_LABELS = ("", "none")


@dataclass(frozen=True)
class PredictConfig:
    """Everything one ``predict`` call needs (names are the MLproject parameters).

    Attributes:
        model: prediction-model URI (``models:/hwr-crnn@champion``), or several, comma-separated.
        data: a folder with a labels CSV, or a folder of images (PNG/JPEG, searched recursively).
        labels: labels CSV inside ``data`` (or absolute). ``none``: ignore labels. When the
            default ``labels.csv`` does not exist, ``data`` is read as an unlabelled folder.
        image_col, text_col, split_col: CSV column names. split: ``all``, ``train``, ``val``, ``test``.
        output: CSV path; the report folder is written beside it.
        decoder: ``greedy`` or ``beam``; beam_width: beams for ``beam``.
        lexicon: optional text file, one entry per line (``none``: no lexicon); lexicon_threshold: similarity in [0, 1].
        batch_size: images per chunk fed to the models. max_images: first N images only (0 = all).
    """

    model: str = "models:/hwr-crnn@champion"
    data: str = "../shared/data/dhsd"
    labels: str = DEFAULT_LABELS
    image_col: str = "image"
    text_col: str = "text"
    split_col: str = "split"
    split: str = ALL_SPLITS
    output: str = "output/predictions.csv"
    decoder: str = "greedy"
    beam_width: int = 10
    lexicon: str = "none"
    lexicon_threshold: float = 0.8
    batch_size: int = 64
    max_images: int = 0

    def model_uris(self) -> list[str]:
        return [u.strip() for u in self.model.split(",") if u.strip()]

    def lexicon_path(self) -> str | None:
        """The lexicon file, or None for ``none`` / empty."""
        return None if self.lexicon.strip().lower() in NO_LABELS else self.lexicon

    def data_config(self) -> DataConfig:
        return DataConfig(data=self.data, labels=self.labels, image_col=self.image_col,
                          text_col=self.text_col, split_col=self.split_col, on_bad_input="skip")

    def labelled(self) -> bool:
        """Whether ``data`` is read through a labels CSV.

        Raises:
            ConfigError: a ``labels`` file other than the default that does not exist.
        """
        if self.labels.strip().lower() in NO_LABELS:
            return False
        if self.data_config().labels_path().is_file():
            return True
        if self.labels == DEFAULT_LABELS:
            return False
        raise ConfigError(f"labels={self.labels!r}: no such file {str(self.data_config().labels_path())!r}")

    def validate(self) -> "PredictConfig":
        """Raises ConfigError naming the first bad parameter."""
        if not self.model_uris():
            raise ConfigError("model: give at least one model URI, e.g. models:/hwr-crnn@champion")
        if self.decoder not in DECODERS:
            raise ConfigError(f"decoder={self.decoder!r}: expected one of {DECODERS}")
        if self.split not in SPLITS_ALLOWED:
            raise ConfigError(f"split={self.split!r}: expected one of {SPLITS_ALLOWED}")
        for name in ("beam_width", "batch_size"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"{name}={getattr(self, name)}: expected a positive integer")
        if self.max_images < 0:
            raise ConfigError(f"max_images={self.max_images}: expected 0 (all) or a positive count")
        if not 0.0 <= self.lexicon_threshold <= 1.0:
            raise ConfigError(f"lexicon_threshold={self.lexicon_threshold}: expected a similarity in [0, 1]")
        if not self.output.lower().endswith(".csv"):
            raise ConfigError(f"output={self.output!r}: expected a .csv path")
        return self

    def flat_params(self) -> dict[str, object]:
        return dataclasses.asdict(self)

    def replace(self, **changes) -> "PredictConfig":
        unknown = set(changes) - set(self.flat_params())
        if unknown:
            raise ConfigError(f"unknown parameter(s) {sorted(unknown)}")
        return dataclasses.replace(self, **changes)
