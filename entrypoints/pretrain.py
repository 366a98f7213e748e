"""`pretrain` entry point: synthetic handwriting-like lines of a collection's text -> a trained,
registered base model (hwr-base-full) to fine-tune on that collection.

The lines are cut from the running words of the data's training labels and drawn in
handwriting-like fonts (`make fonts` installs Debian's); the geometry is picked from the data's own
training images. Training is train's, with the same parameters and time budget.

    make fonts   # once, as root
    mlflow run . -e pretrain --env-manager local -P data=../shared/data/hooker -P max_minutes=20
    mlflow run . -e finetune --env-manager local -P base_model=models:/hwr-base-full/1 \\
        -P data=../shared/data/hooker -P head_epochs=0 -P full_epochs=200 -P full_lr=0.004 -P max_minutes=42
    python -m entrypoints.pretrain --help
"""

from hwr.cli import parse_config, run_cli
from hwr.config import PretrainConfig


def main() -> None:
    config = parse_config(PretrainConfig, __doc__)
    from hwr.mlflow.tracking import connect
    connect(new_run=True)  # one line within seconds when the tracking server does not answer
    from hwr.training.pretrain import run_pretrain

    run_pretrain(config)


if __name__ == "__main__":
    run_cli(main)
