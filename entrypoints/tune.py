"""`tune` entry point: a Hyperopt search over the CRNN's hyperparameters, every trial a nested
MLflow run of `train`; the best trial's models are registered with alias @challenger.

    mlflow run . -e tune --env-manager local -P max_evals=12 -P trial_epochs=5
    mlflow run . -e tune --env-manager local -P search_space=search_spaces/example.yaml
    mlflow run . -e tune --env-manager local -P resume_run_id=<parent run id>
    mlflow run . -e tune --env-manager local -P backend=spark -P parallelism=2
    python -m entrypoints.tune --help

All train parameters but `epochs` (replaced by `trial_epochs`) are accepted; they are the values
of the parameters the search space does not vary.
"""

from hwr.cli import parse_config, run_cli
from hwr.tuning.config import TuneConfig


def main() -> None:
    config = parse_config(TuneConfig, __doc__)
    from hwr.mlflow.tracking import connect
    connect(new_run=not config.resume_run_id)  # one line within seconds when the tracking server does not answer
    from hwr.tuning.search import run_tune

    run_tune(config)


if __name__ == "__main__":
    run_cli(main)
