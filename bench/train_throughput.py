"""Training and prediction throughput of the default CRNN on real DHSD images, and peak memory.

    .venv/bin/python bench/train_throughput.py [--steps 60] [--rounds 3] [--data ../shared/data/dhsd] \
        [-P img_width=640 ...]

Prints: training samples/s (augmented pipeline, default batch size, after a warm-up; ``--rounds``
rounds of ``--steps`` steps on one iterator, each round's rate and their median: these hosts have
slow phases of several seconds in which every step takes 1.5-1.9x as long, so one short round can
read a phase rather than the model), prediction
images/s at batch 64 for (a) the Keras prediction model + greedy decoding on preprocessed arrays
and (b) the whole pyfunc path from base64 PNG bytes, and the process's peak RSS.
"""

import argparse
import dataclasses
import base64
import resource
import statistics
import sys
import time
from pathlib import Path

import pandas as pd

from hwr.config import TrainConfig
from hwr.data.dataset import prepare_data
from hwr.model.crnn import prediction_model
from hwr.model.inference import transcribe
from hwr.training.steps import build_model, datasets


def training_rates(model, train_ds, batch_size: int, steps: int, rounds: int) -> list[float]:
    """Samples/s of each of ``rounds`` rounds of ``steps`` training steps, after 5 warm-up steps
    (tracing, pipeline start), all from one iterator (one ``fit`` epoch of ``5 + steps * rounds``
    steps, timed at each step's end by a callback), as ``train`` trains."""
    import keras

    stamps = []

    class Stamp(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            stamps.append(time.perf_counter())

    model.fit(train_ds.repeat(), steps_per_epoch=5 + steps * rounds, epochs=1, verbose=0, callbacks=[Stamp()])
    ends = stamps[4::steps]  # the warm-up's last step, then each round's
    return [steps * batch_size / (b - a) for a, b in zip(ends, ends[1:])]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=60, help="timed training steps per round")
    parser.add_argument("--rounds", type=int, default=3, help="timed training rounds (median reported)")
    parser.add_argument("--data", default="../shared/data/dhsd")
    parser.add_argument("-P", action="append", default=[], help="config override NAME=VALUE")
    args = parser.parse_args()
    overrides = dict(p.split("=", 1) for p in args.P)
    base = TrainConfig()
    typed = {k: type(base.flat_params()[k])(v) if k != "conv_filters" else v for k, v in overrides.items()}
    cfg = base.replace(data=args.data, **typed).validate()
    data = prepare_data(cfg.data, cfg.model, cfg.seed)
    cfg = dataclasses.replace(cfg, model=data.model)
    m = cfg.model
    model = build_model(cfg, data.charset)
    train_ds, _ = datasets(cfg, data)
    rates = training_rates(model, train_ds, cfg.batch_size, args.steps, args.rounds)

    recognizer = prediction_model(model)
    images, widths = data.model_input("test")
    transcribe(recognizer, data.charset, images[:64], widths=widths[:64])
    started = time.perf_counter()
    transcribe(recognizer, data.charset, images, batch_size=64, widths=widths)
    keras_rate = len(images) / (time.perf_counter() - started)

    from hwr.mlflow.pyfunc import HwrPredictionModel  # the pyfunc's own preprocess + predict, no MLflow store

    pyfunc = HwrPredictionModel()
    pyfunc.use(recognizer, data.charset)
    frame = pd.DataFrame({"image": [base64.b64encode(Path(p).read_bytes()).decode() for p in data.frames["test"].path]})
    pyfunc.predict(None, frame.head(64))
    started = time.perf_counter()
    for i in range(0, len(frame), 64):
        pyfunc.predict(None, frame.iloc[i:i + 64])
    pyfunc_rate = len(frame) / (time.perf_counter() - started)

    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    print(f"device: {', '.join(g.name for g in gpus) + ' (GPU build, make venv-gpu)' if gpus else 'CPU only'}")
    print(f"config: {m.img_height}x{m.img_width}, conv {m.conv_filters}, lstm {m.lstm1_units}/{m.lstm2_units}, "
          f"batch {cfg.batch_size}, {model.count_params():,} parameters")
    print(f"training throughput:   {statistics.median(rates):8.1f} samples/s (median of {args.rounds} rounds of "
          f"{args.steps} steps: {', '.join(f'{r:.1f}' for r in rates)})")
    print(f"prediction (keras+greedy, batch 64): {keras_rate:8.1f} images/s on {len(images)} test images")
    print(f"prediction (pyfunc from base64 PNG, batch 64): {pyfunc_rate:8.1f} images/s")
    print(f"peak RSS: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB")


if __name__ == "__main__":
    main()
