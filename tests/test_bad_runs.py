"""The bad-input catalogue, runs: a loss that turns NaN fails the run in one line and its last
checkpoint resumes; a tracking server that does not answer is one line naming it."""

from __future__ import annotations

import os
import subprocess
import sys
import time as _time

import keras as _keras
import numpy as np
import pytest
from mlflow import MlflowClient as _Client

from conftest import ROOT, dhsd_rows, tiny_config


class PoisonWeights(_keras.callbacks.Callback):
    """Makes the loss NaN from the 3rd batch of epoch 3 on (as an exploding gradient would): the
    learning rates that do so on a real CRNN differ by machine and data, the reaction must not."""

    def on_train_batch_begin(self, batch, logs=None):
        if self.params and getattr(self, "epoch", 0) == 2 and batch == 2:
            layer = self.model.get_layer("output")
            layer.set_weights([np.full_like(w, np.nan) for w in layer.get_weights()])

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch


@pytest.mark.slow
def test_nan_loss_fails_the_run_in_one_line_and_its_last_checkpoint_resumes(tmp_path, monkeypatch, capsys):
    import mlflow

    from hwr.errors import TrainingDiverged
    from hwr.training import train

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.chdir(tmp_path)
    mlflow.set_tracking_uri(uri)
    labels = tmp_path / "labels.csv"
    dhsd_rows({"train": 48, "val": 16, "test": 16}).to_csv(labels, index=False)
    cfg = tiny_config(labels, epochs=4, lr=0.002)
    fit = train.fit
    monkeypatch.setattr(train, "fit", lambda *a, **k: fit(*a, **{**k, "callbacks": (PoisonWeights(),)}))
    with pytest.raises(TrainingDiverged) as diverged:
        train.run_train(cfg)
    monkeypatch.setattr(train, "fit", fit)
    message = str(diverged.value)
    assert "\n" not in message and "in epoch 3, batch 3 (learning rate 0.002)" in message
    run_id = message.split("resume_run_id=")[1].split()[0]
    client = _Client(uri)
    run = client.get_run(run_id)
    assert run.info.status == "FAILED" and "marked FAILED" in message and "-P lr=0.0002" in message
    assert [m.step for m in client.get_metric_history(run_id, "val_cer")][:2] == [0, 1]

    result = train.run_train(cfg.replace(lr=0.0002, resume_run_id=run_id))  # the command the message gives
    assert result.run_id == run_id and client.get_run(run_id).info.status == "FINISHED"
    assert client.get_run(run_id).data.tags["hwr.resumed_at_epoch"] == "2"
    rates = {m.step: m.value for m in client.get_metric_history(run_id, "learning_rate")}
    assert rates[0] == pytest.approx(0.002) and rates[2] == pytest.approx(0.0002)
    mlflow.set_tracking_uri(None)


def test_tracking_server_down_is_one_line_naming_it_within_30_s(tmp_path):
    uri = "http://127.0.0.1:9"  # the discard port: nothing answers
    started = _time.monotonic()
    done = subprocess.run([sys.executable, "-m", "entrypoints.train", "--epochs", "1"], cwd=tmp_path,
                          env={**os.environ, "PYTHONPATH": str(ROOT), "MLFLOW_TRACKING_URI": uri},
                          capture_output=True, text=True, timeout=120)
    took = _time.monotonic() - started
    assert done.returncode == 2 and took < 30, (took, done.stderr[-2000:])
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert errors == [f"error: tracking server {uri} did not answer within 10 s; start it, or point "
                      "MLFLOW_TRACKING_URI at one that runs"]
    assert "Traceback" not in done.stderr
