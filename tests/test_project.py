"""The MLproject file, conda.yaml and requirements.txt agree with each other and with the code:
every declared parameter reaches its entry point, and its default is the code's default."""

import dataclasses
import re
from pathlib import Path

import pytest
import yaml

from hwr.config import FinetuneConfig, TrainConfig
from hwr.config import PredictConfig, PromoteConfig
from hwr.tuning.config import TuneConfig

ROOT = Path(__file__).resolve().parent.parent


def _mlproject() -> dict:
    return yaml.safe_load((ROOT / "MLproject").read_text())


def _tune_defaults() -> dict:
    own = {f.name: f.default for f in dataclasses.fields(TuneConfig) if f.name != "train"}
    train = {k: v for k, v in TrainConfig().flat_params().items() if k != "epochs"}
    return own | train


CODE_DEFAULTS = {
    "train": lambda: TrainConfig().flat_params(),
    "finetune": lambda: FinetuneConfig().flat_params(),
    "predict": lambda: PredictConfig().flat_params(),
    "promote": lambda: PromoteConfig().flat_params(),
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
