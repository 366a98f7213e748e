"""`tune` entry point: a Hyperopt search over the CRNN's hyperparameters, every trial a nested
MLflow run of `train`; the best trial's models are registered with alias @challenger.

    mlflow run . -e tune --env-manager local -P max_evals=12 -P trial_epochs=5
    mlflow run . -e tune --env-manager local -P search_space=search_spaces/example.yaml
    mlflow run . -e tune --env-manager local -P resume_run_id=<parent run id>
    mlflow run . -e tune --env-manager local -P backend=spark -P parallelism=2
    python entrypoints/tune.py --help

All train parameters but `epochs` (replaced by `trial_epochs`) are accepted; they are the values
of the parameters the search space does not vary.
"""

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from hwr.cli import add_params, parse_bool, run_cli  # noqa: E402
from hwr.config import TrainConfig  # noqa: E402
from hwr.tuning_config import TUNE_HELP, TuneConfig  # noqa: E402


def parser() -> argparse.ArgumentParser:
    out = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    tune = out.add_argument_group("search")
    for name, default in {f: getattr(TuneConfig(), f) for f in TUNE_HELP}.items():
        kind = parse_bool if isinstance(default, bool) else type(default)
        tune.add_argument(f"--{name}", type=kind, default=default,
                          help=f"{TUNE_HELP[name]} (default: {default!r})")
    train = {k: v for k, v in TrainConfig().flat_params().items() if k != "epochs"}
    add_params(out.add_argument_group("training (fixed unless the search space varies them)"), train)
    return out


def main() -> None:
    config = TuneConfig.from_flat(vars(parser().parse_args())).validate()
    from hwr.tuning import run_tune

    run_tune(config)


if __name__ == "__main__":
    run_cli(main)
