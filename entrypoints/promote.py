r"""`promote` entry point: score @challenger and @champion of the prediction model on the same split,
log both CERs and a paired bootstrap confidence interval of the difference as a run, and move
@champion on both registered models (prediction and full model of the same training run) only
when the whole interval says the challenger is better.

    mlflow run . -e promote --env-manager local
    mlflow run . -e promote --env-manager local -P data=../shared/data/dhsd -P split=test
    mlflow run . -e promote --env-manager local -P labels=gate.csv -P split=test   # a separate gate set
    mlflow run . -e promote --env-manager local -P force=true
    python -m entrypoints.promote --help
"""

from hwr.cli import parse_config, run_cli
from hwr.config import PromoteConfig


def main() -> None:
    config = parse_config(PromoteConfig, __doc__)
    from hwr.mlflow.tracking import connect
    connect()  # one line within seconds when the tracking server does not answer
    from hwr.promotion.promote import run_promote

    run_promote(config)


if __name__ == "__main__":
    run_cli(main)
