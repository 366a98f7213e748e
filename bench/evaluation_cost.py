"""What the test evaluation at the end of every ``train``/``finetune``/``pretrain`` costs: the
four readings a run logs (greedy, ``beam_lm``, each with and without ``tta``) one after the other,
as :func:`hwr.training.steps.evaluate` gives them singly (8 forward passes per image), against
:func:`hwr.training.steps.evaluate_ways`, which shares the passes (3 per image). Prints the
seconds of each, best of ``--repeats``, and checks that both give the same CER and WER.

    .venv/bin/python bench/evaluation_cost.py --model models:/hwr-crnn/1 --data ../shared/data/dhsd
"""

from __future__ import annotations

import argparse
import time


from decoding import model_and_data
from hwr.training.steps import evaluate, evaluate_ways

WAYS = {"": ("greedy", False), "_beam_lm": ("beam_lm", False), "_tta": ("greedy", True),
        "_beam_lm_tta": ("beam_lm", True)}


def timed(function) -> tuple[object, float]:
    """``function()`` and its wall seconds."""
    started = time.perf_counter()
    out = function()
    return out, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, help="prediction model URI, e.g. models:/hwr-crnn/3")
    parser.add_argument("--data", default="../shared/data/dhsd")
    parser.add_argument("--split", default="test")
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    inner, data = model_and_data(args.model, args.data)
    model, language = inner.model, inner.language
    evaluate(model, data, args.split)  # traces the forward pass for this geometry, outside the timing
    singly, shared = [], []
    for _ in range(args.repeats):
        one_by_one, seconds = timed(lambda: {name: evaluate(model, data, args.split, decoder, language, tta)
                                             for name, (decoder, tta) in WAYS.items()})
        singly.append(seconds)
        together, seconds = timed(lambda: evaluate_ways(model, data, args.split, WAYS, language))
        shared.append(seconds)
    assert one_by_one == together, (one_by_one, together)
    n = len(data.texts(args.split))
    print(f"{args.model} on {args.data} {args.split} ({n} images, {'true' if data.model.true_width else 'fixed'} shape); best of {args.repeats}")
    print(f"four readings one by one (8 forward passes): {min(singly):7.2f} s")
    print(f"four readings sharing the passes (3):        {min(shared):7.2f} s  ({min(singly) / min(shared):.2f}x)")
    for name, result in together.items():
        print(f"  test_cer{name:14} {result['cer']:.4f}   test_wer{name:14} {result['wer']:.4f}")


if __name__ == "__main__":
    main()
