"""Test-time augmentation (TTA): does averaging the model's per-frame probabilities over a few
fixed distortions of each test image lower the CER, and what does it cost per image?

    .venv/bin/python bench/tta.py --model models:/hwr-crnn@champion --data ../shared/data/dhsd

The distortions are fixed members of the family training augments with
(:func:`hwr.data.pipeline.augment`): slant (x-shear) of +-0.15, a 0.9 shrink about the left edge,
strokes thickened by a 2x2 minimum filter. Slants (:func:`hwr.model.tta.slanted`, what ``tta=true``
uses) and thicker strokes keep the ink where it was, so the CTC frames of the copies line up and
their probabilities can be averaged frame by frame before decoding; the shrink moves the ink
along the line, so its average with the plain image is shown only to make that visible. Prints
CER/WER with greedy decoding and with the model's own language model (``decoder=beam_lm``) for
the plain model, each distortion alone and their averages, and the forward passes' ms per image.
Choose a combination on ``--split val``; report it on ``test``.
"""

from __future__ import annotations

import argparse
import time

import cv2
import numpy as np

from decoding import decode_all, model_and_data, probabilities
from hwr.evaluation import metrics
from hwr.model.decode import decode
from hwr.model.tta import slanted

# name -> (slant, scale); "thicker" is the 2x2 minimum filter
DISTORTIONS = {"plain": (0.0, 1.0), "slant +0.15": (0.15, 1.0), "slant -0.15": (-0.15, 1.0),
               "shrink 0.9": (0.0, 0.9), "thicker": None}
AVERAGES = {"plain + shrink": ("plain", "shrink 0.9"),
            "plain + both slants": ("plain", "slant +0.15", "slant -0.15"),
            "plain + slants + shrink": ("plain", "slant +0.15", "slant -0.15", "shrink 0.9"),
            "all five": tuple(DISTORTIONS)}


def distort(images: np.ndarray, name: str) -> np.ndarray:
    """``(n, height, width, 1)`` float32 in [0, 1] -> the same shape, distorted by ``name`` of
    :data:`DISTORTIONS` (uncovered pixels get the background, 1.0)."""
    if DISTORTIONS[name] is None:
        kernel = np.ones((2, 2), np.uint8)
        return np.stack([cv2.erode(image[..., 0], kernel)[..., None] for image in images])
    slant, scale = DISTORTIONS[name]
    if scale == 1.0:
        return slanted(images, slant)
    centre = images.shape[1] / 2.0
    inverse = np.float32([[1 / scale, 0, 0], [0, 1 / scale, centre - centre / scale]])
    size = (images.shape[2], images.shape[1])
    return np.stack([cv2.warpAffine(image[..., 0], inverse, size, flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                                    borderMode=cv2.BORDER_CONSTANT, borderValue=1.0)[..., None] for image in images])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, help="prediction model URI, e.g. models:/hwr-crnn/3")
    parser.add_argument("--data", default="../shared/data/dhsd")
    parser.add_argument("--split", default="test")
    parser.add_argument("--beam-width", type=int, default=10)
    args = parser.parse_args()
    inner, data = model_and_data(args.model, args.data)
    truth, n = data.texts(args.split), len(data.texts(args.split))
    probs, seconds = {}, {}
    for name in DISTORTIONS:
        probs[name], seconds[name] = probabilities(inner.model, data, args.split, lambda x, d=name: distort(x, d))
    for label, names in AVERAGES.items():
        # every distortion's batches hold the same rows in the same order (same widths)
        probs[label] = [(rows, np.mean([probs[d][i][1] for d in names], axis=0))
                        for i, (rows, _) in enumerate(probs[names[0]])]
        seconds[label] = sum(seconds[d] for d in names)
    decoders = {"greedy": "greedy"} | ({"beam_lm": "beam_lm"} if inner.language is not None else {})
    print(f"\n{args.model} on {args.data} {args.split} ({n} images, {'true' if data.model.true_width else 'fixed'} shape)")
    print(f"{'copies averaged':24} {'decoder':8} {'CER':>7} {'WER':>7} {'forward ms/image':>17}")
    for label in probs:
        for decoder in decoders:
            texts, _ = decode_all(probs[label], n, lambda p: decode(p, inner.charset, decoder, args.beam_width,
                                                                      inner.language))
            print(f"{label:24} {decoder:8} {metrics.cer(truth, texts):7.4f} {metrics.wer(truth, texts):7.4f} "
                  f"{1000 * seconds[label]:17.2f}", flush=True)


if __name__ == "__main__":
    main()
