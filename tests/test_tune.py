"""The `tune` verb: nested trial runs, failed trials, resume, search-space validation, Spark."""

from __future__ import annotations

import json
import os
import pickle
import signal
from dataclasses import dataclass

import pytest

from conftest import DHSD, TINY_MODEL

SUBSET = {"max_evals": 3, "trial_epochs": 1, "patience": 0, "batch_size": 16, "seed": 42, **TINY_MODEL}


def tune_config(labels, tmp_path, space: dict | None = None, **changes):
    from hwr.tuning.config import TuneConfig

    flat = {"data": str(DHSD), "labels": str(labels), **SUBSET, **changes}
    if space is not None:
        (tmp_path / "space.json").write_text(json.dumps(space))
        flat["search_space"] = str(tmp_path / "space.json")
    return TuneConfig.from_flat(flat).validate()


def children(client, parent_id):
    from mlflow.entities import ViewType

    runs = client.search_runs([client.get_run(parent_id).info.experiment_id],
                              f"tags.mlflow.parentRunId = '{parent_id}'", run_view_type=ViewType.ALL)
    return sorted(runs, key=lambda r: r.info.start_time)


# ---- search-space files: validated before any trial ----

@pytest.mark.parametrize("params, message", [
    ({"learning_rate": [0.1]}, "unknown parameter"),
    ({"lr": {"type": "loguniform", "low": 0.0, "high": 0.01}}, "must be positive"),
    ({"lr": {"type": "uniform", "low": 0.01, "high": 0.001}}, "must be below high"),
    ({"dropout": {"type": "uniform", "low": 0.1, "high": 1.5}}, "dropout"),
    ({"batch_size": {"type": "uniform", "low": 8, "high": 64}}, "is an integer"),
    ({"activation": ["relu", "sparkle"]}, "sparkle"),
    ({"conv_filters": ["32,x"]}, "conv_filters"),
    ({"lr": {"type": "normal", "mu": 0.0}}, "type 'normal'"),
    ({"lr": {"type": "uniform", "low": 0.001}}, "needs high"),
    ({"kernel_size": 3}, "nothing to tune"),
])
def test_search_space_file_errors_name_the_parameter(tmp_path, params, message):
    from hwr.errors import ConfigError
    from hwr.tuning.space import load_space

    path = tmp_path / "space.yaml"
    path.write_text(json.dumps({"base": "none", "params": params}))  # JSON is valid YAML
    with pytest.raises(ConfigError, match=message) as info:
        load_space(path)
    assert str(path) in str(info.value)


def test_search_space_file_narrows_the_default(tmp_path):
    from hwr.tuning.space import DEFAULT_SPACE, hyperopt_space, load_space, to_params

    path = tmp_path / "space.yaml"
    path.write_text("params:\n  kernel_size: 5\n  batch_size: [8, 16]\n  lr: {type: loguniform, low: 1.0e-4, high: 1.0e-3}\n")
    space = load_space(path)
    assert set(space) == set(DEFAULT_SPACE)
    assert space["kernel_size"] == {"type": "fixed", "value": 5}
    from hyperopt.pyll.stochastic import sample

    drawn = to_params(sample(hyperopt_space(space)))
    assert drawn["kernel_size"] == 5 and drawn["batch_size"] in (8, 16) and 1e-4 <= drawn["lr"] <= 1e-3
    assert isinstance(drawn["dense_units"], int) and drawn["conv_filters"] in DEFAULT_SPACE["conv_filters"]["values"]


def test_bad_search_space_fails_before_any_trial(tmp_path, tracking_uri, dhsd_subset, capsys):
    """The whole verb, as the entry point runs it: one line, exit 2, and no run in the store."""
    from mlflow import MlflowClient

    from hwr.cli import run_cli
    from hwr.tuning.config import TuneConfig
    from hwr.tuning.search import run_tune

    (tmp_path / "bad.yaml").write_text("params:\n  lr: {type: loguniform, low: -1, high: 0.1}\n")
    cfg = TuneConfig.from_flat({"labels": str(dhsd_subset), "data": str(DHSD), "search_space": str(tmp_path / "bad.yaml")})
    with pytest.raises(SystemExit) as info:
        run_cli(lambda: run_tune(cfg))
    assert info.value.code == 2 and "'lr'" in capsys.readouterr().err
    assert not MlflowClient().search_runs(["0"])


# ---- real searches with tiny trials ----

@pytest.mark.slow
def test_tpe_search_nests_trials_and_registers_best_as_challenger(tmp_path, tracking_uri, dhsd_subset, capsys,
                                                                  monkeypatch):
    from mlflow import MlflowClient

    import hwr.training.train
    from hwr.tuning.search import run_tune

    def in_this_process(cfg):
        raise AssertionError("with isolate_trials (the default) a trial must not train in the search's process")

    monkeypatch.setattr(hwr.training.train, "train_and_log", in_this_process)

    space = {"base": "none", "params": {"lr": {"type": "loguniform", "low": 1e-3, "high": 1e-2},
                                        "dense_units": [16, 32]}}
    result = run_tune(tune_config(dhsd_subset, tmp_path, space, algo="tpe"))
    client = MlflowClient()
    parent = client.get_run(result.parent_run_id)
    kids = children(client, parent.info.run_id)
    assert len(kids) == 3 and all(k.info.status == "FINISHED" for k in kids)
    for kid in kids:
        assert kid.data.params["dense_units"] in ("16", "32") and "lr" in kid.data.params
        assert kid.data.params["epochs"] == "1" and 0 <= kid.data.metrics["val_cer"] <= 1.5
    best = min(kids, key=lambda k: k.data.metrics["best_val_cer"])
    assert parent.data.metrics["best_val_cer"] == pytest.approx(best.data.metrics["best_val_cer"])
    assert parent.data.tags["hwr.best_run_id"] == best.info.run_id == result.best_run_id
    assert parent.data.params["best_dense_units"] == best.data.params["dense_units"]
    artifacts = {a.path for a in client.list_artifacts(parent.info.run_id)}
    assert {"trials.csv", "tuning_plot.png", "hyperopt"} <= artifacts
    for name in ("hwr-crnn", "hwr-crnn-full"):
        version = client.get_model_version_by_alias(name, "challenger")
        assert version.tags["run_id"] == best.info.run_id
    out = capsys.readouterr().out
    assert "trial 3/3: val_cer=" in out and "(best " in out


class Killed(BaseException):
    """Stands in for the process being killed mid-trial."""


@pytest.mark.slow
def test_failed_trial_is_marked_and_interrupted_search_resumes(tmp_path, tracking_uri, dhsd_subset, monkeypatch):
    import mlflow
    from mlflow import MlflowClient

    import hwr.training.train
    from hwr.tuning.search import TRIALS_ARTIFACT, run_tune

    real, calls = hwr.training.train.train_and_log, []

    def train_and_log(cfg):
        calls.append(cfg.model.img_width)
        if len(calls) == 3:
            raise Killed()
        return real(cfg)

    monkeypatch.setattr(hwr.training.train, "train_and_log", train_and_log)
    # img_width=8 leaves 2 CTC frames: every DHSD word is too long, so that trial must fail.
    space = {"base": "none", "params": {"img_width": [128, 8], "lr": {"type": "loguniform", "low": 1e-3, "high": 1e-2}}}
    # in-process trials (isolate_trials=False), so that the patched train_and_log is the one called
    cfg = tune_config(dhsd_subset, tmp_path, space, algo="random", register=False, isolate_trials=False)
    with pytest.raises(Killed):
        run_tune(cfg)
    client = MlflowClient()
    parent_id = client.search_runs(["0"], "tags.`hwr.verb` = 'tune'")[0].info.run_id
    first = children(client, parent_id)
    assert [k.info.status for k in first] == ["FAILED", "FINISHED", "KILLED"]  # seed 42 draws img_width 8 first
    failed = first[0]
    assert failed.data.params["img_width"] == "8" and "CTC frames" in failed.data.tags["hwr.error"]
    assert "error.txt" in {a.path for a in client.list_artifacts(failed.info.run_id)}
    saved = pickle.loads(open(mlflow.artifacts.download_artifacts(run_id=parent_id, artifact_path=TRIALS_ARTIFACT), "rb").read())
    assert len(saved.trials) == 2

    calls.clear()
    result = run_tune(tune_config(dhsd_subset, tmp_path, space, algo="random", register=False,
                                  isolate_trials=False, resume_run_id=parent_id))
    assert result.parent_run_id == parent_id and len(calls) == 1  # only the missing trial ran
    kids = children(client, parent_id)
    assert len(kids) == 4 and [k.info.run_id for k in kids[:2]] == [k.info.run_id for k in first[:2]]
    parent = client.get_run(parent_id)
    assert parent.info.status == "FINISHED" and parent.data.metrics["n_trials"] == 3
    ok = [k for k in kids if k.info.status == "FINISHED"]
    assert parent.data.metrics["best_val_cer"] == pytest.approx(min(k.data.metrics["best_val_cer"] for k in ok))


@pytest.mark.slow
def test_spark_backend_nests_parallel_trials(tmp_path, tracking_uri, dhsd_subset):
    pytest.importorskip("pyspark")
    from mlflow import MlflowClient

    from hwr.tuning.search import run_tune

    space = {"base": "none", "params": {"lr": {"type": "loguniform", "low": 1e-3, "high": 1e-2}}}
    cfg = tune_config(dhsd_subset, tmp_path, space, max_evals=2, backend="spark", parallelism=2,
                      spark_master="local[2]", register=False)
    result = run_tune(cfg)
    client = MlflowClient()
    parent = client.get_run(result.parent_run_id)
    kids = children(client, parent.info.run_id)
    assert len(kids) == 2 and all(k.info.status == "FINISHED" for k in kids)
    assert {k.info.experiment_id for k in kids} == {parent.info.experiment_id}
    assert parent.data.tags["hwr.best_run_id"] in {k.info.run_id for k in kids}
    assert result.n_ok == 2


def test_nan_training_loss_fails_the_trial(tracking_uri):
    import mlflow

    from hwr.mlflow import runs
    from hwr.errors import TrialFailed
    from hwr.tuning.objective import Objective

    with mlflow.start_run() as run:  # what a trial whose loss became NaN in epoch 2 leaves behind
        runs.log_metrics({"loss": 3.0, "val_cer": 0.9}, step=0)
        runs.log_metrics({"loss": float("nan"), "val_cer": 0.9}, step=1)
    with pytest.raises(TrialFailed, match="NaN/inf in 1 of 2 epochs"):
        Objective._check_finite(run.info.run_id, 0.9)
    with pytest.raises(TrialFailed, match="metric is nan"):
        Objective._check_finite(run.info.run_id, float("nan"))


@dataclass(frozen=True)
class DiesMidTrial:
    """An objective whose process is killed (as by the out-of-memory killer) after its run started."""

    tracking_uri: str
    parent_run_id: str

    def __call__(self, sample):
        import mlflow

        mlflow.set_tracking_uri(self.tracking_uri)
        mlflow.start_run(parent_run_id=self.parent_run_id, nested=True, run_name="trial")
        os.kill(os.getpid(), signal.SIGKILL)


def test_isolated_trial_whose_process_dies_is_failed_and_search_goes_on(tracking_uri):
    import mlflow
    from hyperopt import STATUS_FAIL
    from mlflow import MlflowClient

    from hwr.tuning.objective import LOST_TRIAL, IsolatedObjective

    with mlflow.start_run() as parent:
        result = IsolatedObjective(DiesMidTrial(mlflow.get_tracking_uri(), parent.info.run_id))({"lr": 0.001})
    assert result["status"] == STATUS_FAIL and result["error"] == LOST_TRIAL
    assert result["params"] == {"lr": 0.001}
    client = MlflowClient()
    [kid] = children(client, parent.info.run_id)
    assert kid.info.run_id == result["run_id"]
    assert kid.info.status == "FAILED" and kid.data.tags["hwr.error"] == LOST_TRIAL
