"""`train` entry point: train a CRNN on a labelled image folder and register both models.

    mlflow run . -e train --env-manager local -P lr=0.001
    python -m entrypoints.train --help
"""

from hwr.cli import parse_config, run_cli
from hwr.config import TrainConfig


def main() -> None:
    config = parse_config(TrainConfig, __doc__)
    from hwr.mlflow.tracking import connect
    connect(new_run=not config.resume_run_id)  # one line within seconds when the tracking server does not answer
    from hwr.training.train import run_train

    run_train(config)


if __name__ == "__main__":
    run_cli(main)
