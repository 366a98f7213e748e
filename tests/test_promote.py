"""`promote`: the paired bootstrap against hand-worked cases, and the whole verb on registered
stand-in models (tests/fixtures/oracle_model.py) whose CERs are known, read back through MlflowClient."""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import DHSD

ORACLE = Path(__file__).parent / "fixtures" / "oracle_model.py"


# ---- the statistics ----

def test_paired_difference_of_identical_predictions_is_exactly_zero():
    from hwr.evaluation.scoring import paired_cer_difference

    truths = ["Berlin", "Haus", "und"] * 10
    assert paired_cer_difference(truths, truths, truths) == (0.0, 0.0, 0.0)


def test_paired_difference_is_the_corpus_cer_difference_with_an_interval_around_it():
    from hwr.evaluation.scoring import paired_cer_difference

    truths = ["abcd"] * 40
    better = ["abcd"] * 40                   # CER 0
    worse = ["abxd"] * 20 + ["abcd"] * 20    # 20 edits / 160 characters = 0.125
    difference, low, high = paired_cer_difference(truths, better, worse)
    assert difference == pytest.approx(-0.125)
    assert low < difference < high < 0       # every resample has the better model ahead or level
    mixed = ["abxd"] * 19 + ["abcd"] * 21    # one fewer error than `worse`, on the same images
    difference, low, high = paired_cer_difference(truths, mixed, worse)
    assert difference == pytest.approx(-1 / 160) and low <= difference <= high and high <= 0 < high + 0.02


# ---- the verb on registered stand-in models ----

def register_pair(labels: Path, damage: float, alias: str, train_digest: str = "same-data") -> dict:
    """One 'training run' with a train dataset input and both models registered: returns versions."""
    import mlflow
    import pandas as pd

    from hwr.mlflow.registry import register

    config = {"labels": str(labels), "data": str(DHSD), "damage": damage}
    with mlflow.start_run() as run:
        frame = pd.read_csv(labels, dtype=str)
        mlflow.log_input(mlflow.data.from_pandas(frame, name="dhsd-train", digest=train_digest), context="train")
        infos = {kind: mlflow.pyfunc.log_model(name=kind, python_model=str(ORACLE), model_config=config)
                 for kind in ("full_model", "model")}
    tags = {"run_id": run.info.run_id}
    return {"hwr-crnn-full": register(infos["full_model"].model_uri, "hwr-crnn-full", tags, alias),
            "hwr-crnn": register(infos["model"].model_uri, "hwr-crnn", tags, alias), "run_id": run.info.run_id}


def promote(labels: Path, **changes):
    from hwr.config import PromoteConfig
    from hwr.promotion.promote import run_promote

    flat = {"data": str(DHSD), "labels": str(labels), "resamples": 300, "system_metrics": False, **changes}
    return run_promote(PromoteConfig().replace(**flat))


def champion_versions(client) -> dict[str, int]:
    return {name: int(client.get_model_version_by_alias(name, "champion").version)
            for name in ("hwr-crnn", "hwr-crnn-full")}


def test_a_clearly_better_challenger_becomes_champion_of_both_models(tracking_uri, dhsd_subset):
    from mlflow import MlflowClient

    old = register_pair(dhsd_subset, 0.5, "champion")
    new = register_pair(dhsd_subset, 0.0, "challenger")
    decision = promote(dhsd_subset)
    client = MlflowClient()
    assert decision.promoted and decision.reason.startswith("the challenger is better")
    assert champion_versions(client) == {"hwr-crnn": new["hwr-crnn"], "hwr-crnn-full": new["hwr-crnn-full"]}
    run = client.get_run(decision.run_id)
    metrics = run.data.metrics
    assert metrics["challenger_cer"] == 0.0 and metrics["champion_cer"] > 0.45
    assert metrics["cer_difference_ci_high"] < 0 and metrics["promoted"] == 1 and metrics["n_evaluated"] == 16
    assert run.data.params["champion_version"] == str(old["hwr-crnn"]) and run.data.tags["hwr.verb"] == "promote"
    assert [d.dataset.name for d in run.inputs.dataset_inputs] == ["dhsd-test"]
    assert client.get_model_version("hwr-crnn-full", new["hwr-crnn-full"]).tags["promoted_by_run"] == run.info.run_id


def test_no_clear_difference_keeps_the_champion_unless_forced(tracking_uri, dhsd_subset):
    from mlflow import MlflowClient

    old = register_pair(dhsd_subset, 0.3, "champion")
    new = register_pair(dhsd_subset, 0.3, "challenger")
    decision = promote(dhsd_subset)
    client = MlflowClient()
    assert not decision.promoted and "the interval contains 0" in decision.reason
    assert champion_versions(client) == {"hwr-crnn": old["hwr-crnn"], "hwr-crnn-full": old["hwr-crnn-full"]}
    assert client.get_run(decision.run_id).data.metrics["promoted"] == 0

    forced = promote(dhsd_subset, force="true")
    assert forced.promoted and forced.reason.startswith("forced (force=true) although no clear difference")
    assert champion_versions(client) == {"hwr-crnn": new["hwr-crnn"], "hwr-crnn-full": new["hwr-crnn-full"]}
    assert client.get_run(forced.run_id).data.tags["hwr.promotion_forced"] == "true"
    assert client.get_model_version("hwr-crnn", new["hwr-crnn"]).tags["promotion_forced"] == "true"


def test_models_trained_on_different_data_are_not_compared(tracking_uri, dhsd_subset, capsys):
    from mlflow import MlflowClient

    from hwr.cli import run_cli

    old = register_pair(dhsd_subset, 0.5, "champion", train_digest="aaaa1111")
    register_pair(dhsd_subset, 0.0, "challenger", train_digest="bbbb2222")
    with pytest.raises(SystemExit) as info:
        run_cli(lambda: promote(dhsd_subset))
    err = capsys.readouterr().err
    assert info.value.code == 2 and "trained on different data" in err and "aaaa1111" in err
    assert champion_versions(MlflowClient())["hwr-crnn"] == old["hwr-crnn"]
    assert not MlflowClient().search_runs(["0"], "tags.`hwr.verb` = 'promote'")


def test_without_a_challenger_promote_says_so(tracking_uri, dhsd_subset, capsys):
    from hwr.cli import run_cli

    register_pair(dhsd_subset, 0.0, "champion")
    with pytest.raises(SystemExit) as info:
        run_cli(lambda: promote(dhsd_subset))
    assert info.value.code == 2 and "hwr-crnn has no version with alias @challenger" in capsys.readouterr().err
