r"""`predict` entry point: transcribe a folder of images with one or several prediction models,
write a predictions CSV and an evaluation report, and log both to MLflow.

    mlflow run . -e predict --env-manager local -P model=models:/hwr-crnn@champion \
        -P data=../shared/data/dhsd -P split=test
    mlflow run . -e predict --env-manager local -P model=models:/hwr-crnn/1,models:/hwr-crnn/2 \
        -P data=../shared/data/dhsd -P split=test -P decoder=beam
    python -m entrypoints.predict --help
"""

from hwr.cli import parse_config, run_cli
from hwr.config import PredictConfig


def main() -> None:
    config = parse_config(PredictConfig, __doc__)
    from hwr.mlflow.tracking import connect
    connect()  # one line within seconds when the tracking server does not answer
    from hwr.prediction.predict import run_predict

    run_predict(config)


if __name__ == "__main__":
    run_cli(main)
