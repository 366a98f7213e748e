"""Training and prediction throughput of the default CRNN on real DHSD images, and peak memory.

    .venv/bin/python bench/train_throughput.py [--steps 60] [--data ../shared/data/dhsd] [-P img_width=640 ...]

Prints: training samples/s (augmented pipeline, default batch size, after a warm-up), prediction
images/s at batch 64 for (a) the Keras prediction model + greedy decoding on preprocessed arrays
and (b) the whole pyfunc path from base64 PNG bytes, and the process's peak RSS.
"""

import argparse
import dataclasses
import base64
import resource
import sys
import time
from pathlib import Path

import pandas as pd

from hwr.config import TrainConfig
from hwr.data.dataset import prepare_data
from hwr.model.crnn import prediction_model
from hwr.model.inference import transcribe
from hwr.training.steps import build_model, datasets


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=60, help="timed training steps")
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
    batches = train_ds.repeat()
    model.fit(batches, steps_per_epoch=5, epochs=1, verbose=0)  # warm-up: tracing, pipeline start
    started = time.perf_counter()
    model.fit(batches, steps_per_epoch=args.steps, epochs=1, verbose=0)
    train_rate = args.steps * cfg.batch_size / (time.perf_counter() - started)

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
    print(f"training throughput:   {train_rate:8.1f} samples/s ({args.steps} steps)")
    print(f"prediction (keras+greedy, batch 64): {keras_rate:8.1f} images/s on {len(images)} test images")
    print(f"prediction (pyfunc from base64 PNG, batch 64): {pyfunc_rate:8.1f} images/s")
    print(f"peak RSS: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB")


if __name__ == "__main__":
    main()
