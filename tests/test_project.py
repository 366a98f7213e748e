"""The MLproject file, conda.yaml and requirements.txt agree with each other and with the code:
every declared parameter reaches its entry point, and its default is the code's default."""

import dataclasses
import re
from pathlib import Path

import pytest
import yaml

from hwr.config import FinetuneConfig, TrainConfig
from hwr.config import PredictConfig, PretrainConfig, PromoteConfig
from hwr.tuning.config import TuneConfig

ROOT = Path(__file__).resolve().parent.parent


def _mlproject() -> dict:
    return yaml.safe_load((ROOT / "MLproject").read_text())


def _tune_defaults() -> dict:
    own = {f.name: f.default for f in dataclasses.fields(TuneConfig) if f.name != "train"}
    train = {k: v for k, v in TrainConfig().flat_params().items() if k not in ("epochs", "max_minutes")}  # tune's own
    return own | train


CODE_DEFAULTS = {
    "train": lambda: TrainConfig().flat_params(),
    "finetune": lambda: FinetuneConfig().flat_params(),
    "predict": lambda: PredictConfig().flat_params(),
    "promote": lambda: PromoteConfig().flat_params(),
    "pretrain": lambda: PretrainConfig().flat_params(),
    "tune": _tune_defaults,
}


def _same(declared, code) -> bool:
    """An MLproject default (string or float) against the code's typed default."""
    if isinstance(code, bool):
        return str(declared).lower() == str(code).lower()
    if isinstance(code, (int, float)):
        return float(declared) == float(code)
    return str(declared) == str(code)


def test_conda_pins_are_requirements():
    conda = yaml.safe_load((ROOT / "conda.yaml").read_text())
    pip = next(d["pip"] for d in conda["dependencies"] if isinstance(d, dict) and "pip" in d)
    lines = [line.strip() for line in (ROOT / "requirements.txt").read_text().splitlines()]
    requirements = [line for line in lines if line and not line.startswith("#")]
    assert sorted(pip) == sorted(requirements)
    assert all("==" in pin for pin in requirements), "every requirement is pinned"


@pytest.mark.parametrize("entry", sorted(CODE_DEFAULTS))
def test_every_parameter_reaches_the_entry_point(entry):
    spec = _mlproject()["entry_points"][entry]
    passed = re.findall(r"--(\w+) \{(\w+)\}", spec["command"])
    assert all(flag == name for flag, name in passed), passed
    assert sorted(name for _, name in passed) == sorted(spec["parameters"])
    assert spec["command"].startswith(f"python -m entrypoints.{entry} ")


@pytest.mark.parametrize("entry", sorted(CODE_DEFAULTS))
def test_mlproject_defaults_are_the_code_defaults(entry):
    declared = {name: p["default"] for name, p in _mlproject()["entry_points"][entry]["parameters"].items()}
    code = CODE_DEFAULTS[entry]()
    assert set(declared) == set(code)
    differing = {name: (declared[name], code[name]) for name in code if not _same(declared[name], code[name])}
    assert not differing


def test_main_entry_point_is_train():
    """`mlflow run .` with no -e runs `main`, which is `train` (a YAML alias, so it cannot drift)."""
    from mlflow.projects._project_spec import load_project

    project = load_project(str(ROOT))
    main, train = project.get_entry_point("main"), project.get_entry_point("train")
    assert main.command == train.command and main.parameters.keys() == train.parameters.keys()


@pytest.mark.slow
def test_mlflow_run_with_the_uv_env_manager_trains_in_its_own_environment(tmp_path):
    """`mlflow run . -e train --env-manager uv`, as a user without conda and without the project's
    .venv on PATH (only uv) runs it: MLflow builds (or reuses) its environment from conda.yaml's pins
    under ~/.mlflow/envs with uv, runs the entry point in it, and the run finishes with its metrics."""
    import os
    import subprocess
    import sys

    from mlflow import MlflowClient

    from conftest import DHSD

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    uv_only = tmp_path / "bin"
    uv_only.mkdir()
    (uv_only / "uv").symlink_to(Path(sys.executable).parent / "uv")
    env = {k: v for k, v in os.environ.items() if k != "VIRTUAL_ENV"} | {"MLFLOW_TRACKING_URI": uri}
    env["PATH"] = os.pathsep.join([str(uv_only)] + [p for p in env["PATH"].split(os.pathsep) if ".venv" not in p])
    tiny = {"data": DHSD, "max_per_split": 16, "epochs": 1, "conv_filters": "16,32", "img_height": 32,
            "img_width": 128, "dense_units": 32, "lstm1_units": 32, "lstm2_units": 32, "register": "false",
            "system_metrics": "false"}
    command = [sys.executable, "-m", "mlflow", "run", str(ROOT), "-e", "train", "--env-manager", "uv",
               "--experiment-name", "uv"] + [a for k, v in tiny.items() for a in ("-P", f"{k}={v}")]
    done = subprocess.run(command, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=900)
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-4000:]
    assert "/.mlflow/envs/mlflow-" in output and "/bin/activate && python -m entrypoints.train" in output
    client = MlflowClient(uri)
    [run] = client.search_runs([client.get_experiment_by_name("uv").experiment_id])
    assert run.info.status == "FINISHED" and run.data.params["max_per_split"] == "16"
    assert run.data.tags["mlflow.project.env"] == "uv"
    assert 0.0 <= run.data.metrics["test_cer"] <= 1.5
