"""What the pyfunc's copy of the model for inference gains: the default word model's prediction
copy with its LSTMs unrolled only (``for_inference(model, fold_norms=False)``, the copy the pyfunc
used before the folding), against :func:`hwr.model.folding.for_inference` (batch
normalisations folded into the convolutions, LSTMs unrolled), in interleaved rounds.

    .venv/bin/python bench/inference_copy.py [--rounds 4] [--data ../shared/data/dhsd]

Prints per round and copy: the forward pass at batch 64 (ms per image) and the whole pyfunc from
base64 PNG over the test split (images/s). The weights are untrained; the batch normalisations get
moving statistics far from a fresh layer's, so the folding has something to fold.
"""

from __future__ import annotations

import argparse
import base64
import time
from pathlib import Path

import keras
import numpy as np
import pandas as pd
from keras import layers

from hwr.config import ModelConfig
from hwr.data.charset import Charset
from hwr.mlflow.pyfunc import HwrPredictionModel
from hwr.model.crnn import build_crnn, prediction_model
from hwr.model.folding import for_inference
from hwr.model.inference import inference_function


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--data", default="../shared/data/dhsd")
    args = parser.parse_args()
    labels = pd.read_csv(Path(args.data) / "labels.csv", dtype=str, keep_default_na=False)
    test = labels[labels.split == "test"]
    charset = Charset.from_texts(labels.text)
    keras.utils.set_random_seed(0)
    cfg = ModelConfig(shape="fixed")
    model = prediction_model(build_crnn(cfg, charset.num_classes))
    rng = np.random.default_rng(0)
    for layer in model.layers:
        if isinstance(layer, layers.BatchNormalization):
            n = layer.gamma.shape[0]
            layer.set_weights([rng.uniform(0.5, 1.5, n), rng.normal(0, 0.1, n), rng.normal(0, 0.1, n),
                               rng.uniform(0.5, 2.0, n)])
    frame = pd.DataFrame({"image": [base64.b64encode((Path(args.data) / p).read_bytes()).decode() for p in test.image]})
    copies = {"unrolled only": for_inference(model, fold_norms=False), "for_inference": for_inference(model)}
    batch = rng.random((64, cfg.img_height, cfg.img_width, 1), np.float32)
    for round_ in range(1, args.rounds + 1):
        for name, copy in copies.items():
            pyfunc = HwrPredictionModel()
            pyfunc.use(model, charset)
            pyfunc.model = copy
            forward = inference_function(copy, batch.shape[1:])
            for _ in range(3):
                forward(batch)
            started = time.perf_counter()
            for _ in range(30):
                np.asarray(forward(batch))
            ms = 1000 * (time.perf_counter() - started) / 30 / len(batch)
            pyfunc.predict(None, frame.head(64))
            started = time.perf_counter()
            for i in range(0, len(frame), 64):
                pyfunc.predict(None, frame.iloc[i:i + 64])
            rate = len(frame) / (time.perf_counter() - started)
            print(f"round {round_} {name:14s} forward {ms:.3f} ms/image, pyfunc {rate:7.1f} images/s", flush=True)


if __name__ == "__main__":
    main()
