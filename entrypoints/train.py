"""`train` entry point: train a CRNN on a labelled image folder and register both models.

    mlflow run . -e train --env-manager local -P lr=0.001
    python -m entrypoints.train --help
"""

from hwr.cli import parse_config, run_cli
from hwr.config import TrainConfig


def main() -> None:
    config = parse_config(TrainConfig, __doc__)
    from hwr.mlflow.runs import use_default_experiment
    from hwr.training.train import run_train

    use_default_experiment()
    run_train(config)


if __name__ == "__main__":
    run_cli(main)
