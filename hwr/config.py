"""Typed run configuration: one dataclass per concern, defaults and validation.

Knows nothing of MLflow or TensorFlow, so it can be built and checked before anything heavy loads.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

ACTIVATIONS = ("relu", "elu", "gelu", "swish", "tanh", "leaky_relu")
BAD_INPUT_POLICIES = ("error", "skip")


class ConfigError(ValueError):
    """A parameter has a value the project cannot use; the message names the parameter."""


def parse_int_list(text: str | list | tuple, name: str) -> tuple[int, ...]:
    """Parse ``"32,64,128"`` (or a list) into ``(32, 64, 128)``.

    Raises:
        ConfigError: if an element is not a positive integer.
    """
    items = text.split(",") if isinstance(text, str) else list(text)
    try:
        values = tuple(int(str(v).strip()) for v in items if str(v).strip())
    except ValueError as exc:
        raise ConfigError(f"{name}={text!r}: expected comma-separated integers, e.g. 32,64") from exc
    if not values or any(v <= 0 for v in values):
        raise ConfigError(f"{name}={text!r}: expected one or more positive integers")
    return values


@dataclass(frozen=True)
class DataConfig:
    """Where the labelled images are and how to read them.

    Attributes:
        data: folder holding the images; image paths in the CSV are relative to it.
        labels: labels CSV; a relative path is resolved inside ``data``.
        image_col, text_col, split_col: CSV column names. ``split_col`` is optional in the CSV:
            without it a seeded random split with ``val_fraction``/``test_fraction`` is made.
        on_bad_input: ``error`` (stop at the first bad row) or ``skip`` (count, log and go on).
        max_per_split: keep only the first N rows of each split (0 = all), for quick runs.
    """

    data: str = "../shared/data/dhsd"
    labels: str = "labels.csv"
    image_col: str = "image"
    text_col: str = "text"
    split_col: str = "split"
    val_fraction: float = 0.1
    test_fraction: float = 0.1
    on_bad_input: str = "error"
    max_per_split: int = 0

    def labels_path(self) -> Path:
        path = Path(self.labels)
        return path if path.is_absolute() else Path(self.data) / path

    def validate(self) -> None:
        if self.on_bad_input not in BAD_INPUT_POLICIES:
            raise ConfigError(f"on_bad_input={self.on_bad_input!r}: expected one of {BAD_INPUT_POLICIES}")
        for name in ("val_fraction", "test_fraction"):
            value = getattr(self, name)
            if not 0.0 <= value < 1.0:
                raise ConfigError(f"{name}={value}: expected a fraction in [0, 1)")
        if self.val_fraction + self.test_fraction >= 1.0:
            raise ConfigError("val_fraction + test_fraction must leave rows for training")
        if self.max_per_split < 0:
            raise ConfigError(f"max_per_split={self.max_per_split}: expected 0 (all) or a positive count")


@dataclass(frozen=True)
class ModelConfig:
    """CRNN hyperparameters (names as used by the tuning search space).

    The input is ``(img_height, img_width, 1)``; width is the time axis. Each convolution block
    halves the height; the first two also halve the width, so the model emits
    ``img_width / 4`` time steps (``/ 2`` with a single block).
    """

    img_height: int = 40
    img_width: int = 160
    conv_filters: tuple[int, ...] = (32, 64, 128)
    kernel_size: int = 3
    activation: str = "relu"
    dense_units: int = 128
    dropout: float = 0.25
    lstm1_units: int = 128
    lstm2_units: int = 64

    def validate(self) -> None:
        if self.activation not in ACTIVATIONS:
            raise ConfigError(f"activation={self.activation!r}: expected one of {ACTIVATIONS}")
        if not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"dropout={self.dropout}: expected a fraction in [0, 1)")
        for name in ("kernel_size", "dense_units", "lstm1_units", "lstm2_units"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"{name}={getattr(self, name)}: expected a positive integer")
        stride = 2 ** min(len(self.conv_filters), 2)
        if self.img_width % stride:
            raise ConfigError(f"img_width={self.img_width}: must be a multiple of {stride}")
        if self.img_height % (2 ** len(self.conv_filters)):
            raise ConfigError(
                f"img_height={self.img_height}: must be a multiple of 2**len(conv_filters)"
                f" = {2 ** len(self.conv_filters)}"
            )

    @property
    def time_steps(self) -> int:
        """Number of CTC output frames the model emits for one image."""
        return self.img_width // 2 ** min(len(self.conv_filters), 2)


@dataclass(frozen=True)
class TrainConfig:
    """Everything one ``train`` run needs.

    Attributes:
        lr: Adam learning rate. batch_size: images per step. epochs: maximum epochs.
        patience: epochs without a better ``val_cer`` before early stopping (0 = never stop early).
        seed: seeds Python, NumPy and TensorFlow, the random split and the shuffle.
        augment: random shear/scale/stroke-width augmentation of training images.
        model_name / full_model_name: registered model names of the prediction and full models.
        register: register the models in the Model Registry (False: log only).
    """

    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    lr: float = 1e-3
    batch_size: int = 32
    epochs: int = 40
    patience: int = 8
    seed: int = 42
    augment: bool = True
    model_name: str = "hwr-crnn"
    full_model_name: str = "hwr-crnn-full"
    register: bool = True

    def validate(self) -> "TrainConfig":
        self.data.validate()
        self.model.validate()
        if self.lr <= 0:
            raise ConfigError(f"lr={self.lr}: expected a positive learning rate")
        for name in ("batch_size", "epochs"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"{name}={getattr(self, name)}: expected a positive integer")
        if self.patience < 0:
            raise ConfigError(f"patience={self.patience}: expected 0 (off) or a positive integer")
        return self

    def flat_params(self) -> dict[str, object]:
        """All parameters as one flat dict (the names of the MLproject parameters)."""
        flat: dict[str, object] = {}
        for key, value in dataclasses.asdict(self).items():
            if isinstance(value, dict):
                flat.update(value)
            else:
                flat[key] = value
        flat["conv_filters"] = ",".join(str(v) for v in self.model.conv_filters)
        return flat

    def replace(self, **changes) -> "TrainConfig":
        """A copy with flat parameter names changed (``lr=...``, ``img_width=...``, ...)."""
        groups = {"data": DataConfig, "model": ModelConfig}
        nested: dict[str, dict] = {g: {} for g in groups}
        top: dict[str, object] = {}
        for key, value in changes.items():
            for group, cls in groups.items():
                if key in {f.name for f in dataclasses.fields(cls)}:
                    nested[group][key] = value
                    break
            else:
                if key not in {f.name for f in dataclasses.fields(TrainConfig)}:
                    raise ConfigError(f"unknown parameter {key!r}")
                top[key] = value
        if "conv_filters" in nested["model"]:
            nested["model"]["conv_filters"] = parse_int_list(nested["model"]["conv_filters"], "conv_filters")
        return dataclasses.replace(
            self,
            data=dataclasses.replace(self.data, **nested["data"]),
            model=dataclasses.replace(self.model, **nested["model"]),
            **top,
        )


@dataclass(frozen=True)
class FinetuneConfig:
    """Everything one ``finetune`` run needs: adapt a registered *full* model to new data.

    Attributes:
        base_model: MLflow URI of a full model (``models:/NAME/VERSION``, ``models:/NAME@alias``,
            ``runs:/RUN_ID/full_model``); its input geometry and charset are kept.
        head_epochs, head_lr: phase 1 (layers up to ``freeze_until`` frozen); 0 epochs skips it.
        full_epochs, full_lr: phase 2 (all layers trainable, usually a lower rate); 0 skips it.
        patience: per phase, epochs without a better ``val_cer`` before stopping (0 = never).
        freeze_until: layer name; it and every layer before it are frozen in phase 1.
            ``auto`` = the last recurrent layer, so only the output layer trains.
        batch_size, seed, augment, model_name, full_model_name, register: as in :class:`TrainConfig`.
    """

    base_model: str = "models:/hwr-crnn-full@champion"
    data: DataConfig = field(default_factory=DataConfig)
    head_epochs: int = 5
    head_lr: float = 1e-3
    full_epochs: int = 15
    full_lr: float = 1e-4
    patience: int = 5
    freeze_until: str = "auto"
    batch_size: int = 32
    seed: int = 42
    augment: bool = True
    model_name: str = "hwr-crnn"
    full_model_name: str = "hwr-crnn-full"
    register: bool = True

    def validate(self) -> "FinetuneConfig":
        self.data.validate()
        if not self.base_model.strip():
            raise ConfigError("base_model is empty: give a model URI such as models:/hwr-crnn-full@champion")
        for name in ("head_lr", "full_lr"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"{name}={getattr(self, name)}: expected a positive learning rate")
        for name in ("head_epochs", "full_epochs", "patience"):
            if getattr(self, name) < 0:
                raise ConfigError(f"{name}={getattr(self, name)}: expected 0 or a positive integer")
        if self.head_epochs + self.full_epochs == 0:
            raise ConfigError("head_epochs and full_epochs are both 0: nothing to train")
        if self.batch_size <= 0:
            raise ConfigError(f"batch_size={self.batch_size}: expected a positive integer")
        return self

    def flat_params(self) -> dict[str, object]:
        """All parameters as one flat dict (the names of the MLproject parameters)."""
        flat = {k: v for k, v in dataclasses.asdict(self).items() if k != "data"}
        return {"base_model": flat.pop("base_model"), **dataclasses.asdict(self.data), **flat}

    def replace(self, **changes) -> "FinetuneConfig":
        """A copy with flat parameter names changed (``head_lr=...``, ``data=...``, ...)."""
        data_fields = {f.name for f in dataclasses.fields(DataConfig)}
        top_fields = {f.name for f in dataclasses.fields(FinetuneConfig)} - {"data"}
        unknown = set(changes) - data_fields - top_fields
        if unknown:
            raise ConfigError(f"unknown parameter {sorted(unknown)[0]!r}")
        data = dataclasses.replace(self.data, **{k: v for k, v in changes.items() if k in data_fields})
        return dataclasses.replace(self, data=data, **{k: v for k, v in changes.items() if k in top_fields})

    def train_config(self, model: ModelConfig) -> TrainConfig:
        """The TrainConfig of the shared training steps (pipelines, registration) for ``model``."""
        return TrainConfig(data=self.data, model=model, lr=self.full_lr, batch_size=self.batch_size,
                           epochs=max(self.head_epochs + self.full_epochs, 1), patience=self.patience,
                           seed=self.seed, augment=self.augment, model_name=self.model_name,
                           full_model_name=self.full_model_name, register=self.register)
