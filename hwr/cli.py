"""Command-line plumbing shared by the entry points: flat MLproject parameters <-> configs,
and turning the project's own errors into one clear line instead of a stack trace."""

from __future__ import annotations

import argparse
import sys
from typing import Callable

from hwr.config import ConfigError, TrainConfig

HELP = {
    "data": "folder of images; image paths in the labels CSV are relative to it",
    "labels": "labels CSV (relative paths are inside --data)",
    "image_col": "CSV column with the image path", "text_col": "CSV column with the transcription",
    "split_col": "optional CSV column with train/val/test; without it a seeded random split is made",
    "val_fraction": "fraction of rows for val when the CSV has no split column",
    "test_fraction": "fraction of rows for test when the CSV has no split column",
    "on_bad_input": "error: stop at the first bad row; skip: count, log (bad_inputs.csv) and go on",
    "max_per_split": "use only the first N rows of each split (0 = all), for quick runs",
    "img_height": "model input height in pixels (images are scaled to it, keeping aspect ratio)",
    "img_width": "model input width in pixels; the model emits img_width/4 CTC frames",
    "conv_filters": "filters of each convolution block, comma-separated, e.g. 32,64,128",
    "kernel_size": "convolution kernel size (pixels)", "activation": "activation of conv and dense layers",
    "dense_units": "units of the dense layer between convolutions and LSTMs",
    "dropout": "dropout rate after the dense layer and between the LSTMs",
    "lstm1_units": "units per direction of the first bidirectional LSTM",
    "lstm2_units": "units per direction of the second bidirectional LSTM",
    "lr": "Adam learning rate", "batch_size": "images per training step", "epochs": "maximum epochs",
    "patience": "stop after this many epochs without a better val_cer (0 = never)",
    "seed": "seed for Python, NumPy, TensorFlow, the random split and the shuffle",
    "augment": "random slant/scale/stroke-width augmentation of training images (true/false)",
    "model_name": "registered model name of the prediction (pyfunc) model",
    "full_model_name": "registered model name of the full (trainable, with CTC loss) model",
    "register": "register both models in the Model Registry (true/false)",
}


def parse_bool(text: str) -> bool:
    value = str(text).strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


def add_params(parser: argparse.ArgumentParser, defaults: dict, only: set[str] | None = None) -> None:
    """Add ``--name`` options for flat parameters, typed after their defaults."""
    for name, default in defaults.items():
        if only is not None and name not in only:
            continue
        kind = parse_bool if isinstance(default, bool) else type(default)
        parser.add_argument(f"--{name}", type=kind, default=default,
                            help=f"{HELP.get(name, '')} (default: {default})")


def train_config(args: argparse.Namespace, base: TrainConfig | None = None) -> TrainConfig:
    """The TrainConfig named by parsed options (only options that are TrainConfig parameters)."""
    base = base or TrainConfig()
    known = base.flat_params()
    return base.replace(**{k: v for k, v in vars(args).items() if k in known}).validate()


def run_cli(main: Callable[[], object]) -> None:
    """Run an entry point; the project's own errors exit with status 2 and one line on stderr."""
    from hwr.data import BadInputError

    try:
        main()
    except (ConfigError, BadInputError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
