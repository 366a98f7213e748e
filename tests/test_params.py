"""Each parameter is declared once, and everything that states it agrees with the declaration:
the README's tables, ``--help``, MLproject's types, and the rules of ``train`` and the search space."""

from __future__ import annotations

import json
import re

import pytest
import yaml

from conftest import ROOT
from hwr.cli import build_parser, readme_tables, rewrite_readme
from hwr.config import FinetuneConfig, PredictConfig, PretrainConfig, TrainConfig
from hwr.errors import ConfigError
from hwr.tuning.config import TuneConfig

VERBS = {"train": TrainConfig, "finetune": FinetuneConfig, "predict": PredictConfig, "tune": TuneConfig,
         "pretrain": PretrainConfig}


def test_readme_tables_are_generated_from_the_declarations():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert rewrite_readme(readme, readme_tables()) == readme, "run `make docs` to rewrite the README's tables"


@pytest.mark.parametrize("verb", sorted(VERBS))
def test_every_parameter_is_in_its_readme_table(verb):
    table = readme_tables()[verb]
    named = set(re.findall(r"`(\w+)`", "\n".join(row.split(" | ")[0] for row in table.splitlines()[2:])))
    assert named == set(VERBS[verb].declarations())


@pytest.mark.parametrize("verb", sorted(VERBS))
def test_help_shows_each_declared_help_text_and_default(verb):
    text = " ".join(build_parser(VERBS[verb], "").format_help().split())
    for name, (decl, default) in VERBS[verb].declarations().items():
        assert f"--{name}" in text
        assert " ".join(decl.full_help().split()) in text, name
        assert f"(default: {decl.as_text(default)!r})" in text, name


@pytest.mark.parametrize("verb", sorted(VERBS))
def test_mlproject_types_follow_the_declared_defaults(verb):
    declared = yaml.safe_load((ROOT / "MLproject").read_text())["entry_points"][verb]["parameters"]
    for name, (_, default) in VERBS[verb].declarations().items():
        expected = "float" if isinstance(default, float) else "string"
        assert declared[name]["type"] == expected, name


def test_train_and_the_search_space_share_one_rule(tmp_path):
    from hwr.tuning.space import load_space

    with pytest.raises(ConfigError, match="expected a learning rate in \\(0, 1\\)") as from_train:
        TrainConfig().replace(lr=1.5).validate()
    path = tmp_path / "space.json"
    path.write_text(json.dumps({"base": "none", "params": {"lr": [0.001, 1.5]}}))
    with pytest.raises(ConfigError) as from_space:
        load_space(path)
    assert str(from_train.value) in str(from_space.value)


@pytest.mark.parametrize("verb, change, says", [
    ("train", {"dropout": 1.0}, "dropout=1.0: expected a fraction in [0, 1)"),
    ("train", {"activation": "sparkle"}, "activation='sparkle': expected one of relu, elu"),
    ("train", {"epochs": 0}, "epochs=0: expected a positive integer"),
    ("finetune", {"full_lr": 0.0}, "full_lr=0.0: expected a learning rate in (0, 1)"),
    ("predict", {"lexicon_threshold": 1.5}, "lexicon_threshold=1.5: expected a value in [0, 1]"),
    ("predict", {"split": "heldout"}, "split='heldout': expected one of all, train, val, test"),
    ("tune", {"algo": "anneal"}, "algo='anneal': expected one of tpe, random"),
])
def test_a_bad_value_names_the_parameter_and_its_rule(verb, change, says):
    cls = VERBS[verb]
    with pytest.raises(ConfigError) as info:
        (cls.from_flat(change) if verb == "tune" else cls().replace(**change)).validate()
    assert str(info.value).startswith(says)


def test_tune_refuses_epochs():
    with pytest.raises(ConfigError, match="use trial_epochs"):
        TuneConfig.from_flat({"epochs": 3})


def test_model_logging_pins_are_the_requirements_pins():
    from hwr.mlflow.packaging import MODEL_PACKAGES, model_requirements

    lines = (ROOT / "requirements.txt").read_text().splitlines()
    pins = {line.split("==")[0]: line for line in lines if "==" in line and not line.startswith("#")}
    assert model_requirements() == [pins[name] for name in MODEL_PACKAGES]
