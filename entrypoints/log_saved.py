"""`log_saved`: log and register models that a `train` or `finetune` run saved to disk because MLflow
failed when the run ended (the run printed this command with the folder).

    python -m entrypoints.log_saved output/unlogged/<run id>
"""

import argparse

from hwr.cli import run_cli


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folder", help="the folder the run printed, output/unlogged/<run id>")
    folder = parser.parse_args().folder
    from hwr.mlflow.tracking import connect
    connect(new_run=False)  # one line within seconds when the tracking server still does not answer
    from hwr.training.steps import register_saved

    result, versions = register_saved(folder)
    registered = ", ".join(f"{n} version {v}" for n, v in (versions or {}).items()) or "not registered (register=false)"
    print(f"logged the models of run {result.run_id}: {registered}", flush=True)


if __name__ == "__main__":
    run_cli(main)
