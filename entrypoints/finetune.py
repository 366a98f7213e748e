"""`finetune` entry point: adapt a registered full model to a new labelled image folder.

Phase 1 trains only the layers after --freeze_until (default: the output layer) with the rest
frozen; phase 2 trains every layer at a lower rate. Characters of the new training labels that
the base model lacks are added to its output layer (the base characters keep their ids). The
input geometry is the base model's. Both resulting models are registered as new versions,
tagged with base_model and base_run_id.

    mlflow run . -e finetune --env-manager local -P base_model=models:/hwr-crnn-full@champion \\
        -P data=../shared/data/dhsd
    python -m entrypoints.finetune --help
"""

from hwr.cli import parse_config, run_cli
from hwr.config import FinetuneConfig


def main() -> None:
    config = parse_config(FinetuneConfig, __doc__)
    from hwr.mlflow.tracking import connect
    connect(new_run=not config.resume_run_id)  # one line within seconds when the tracking server does not answer
    from hwr.training.finetune import run_finetune

    run_finetune(config)


if __name__ == "__main__":
    run_cli(main)
