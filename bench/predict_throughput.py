r"""Throughput and memory of ``predict``.

1. images/s of a prediction model (pyfunc ``predict`` incl. base64 decoding and preprocessing)
   with greedy and beam decoding, at a batch of ``--batch`` images (default 64);
2. peak resident memory (``resource.getrusage``) of a whole ``predict`` run on the split repeated
   1x and 10x (each in a fresh process, so the peaks do not mix): flat memory means streaming works.

    .venv/bin/python bench/predict_throughput.py --model models:/hwr-crnn@champion \
        --data ../shared/data/dhsd --split test --repeats 1,10

Uses the tracking store of ``MLFLOW_TRACKING_URI`` (default ``sqlite:///mlflow.db``); the
predict runs go to the experiment ``hwr-bench``.
"""

from __future__ import annotations

import argparse
import base64
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def peak_rss_mib() -> float:
    """Peak resident set size of this process in MiB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def throughput(model_uri: str, paths: list[str], batch: int, beam_width: int) -> dict[str, float]:
    """images/s of the pyfunc's ``predict`` per decoder (one warm-up batch first)."""
    import mlflow

    from hwr.prediction.models import LoadedModel

    model = LoadedModel(model_uri, "bench", mlflow.pyfunc.load_model(model_uri))
    encoded = [base64.b64encode(Path(p).read_bytes()).decode("ascii") for p in paths]
    chunks = [encoded[i:i + batch] for i in range(0, len(encoded), batch)]
    rates = {}
    for decoder in ("greedy", "beam"):
        params = {"decoder": decoder, "beam_width": beam_width}
        model.predict(chunks[0], params)
        started = time.perf_counter()
        for chunk in chunks:
            model.predict(chunk, params)
        rates[decoder] = len(encoded) / (time.perf_counter() - started)
    return rates


def memory_run(args, repeat: int) -> None:
    """Child process: ``predict`` on the split repeated ``repeat`` times; prints its peak RSS."""
    import pandas as pd

    from hwr.prediction.predict import run_predict
    from hwr.config import PredictConfig

    labels = Path(args.data) / "labels.csv"
    table = pd.read_csv(labels, dtype=str, keep_default_na=False)
    table = table[table.split == args.split]
    with tempfile.TemporaryDirectory() as tmp:
        csv = Path(tmp) / "labels.csv"
        pd.concat([table] * repeat).to_csv(csv, index=False)
        before = peak_rss_mib()
        started = time.perf_counter()
        run_predict(PredictConfig(model=args.model, data=args.data, labels=str(csv), split=args.split,
                                  output=str(Path(tmp) / "predictions.csv"), batch_size=args.batch))
        seconds = time.perf_counter() - started
    print(f"MEMORY repeat={repeat} images={len(table) * repeat} peak_rss_mib={peak_rss_mib():.0f}"
          f" (after imports: {before:.0f}) wall_s={seconds:.1f}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="models:/hwr-crnn@champion", help="prediction model URI")
    parser.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "dhsd"), help="labelled data folder")
    parser.add_argument("--split", default="test", help="split of labels.csv to use")
    parser.add_argument("--batch", type=int, default=64, help="images per predict call")
    parser.add_argument("--beam_width", type=int, default=10, help="beam width for beam decoding")
    parser.add_argument("--repeats", default="1,10", help="memory runs: split repeated N times, comma-separated")
    parser.add_argument("--memory_child", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.memory_child:
        memory_run(args, args.memory_child)
        return
    import pandas as pd

    table = pd.read_csv(Path(args.data) / "labels.csv", dtype=str, keep_default_na=False)
    paths = [str(Path(args.data) / p) for p in table[table.split == args.split]["image"]]
    for decoder, rate in throughput(args.model, paths, args.batch, args.beam_width).items():
        print(f"THROUGHPUT decoder={decoder} batch={args.batch} images={len(paths)} images_per_s={rate:.1f}")
    print(f"peak_rss_mib (throughput process) {peak_rss_mib():.0f}", flush=True)
    env = {**os.environ, "MLFLOW_EXPERIMENT_NAME": "hwr-bench"}
    for repeat in (int(r) for r in args.repeats.split(",") if r.strip()):
        subprocess.run([sys.executable, __file__, *sys.argv[1:], "--memory_child", str(repeat)], check=True, env=env)


if __name__ == "__main__":
    main()
