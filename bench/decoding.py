"""Test CER of each decoder on one trained model, and what each costs per image.

    .venv/bin/python bench/decoding.py --model models:/hwr-crnn@champion [--data ../shared/data/hooker]
                                       [--order 6] [--alpha 0.5] [--beta 1.0] [--beam-width 10]

The model's forward pass runs once per test image; its probabilities are then decoded by greedy
(best path), TensorFlow's CTC beam search, CTC prefix beam search with a character n-gram language
model built from the data set's *training* labels (:mod:`hwr.model.language`), and, for words,
greedy followed by lexicon correction with the training labels as the lexicon. ``alpha`` and
``beta`` are chosen on the val split from a small grid unless given. Prints CER/WER and
milliseconds per image of each decoder (decoding only; the forward pass's own cost is printed apart).
"""

from __future__ import annotations

import argparse
import time

import mlflow
import numpy as np

from hwr.config import DataConfig, ModelConfig
from hwr.data.dataset import prepare_data
from hwr.evaluation import metrics
from hwr.evaluation.lexicon import Lexicon
from hwr.model.decode import beam_decode, greedy_decode
from hwr.model.inference import predict_probs, width_batches
from hwr.model.language import CharNgram, lm_beam_decode


def probabilities(model, data, split: str, transform=None) -> tuple[list[tuple[np.ndarray, np.ndarray]], float]:
    """``[(rows, probs)]`` per width batch of ``split`` and the forward pass's seconds per image;
    ``transform`` (images -> images of the same shape) is applied to the split's images first,
    outside the timing."""
    images, widths = data.model_input(split)
    images = images if transform is None else transform(images)
    started, out = time.perf_counter(), []
    for rows, width in width_batches(widths if data.model.true_width else None, len(images), 64,
                                     data.model.width_stride):
        batch = images[rows] if width is None else images[rows, :, :width]
        out.append((rows, predict_probs(model, batch)[0]))
    return out, (time.perf_counter() - started) / len(images)


def decode_all(batches, n: int, decode) -> tuple[list[str], float]:
    """Texts in row order, and decoding seconds per image."""
    texts, started = [""] * n, time.perf_counter()
    for rows, probs in batches:
        for row, text in zip(rows, decode(probs)[0]):
            texts[row] = text
    return texts, (time.perf_counter() - started) / n


def model_and_data(uri: str, data_dir: str, max_per_split: int = 0):
    """(the prediction model's inner pyfunc, the data prepared at its geometry with its charset;
    rows the model cannot read are skipped)."""
    inner = mlflow.pyfunc.load_model(uri).unwrap_python_model()
    shape = "true" if getattr(inner, "true_width", False) else "fixed"
    geometry = ModelConfig(shape=shape, img_height=inner.height, img_width=inner.width)
    data = prepare_data(DataConfig(data=data_dir, max_per_split=max_per_split, on_bad_input="skip"),
                        geometry, 42, charset=inner.charset)
    return inner, data


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, help="prediction model URI, e.g. models:/hwr-crnn/3")
    parser.add_argument("--data", default="../shared/data/hooker")
    parser.add_argument("--order", type=int, default=6)
    parser.add_argument("--alpha", type=float)
    parser.add_argument("--beta", type=float)
    parser.add_argument("--beam-width", type=int, default=10)
    parser.add_argument("--max-per-split", type=int, default=0)
    args = parser.parse_args()
    inner, data = model_and_data(args.model, args.data, args.max_per_split)
    lm = CharNgram(data.texts("train"), inner.charset, args.order)
    val, _ = probabilities(inner.model, data, "val")
    grid = [(a, b) for a in ([args.alpha] if args.alpha is not None else (0.3, 0.6, 1.0))
            for b in ([args.beta] if args.beta is not None else (0.0, 1.0, 2.0))]
    if len(grid) > 1:
        scores = {}
        for a, b in grid:
            texts, _ = decode_all(val, len(data.texts("val")), lambda p: lm_beam_decode(
                p, inner.charset, lm, args.beam_width, a, b))
            scores[(a, b)] = metrics.cer(data.texts("val"), texts)
            print(f"val CER with the language model, alpha {a}, beta {b}: {scores[(a, b)]:.4f}", flush=True)
        alpha, beta = min(scores, key=scores.get)
    else:
        alpha, beta = grid[0]
    test, forward = probabilities(inner.model, data, "test")
    truth, n = data.texts("test"), len(data.texts("test"))
    decoders = {
        "greedy": lambda p: greedy_decode(p, inner.charset),
        f"beam {args.beam_width}": lambda p: beam_decode(p, inner.charset, args.beam_width),
        f"beam {args.beam_width} + char {args.order}-gram LM (alpha {alpha}, beta {beta})":
            lambda p: lm_beam_decode(p, inner.charset, lm, args.beam_width, alpha, beta),
    }
    print(f"\n{args.model} on {args.data} test ({n} images, {shape} shape); forward pass "
          f"{1000 * forward:.2f} ms per image")
    print(f"{'decoder':58} {'test CER':>9} {'test WER':>9} {'ms/image':>9}")
    greedy = None
    for name, decode in decoders.items():
        texts, seconds = decode_all(test, n, decode)
        greedy = texts if greedy is None else greedy
        print(f"{name:58} {metrics.cer(truth, texts):9.4f} {metrics.wer(truth, texts):9.4f} {1000 * seconds:9.2f}")
    if shape == "fixed":
        lexicon = Lexicon(sorted(set(data.texts("train"))))
        started = time.perf_counter()
        corrected, _ = lexicon.correct_all(greedy)
        seconds = (time.perf_counter() - started) / n
        print(f"{'greedy + lexicon of the training labels':58} {metrics.cer(truth, corrected):9.4f} "
              f"{metrics.wer(truth, corrected):9.4f} {1000 * seconds:9.2f}")


if __name__ == "__main__":
    main()
