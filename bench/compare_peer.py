"""hwr's default recipe against a keras.io-style CRNN, trained for the same wall-clock minutes on
the same split, one system after the other in one process (never both at once).

    .venv/bin/python bench/compare_peer.py [--minutes 10] [--data ../shared/data/dhsd ../shared/data/hooker]
                                           [--max-per-split 0] [--png docs/compare_peer.png] [-P NAME=VALUE ...]
                                           [--variant "NAME=VALUE NAME=VALUE" ...] [--base-model URI]

The peer, written from the keras.io "Handwriting recognition" example's description: 128 x 32
input, 2 conv blocks (32, 64 filters, 3 x 3, ReLU, 2 x 2 max-pool), dense 64 + dropout 0.2, BiLSTM
128 and 64 (dropout 0.25), softmax; Adam 1e-3, no augmentation, the CTC loss of Keras
(``keras.ops.ctc_loss``, dense labels). Its training rows are those whose label fits its 32 CTC
frames (as in the example); val and test are every row. hwr: ``train``'s defaults (geometry
picked from the data as ``train`` picks it) with ``max_minutes`` set to the same budget; ``-P``
overrides hwr's parameters. Each ``--variant`` trains one more hwr system in the same run, with its
own overrides on top of ``-P`` (a lever tried side by side with the default); ``--base-model``
one more that starts from a pretrained full model (``pretrain``'s ``hwr-base-full``): its minutes
here do not count the pretraining's.

Prints per data set and system: training samples/s (time inside training steps only), epochs,
test CER/WER (greedy), and the val CER curve against wall minutes; the curves also go to ``--png``.
"""

from __future__ import annotations

import argparse
import dataclasses
import time
from dataclasses import dataclass, field
from pathlib import Path

import keras
import numpy as np
from keras import layers, ops

from hwr.cli import parse_config
from hwr.config import DataConfig, TrainConfig
from hwr.data.charset import Charset
from hwr.data.dataset import load_images, prepare_data
from hwr.data.labels import BadInputLog, read_labels
from hwr.data.pipeline import as_model_input, make_dataset, pad_labels
from hwr.evaluation import metrics
from hwr.model.crnn import prediction_model
from hwr.model.inference import transcribe
from hwr.training.callbacks import ValidationMetrics
from hwr.training.fit import fit
from hwr.training.steps import build_model, datasets, evaluate

PEER_HEIGHT, PEER_WIDTH, PEER_BATCH = 32, 128, 32


@dataclass
class Outcome:
    """One system's figures on one data set; ``curve``: (wall minutes, val CER) after each epoch."""

    system: str
    samples_per_s: float
    epochs: int
    test_cer: float
    test_wer: float
    curve: list[tuple[float, float]] = field(default_factory=list)


class StepClock(keras.callbacks.Callback):
    """Samples per second inside training steps: from each epoch's start to its last batch
    (validation excluded), over the epochs after the first (whose first steps trace the graph)
    when there are any."""

    def __init__(self, batch_size: int):
        super().__init__()
        self.batch_size, self.epochs, self._start, self._last, self._samples = batch_size, [], 0.0, 0.0, 0

    def on_epoch_begin(self, epoch, logs=None):
        self._start = self._last = time.perf_counter()
        self._samples = 0

    def on_train_batch_end(self, batch, logs=None):
        self._last = time.perf_counter()
        self._samples += self.batch_size

    def on_epoch_end(self, epoch, logs=None):
        self.epochs.append((self._last - self._start, self._samples))

    def rate(self) -> float:
        epochs = self.epochs[1:] or self.epochs
        return sum(n for _, n in epochs) / max(sum(s for s, _ in epochs), 1e-9)


class WallCurve(keras.callbacks.Callback):
    """Records (minutes since ``started``, val_cer) after each epoch and stops training once
    ``seconds`` have passed (checked after every batch)."""

    def __init__(self, started: float, seconds: float | None = None):
        super().__init__()
        self.started, self.seconds, self.curve = started, seconds, []

    def on_train_batch_end(self, batch, logs=None):
        if self.seconds is not None and time.monotonic() - self.started >= self.seconds:
            self.model.stop_training = True

    def on_epoch_end(self, epoch, logs=None):
        self.curve.append(((time.monotonic() - self.started) / 60, float(logs["val_cer"])))


@keras.saving.register_keras_serializable(package="bench")
class DenseCTC(layers.Layer):
    """keras.io's CTC layer: Keras' dense-label ``ctc_loss`` on the softmax output."""

    def call(self, labels, probs):
        length = ops.sum(ops.cast(labels > 0, "int32"), axis=-1)
        frames = ops.full((ops.shape(probs)[0],), ops.shape(probs)[1], dtype="int32")
        self.add_loss(ops.mean(ops.ctc_loss(labels, probs, length, frames, mask_index=0)))
        return probs


def peer_model(num_classes: int) -> keras.Model:
    """The keras.io-style CRNN (see the module docstring); output layer named like hwr's."""
    image = keras.Input((PEER_HEIGHT, PEER_WIDTH, 1), name="image")
    label = keras.Input((None,), dtype="int32", name="label")
    x = image
    for i, filters in enumerate((32, 64), start=1):
        x = layers.Conv2D(filters, 3, activation="relu", padding="same", kernel_initializer="he_normal")(x)
        x = layers.MaxPooling2D(2)(x)
    x = layers.Permute((2, 1, 3))(x)
    x = layers.Reshape((PEER_WIDTH // 4, (PEER_HEIGHT // 4) * 64))(x)
    x = layers.Dropout(0.2)(layers.Dense(64, activation="relu")(x))
    x = layers.Bidirectional(layers.LSTM(128, return_sequences=True, dropout=0.25))(x)
    x = layers.Bidirectional(layers.LSTM(64, return_sequences=True, dropout=0.25))(x)
    probs = layers.Dense(num_classes, activation="softmax", name="output")(x)
    model = keras.Model({"image": image, "label": label}, DenseCTC()(label, probs))
    model.compile(optimizer=keras.optimizers.Adam(1e-3))
    return model


def run_peer(data_dir: str, minutes: float, max_per_split: int, seed: int) -> Outcome:
    """Train and test the peer on ``data_dir``'s split for ``minutes`` of wall time."""
    cfg = DataConfig(data=data_dir, max_per_split=max_per_split)
    frame = read_labels(cfg, seed, BadInputLog("error", cfg.labels_path()))
    charset = Charset.from_texts(frame.loc[frame.split == "train", "text"])
    frames_needed = frame.text.map(lambda t: len(t) + sum(a == b for a, b in zip(t, t[1:])))
    frame = frame[(frame.split != "train") | (frames_needed <= PEER_WIDTH // 4)]
    bad = BadInputLog("error", cfg.labels_path())
    split = {}
    for s in ("train", "val", "test"):
        images, _, rows = load_images(frame[frame.split == s], PEER_HEIGHT, PEER_WIDTH, bad, s)
        split[s] = (images, rows)
    print(f"peer: {len(split['train'][1])} training rows fit its {PEER_WIDTH // 4} frames", flush=True)
    keras.utils.set_random_seed(seed)
    model = peer_model(charset.num_classes)
    texts = {s: split[s][1].text.tolist() for s in split}
    train_ds = make_dataset(split["train"][0], pad_labels(texts["train"], charset), PEER_BATCH, shuffle=True,
                            augment_images=False, seed=seed)
    clock, started = StepClock(PEER_BATCH), time.monotonic()
    curve = WallCurve(started, 60 * minutes)
    val = ValidationMetrics(as_model_input(split["val"][0]), texts["val"], charset)
    model.fit(train_ds, epochs=10_000, callbacks=[clock, val, curve], verbose=0)
    hyps, _ = transcribe(prediction_model(model), charset, as_model_input(split["test"][0]))
    return Outcome("keras.io-style peer", clock.rate(), len(curve.curve),
                   metrics.cer(texts["test"], hyps), metrics.wer(texts["test"], hyps), curve.curve)


def run_hwr(data_dir: str, minutes: float, max_per_split: int, overrides: dict[str, str],
            system: str = "hwr default", base_model: str = "") -> Outcome:
    """Train and test hwr's default recipe with ``max_minutes=minutes`` on ``data_dir``; with
    ``base_model`` (a full model's URI, e.g. ``pretrain``'s ``models:/hwr-base-full/1``), start from
    its weights and geometry, as ``finetune -P head_epochs=0`` does, at ``train``'s learning rate."""
    given = {"data": data_dir, "max_per_split": max_per_split, "max_minutes": minutes, **overrides}
    cfg = parse_config(TrainConfig, "hwr", [f"--{name}={value}" for name, value in given.items()])
    if base_model:
        model, data = from_base(base_model, cfg)
    else:
        data = prepare_data(cfg.data, cfg.model, cfg.seed)
        model = build_model(dataclasses.replace(cfg, model=data.model), data.charset)
    cfg = dataclasses.replace(cfg, model=data.model)
    train_ds, val_ds = datasets(cfg, data)
    clock, started = StepClock(cfg.batch_size), time.monotonic()
    curve = WallCurve(started)
    val_images, val_widths = data.model_input("val")
    history, _ = fit(model, train_ds, None, val_images, data.texts("val"), data.charset, cfg.epochs,
                     cfg.patience, callbacks=(clock, curve), max_minutes=minutes, val_widths=val_widths)
    test = evaluate(prediction_model(model), data, "test")
    m = cfg.model
    print(f"hwr: {m.img_height} x {m.img_width} ({'true shape, bucketed' if m.true_width else 'fixed'}), "
          f"{model.count_params():,} parameters", flush=True)
    return Outcome(system, clock.rate(), len(history), test["cer"], test["wer"], curve.curve)


def from_base(uri: str, cfg: TrainConfig):
    """(compiled full model, prepared data): ``uri``'s full model widened to the characters of the
    training labels it lacks (:func:`hwr.model.transfer.rebuild_with_classes`), data at its geometry."""
    import mlflow

    from hwr.model import transfer
    from hwr.model.crnn import compile_model
    from hwr.training.finetune import resolve_base_model, union_charset

    base = resolve_base_model(uri)
    base_full = mlflow.tensorflow.load_model(uri)
    charset, _ = union_charset(cfg.data, cfg.seed, base.charset)
    data = prepare_data(cfg.data, transfer.model_config_of(base_full), cfg.seed, charset=charset)
    model = transfer.rebuild_with_classes(base_full, charset.num_classes, cfg.seed)
    return compile_model(model, cfg.lr, cfg.weight_decay, cfg.clipnorm), data


def plot(results: dict[str, list[Outcome]], path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(results), figsize=(5.5 * len(results), 4.8), squeeze=False)
    for ax, (name, outcomes) in zip(axes[0], results.items()):
        for o in outcomes:
            ax.plot(*zip(*o.curve), marker="o", markersize=3, label=f"{o.system} (test CER {o.test_cer:.3f})")
        ax.set(title=name, xlabel="wall time (minutes)", ylabel="val CER", ylim=(0, 1.05))
        ax.grid(alpha=0.3)
        ax.legend(fontsize="small", loc="upper center", bbox_to_anchor=(0.5, -0.18))  # below: never over a curve
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    print(f"curves: {path}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=10.0, help="wall-clock training budget per system")
    parser.add_argument("--data", nargs="+", default=["../shared/data/dhsd", "../shared/data/hooker"])
    parser.add_argument("--max-per-split", type=int, default=0, help="rows per split (0 = all), for a quick look")
    parser.add_argument("--png", default="docs/compare_peer.png")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("-P", action="append", default=[], help="hwr parameter override NAME=VALUE")
    parser.add_argument("--systems", nargs="+", default=["peer", "hwr"], choices=["peer", "hwr"],
                        help="train only these (e.g. hwr alone, to try a lever)")
    parser.add_argument("--variant", action="append", default=[],
                        help='one more hwr system with these overrides, e.g. "conv_filters=16,32,64 lstm1_units=64"')
    parser.add_argument("--base-model", default="",
                        help="one more hwr system that starts from this full model's weights, e.g. "
                             "models:/hwr-base-full/1 from `pretrain` (MLFLOW_TRACKING_URI names its store)")
    args = parser.parse_args()
    overrides = dict(p.split("=", 1) for p in args.P)
    variants = {text: {**overrides, **dict(p.split("=", 1) for p in text.split())} for text in args.variant}
    results = {}
    for data_dir in args.data:
        name = Path(data_dir).name
        outcomes = []
        if "peer" in args.systems:
            outcomes.append(run_peer(data_dir, args.minutes, args.max_per_split, args.seed))
        if "hwr" in args.systems:
            outcomes.append(run_hwr(data_dir, args.minutes, args.max_per_split, overrides))
        for text, given in variants.items():
            outcomes.append(run_hwr(data_dir, args.minutes, args.max_per_split, given, f"hwr {text}"))
        if args.base_model:
            outcomes.append(run_hwr(data_dir, args.minutes, args.max_per_split, overrides,
                                    f"hwr from {args.base_model}", args.base_model))
        results[name] = outcomes
        print(f"\n== {name}: {args.minutes:g} min each{' (hwr with ' + ' '.join(args.P) + ')' if args.P else ''} ==")
        width = max(22, *(len(o.system) for o in outcomes))
        print(f"{'system':{width}} {'samples/s':>10} {'epochs':>7} {'test CER':>9} {'test WER':>9}")
        for o in outcomes:
            print(f"{o.system:{width}} {o.samples_per_s:10.1f} {o.epochs:7d} {o.test_cer:9.4f} {o.test_wer:9.4f}")
        if "peer" in args.systems:
            peer = outcomes[0]
            for ours in outcomes[1:]:
                print(f"ratios {ours.system}/peer: throughput {ours.samples_per_s / peer.samples_per_s:.2f}x, "
                      f"test CER {ours.test_cer / peer.test_cer:.2f}x")
        for o in outcomes:
            print(f"val CER curve, {o.system}: " + ", ".join(f"{t:.1f} min {c:.3f}" for t, c in o.curve))
    plot(results, Path(args.png))


if __name__ == "__main__":
    main()
