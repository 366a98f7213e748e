"""`finetune` entry point: adapt a registered full model to a new labelled image folder.

Phase 1 trains only the layers after --freeze_until (default: the output layer) with the rest
frozen; phase 2 trains every layer at a lower rate. Characters of the new training labels that
the base model lacks are added to its output layer (the base characters keep their ids). The
input geometry is the base model's. Both resulting models are registered as new versions,
tagged with base_model and base_run_id.

    mlflow run . -e finetune --env-manager local -P base_model=models:/hwr-crnn-full@champion \\
        -P data=../shared/data/dhsd
    python entrypoints/finetune.py --help
"""

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from hwr.cli import HELP, add_params, parse_bool, run_cli  # noqa: E402
from hwr.config import FinetuneConfig  # noqa: E402

FINETUNE_HELP = {
    "base_model": "MLflow URI of the full model to start from: models:/NAME/VERSION, models:/NAME@alias "
                  "or runs:/RUN_ID/full_model (a prediction model such as models:/hwr-crnn/1 is refused)",
    "head_epochs": "phase 1: maximum epochs with the layers up to freeze_until frozen (0 = skip phase 1)",
    "head_lr": "phase 1: Adam learning rate",
    "full_epochs": "phase 2: maximum epochs with every layer trainable (0 = skip phase 2)",
    "full_lr": "phase 2: Adam learning rate (usually 10x lower than head_lr)",
    "patience": "per phase: stop after this many epochs without a better val_cer (0 = never)",
    "freeze_until": "phase 1 freezes this layer and every layer before it; auto = the last recurrent "
                    "layer (bilstm2), so only the output layer trains. An unknown name lists the valid ones",
    "model_name": "registered model name of the prediction (pyfunc) model; the default makes the "
                  "fine-tuned model a new version of train's model",
    "full_model_name": "registered model name of the full (trainable, with CTC loss) model",
}


def add_finetune_params(parser: argparse.ArgumentParser) -> None:
    """``--name`` options for every FinetuneConfig parameter, typed after their defaults."""
    defaults = FinetuneConfig().flat_params()
    shared = {k: v for k, v in defaults.items() if k in HELP and k not in FINETUNE_HELP}
    add_params(parser, shared)
    for name, default in defaults.items():
        if name in shared:
            continue
        kind = parse_bool if isinstance(default, bool) else type(default)
        parser.add_argument(f"--{name}", type=kind, default=default,
                            help=f"{FINETUNE_HELP.get(name, '')} (default: {default})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_finetune_params(parser)
    config = FinetuneConfig().replace(**vars(parser.parse_args())).validate()
    from hwr.finetune import run_finetune

    run_finetune(config)


if __name__ == "__main__":
    run_cli(main)
