"""Seconds per training epoch of the default model, with Keras building a new tf.data iterator
every epoch (``model.fit(train_ds, epochs=...)``) or with one iterator for the whole fit (the
training set repeated, ``steps_per_epoch`` = its batches per pass, as ``hwr.training.fit`` does).

    .venv/bin/python bench/epoch_times.py [--iterator one|per-epoch] [--epochs 8] [--data ../shared/data/dhsd]

Bare ``model.fit``: no validation, no callbacks but the clock, no MLflow. Prints one line per epoch
and the mean over the epochs after the first (which traces the step). Run each mode in its own
process, one after the other, and swap their order in a second round: the host's speed drifts.
"""

from __future__ import annotations

import argparse
import dataclasses
import time

import keras
import numpy as np

from hwr.config import TrainConfig
from hwr.data.dataset import prepare_data
from hwr.training.fit import epoch_source
from hwr.training.steps import build_model, datasets


class EpochClock(keras.callbacks.Callback):
    """Wall seconds of each epoch, in ``seconds``."""

    def __init__(self):
        super().__init__()
        self.seconds: list[float] = []

    def on_epoch_begin(self, epoch, logs=None):
        self._started = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.seconds.append(time.perf_counter() - self._started)
        print(f"epoch {epoch + 1}: {self.seconds[-1]:.1f} s", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--iterator", choices=["one", "per-epoch"], default="one")
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--data", default="../shared/data/dhsd")
    args = parser.parse_args()
    cfg = TrainConfig().replace(data=args.data).validate()
    data = prepare_data(cfg.data, cfg.model, cfg.seed)
    cfg = dataclasses.replace(cfg, model=data.model)
    model = build_model(cfg, data.charset)
    train_ds, _ = datasets(cfg, data)
    source, steps = epoch_source(train_ds) if args.iterator == "one" else (train_ds, None)
    clock = EpochClock()
    model.fit(source, steps_per_epoch=steps, epochs=args.epochs, verbose=0, callbacks=[clock], shuffle=False)
    later = clock.seconds[1:]
    print(f"iterator {args.iterator}: mean {np.mean(later):.1f} s per epoch after the first "
          f"(min {min(later):.1f}, max {max(later):.1f})")


if __name__ == "__main__":
    main()
