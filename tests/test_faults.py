"""Runs survive faults: a killed `train` resumes in the same run, a resume with other parameters is
refused by name, models that cannot be logged are kept on disk and logged later, and a resumed
`tune` continues its interrupted trial from that trial's checkpoint. (NaN loss and a tracking server
that does not answer are in the bad-input catalogue, tests/test_bad_runs.py.)"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import keras
import pytest
from mlflow import MlflowClient

from conftest import DHSD, ROOT, TINY_MODEL, tiny_config, write_subset


def train_command(labels: Path, **params) -> list[str]:
    args = [sys.executable, "-m", "entrypoints.train", "--data", str(DHSD), "--labels", str(labels),
            "--patience", "0", "--batch_size", "16", "--system_metrics", "false"]
    for key, value in {**TINY_MODEL, **params}.items():
        args += [f"--{key}", str(value)]
    return args


def checkpoint_epoch(store: Path) -> int:
    """The epoch of the newest checkpoint under a local artifact store (0 when none yet)."""
    states = list(store.glob("**/artifacts/checkpoint/state.json"))
    try:
        return max((json.loads(p.read_text())["epoch"] for p in states), default=0)
    except (json.JSONDecodeError, OSError):  # being written
        return 0


@pytest.mark.slow
def test_killed_train_resumes_in_the_same_run(tmp_path, tracking_uri):
    labels = write_subset(DHSD, tmp_path / "subset.csv", {"train": 48, "val": 16, "test": 16})
    env = {**os.environ, "PYTHONPATH": str(ROOT), "MLFLOW_EXPERIMENT_NAME": "faults"}
    command = train_command(labels, epochs=6)
    process = subprocess.Popen(command, cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 240
    while checkpoint_epoch(tmp_path) < 2 and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    killed_at = checkpoint_epoch(tmp_path)
    assert 2 <= killed_at < 6, f"checkpoint of epoch {killed_at}; stderr: {process.stderr.read()[-2000:]}"

    client = MlflowClient(tracking_uri)
    experiment = client.get_experiment_by_name("faults").experiment_id
    (run,) = client.search_runs([experiment])
    assert run.info.status == "RUNNING"  # SIGKILL: nobody could end it
    done = subprocess.run(command + ["--resume_run_id", run.info.run_id], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]

    (resumed,) = client.search_runs([experiment])  # the same run, no second one
    assert resumed.info.run_id == run.info.run_id and resumed.info.status == "FINISHED"
    assert resumed.data.tags["hwr.resumed_at_epoch"] == str(killed_at)
    steps = [m.step for m in client.get_metric_history(run.info.run_id, "val_cer")]
    assert sorted(steps) == list(range(6)), steps  # every epoch once: none repeated, none lost
    assert [m.step for m in client.get_metric_history(run.info.run_id, "loss")] == sorted(steps)
    assert f"after epoch {killed_at}" in done.stdout
    versions = {v.name: v for v in client.search_model_versions()}
    assert {v.run_id for v in versions.values()} == {run.info.run_id}
    assert set(versions) == {"hwr-crnn", "hwr-crnn-full"}


def test_resume_with_other_parameters_is_refused_naming_them(tmp_path, tracking_uri):
    import mlflow

    from hwr.errors import ConfigError
    from hwr.mlflow.checkpoints import log_checkpoint
    from hwr.training.checkpoint import TrainingState
    from hwr.training.resume import params_text, resume_state

    cfg = tiny_config(tmp_path / "labels.csv", epochs=5)
    with mlflow.start_run(tags={"hwr.verb": "train"}) as run:
        log_checkpoint(TrainingState(2, params_text(cfg)).save(tmp_path / "checkpoint"))
        mlflow.end_run("KILLED")
    assert resume_state(run.info.run_id, ("train",), cfg.replace(lr=1e-4).flat_params()).epoch == 2
    with pytest.raises(ConfigError) as refused:
        resume_state(run.info.run_id, ("train",), cfg.replace(epochs=9, dropout=0.5).flat_params())
    message = str(refused.value)
    assert "epochs='5' (now '9')" in message and "dropout='0.0' (now '0.5')" in message
    assert "lr" not in message.split(";")[0]  # a learning rate may change
    with pytest.raises(ConfigError, match="a train run; resume it with the verb that started it"):
        resume_state(run.info.run_id, ("finetune",), cfg.flat_params())


@pytest.mark.slow
def test_models_that_cannot_be_logged_are_saved_and_logged_later(tmp_path, tracking_uri, monkeypatch, capsys):
    from mlflow.exceptions import MlflowException

    from hwr.errors import ModelsNotLogged
    from hwr.training import steps
    from hwr.training.train import run_train

    labels = write_subset(DHSD, tmp_path / "subset.csv", {"train": 32, "val": 16, "test": 16})

    def unreachable(*args, **kwargs):
        raise MlflowException("API request to http://tracking/api/2.0/mlflow/logged-models failed: connection refused")

    monkeypatch.setattr(steps, "log_models", unreachable)
    with pytest.raises(ModelsNotLogged) as failed:
        run_train(tiny_config(labels, epochs=2))
    monkeypatch.undo()
    folder = Path(str(failed.value).rsplit("log_saved ", 1)[1])
    assert folder.is_dir() and (folder / "full_model.keras").is_file()
    run_id = folder.name
    client = MlflowClient(tracking_uri)
    assert client.get_run(run_id).info.status == "FAILED" and not client.search_model_versions()

    done = subprocess.run([sys.executable, "-m", "entrypoints.log_saved", str(folder)], cwd=tmp_path,
                          env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    run = client.get_run(run_id)
    assert run.info.status == "FINISHED" and "test_cer" in run.data.metrics
    versions = {v.name: v.run_id for v in client.search_model_versions()}
    assert versions == {"hwr-crnn": run_id, "hwr-crnn-full": run_id}
    assert json.loads((folder / "unlogged.json").read_text())["metrics"]["test_cer"] == run.data.metrics["test_cer"]


class InterruptTrial(keras.callbacks.Callback):
    """Interrupts the search (as a Ctrl-C would) when trial ``trial`` begins epoch 3."""

    def __init__(self, counter: list):
        super().__init__()
        self.counter = counter

    def on_train_begin(self, logs=None):
        self.counter.append(1)

    def on_epoch_begin(self, epoch, logs=None):
        if len(self.counter) == 2 and epoch == 2:
            raise KeyboardInterrupt


@pytest.mark.slow
def test_resumed_tune_continues_its_interrupted_trial(tmp_path, tracking_uri, dhsd_subset, monkeypatch):
    from test_tune import children, tune_config

    from hwr.tuning import objective
    from hwr.tuning.search import run_tune

    started: list = []
    plain = objective.Objective._callbacks
    monkeypatch.setattr(objective.Objective, "_callbacks", lambda self: plain(self) + (InterruptTrial(started),))
    cfg = tune_config(dhsd_subset, tmp_path, max_evals=2, trial_epochs=4, isolate_trials=False, prune=False)
    with pytest.raises(KeyboardInterrupt):
        run_tune(cfg)
    monkeypatch.undo()
    client = MlflowClient(tracking_uri)
    (parent,) = [r for r in client.search_runs([e.experiment_id for e in client.search_experiments()])
                 if r.data.tags.get("hwr.verb") == "tune"]
    first, interrupted = children(client, parent.info.run_id)
    assert interrupted.info.status == "KILLED"

    run_tune(tune_config(dhsd_subset, tmp_path, max_evals=2, trial_epochs=4, isolate_trials=False, prune=False,
                         resume_run_id=parent.info.run_id))
    trials = children(client, parent.info.run_id)
    assert [t.info.run_id for t in trials] == [first.info.run_id, interrupted.info.run_id]  # no third run
    resumed = client.get_run(interrupted.info.run_id)
    assert resumed.info.status == "FINISHED" and resumed.data.tags["hwr.resumed_at_epoch"] == "2"
    assert sorted(m.step for m in client.get_metric_history(resumed.info.run_id, "val_cer")) == [0, 1, 2, 3]
