"""`train` entry point: train a CRNN on a labelled image folder and register both models.

    mlflow run . -e train --env-manager local -P lr=0.001
    python entrypoints/train.py --help
"""

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from hwr.cli import add_params, run_cli, train_config  # noqa: E402
from hwr.config import TrainConfig  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_params(parser, TrainConfig().flat_params())
    config = train_config(parser.parse_args())
    from hwr.train import run_train

    run_train(config)


if __name__ == "__main__":
    run_cli(main)
