r"""`predict` entry point: transcribe a folder of images with one or several prediction models,
write a predictions CSV and an evaluation report, and log both to MLflow.

    mlflow run . -e predict --env-manager local -P model=models:/hwr-crnn@champion \
        -P data=../shared/data/dhsd -P split=test
    mlflow run . -e predict --env-manager local -P model=models:/hwr-crnn/1,models:/hwr-crnn/2 \
        -P data=../shared/data/dhsd -P split=test -P decoder=beam
    python entrypoints/predict.py --help
"""

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from hwr.cli import run_cli  # noqa: E402
from hwr.predict_config import HELP, PredictConfig  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    for name, default in PredictConfig().flat_params().items():
        parser.add_argument(f"--{name}", type=type(default), default=default, help=f"{HELP[name]} (default: {default})")
    config = PredictConfig(**vars(parser.parse_args())).validate()
    from hwr.predict import run_predict

    run_predict(config)


if __name__ == "__main__":
    run_cli(main)
