"""Run names and descriptions, and the data notice they carry (no training)."""

from __future__ import annotations

import mlflow

from conftest import DHSD, HOOKER

from hwr.data.provenance import data_notice
from hwr.mlflow import runs


def test_a_generated_run_name_is_replaced_and_a_chosen_one_kept(tracking_uri):
    with mlflow.start_run() as run:  # MLflow generates e.g. "brave-owl-123"
        assert runs.GENERATED_NAME.match(run.info.run_name)
        runs.name_run("train", "../shared/data/dhsd")
    assert mlflow.get_run(run.info.run_id).info.run_name.startswith("train-dhsd-")
    with mlflow.start_run(run_name="my-lr-test") as run:
        runs.name_run("train", "../shared/data/dhsd")
    assert mlflow.get_run(run.info.run_id).info.run_name == "my-lr-test"


def test_data_notice_finds_licence_and_attribution(tmp_path):
    dhsd = data_notice(DHSD)
    assert dhsd.startswith("Licence (LICENSE): Creative Commons Attribution 4.0 International License")
    assert "doi:10.5281/zenodo.18743313" in dhsd  # the parent README's entry for the set
    hooker = data_notice(HOOKER)  # no licence file: the parent README's entry alone
    assert "Joseph Hooker HTR ground truth" in hooker and "CC BY-SA 4.0" in hooker and "DHSD" not in hooker
    assert data_notice(tmp_path) == ""


def test_the_dataset_digest_changes_with_any_label_or_image_byte(tmp_path):
    import pandas as pd

    from hwr.mlflow.datasets import content_digest

    for name, data in (("a.png", b"one"), ("b.png", b"two")):
        (tmp_path / name).write_bytes(data)
    frame = pd.DataFrame({"image": ["a.png", "b.png"], "text": ["Berlin", "Bonn"],
                          "path": [str(tmp_path / "a.png"), str(tmp_path / "b.png")]})

    def digest():
        return content_digest(frame["image"], frame["text"], frame["path"])

    first = digest()
    assert digest() == first and len(first) == 16
    frame.loc[1, "text"] = "Bonn."
    relabelled = digest()
    (tmp_path / "a.png").write_bytes(b"onE")
    assert len({first, relabelled, digest()}) == 3


def test_a_dataset_input_that_loses_the_insert_race_to_a_parallel_trial_is_logged(tracking_uri, tmp_path,
                                                                                   monkeypatch):
    """Two trials of one experiment log the same new split at once: the rival inserts the dataset
    between this run's look-up and its insert (as in a Spark ``tune``), which breaks the store's
    unique key; the input must still be logged, and other errors must not be retried."""
    import uuid

    import pandas as pd
    import pytest
    from mlflow import MlflowClient
    from mlflow.entities import DatasetInput
    from mlflow.exceptions import MlflowException
    from mlflow.store.tracking import sqlalchemy_store

    from hwr.mlflow.datasets import log_dataset, split_dataset

    (tmp_path / "a.png").write_bytes(b"one")
    frame = pd.DataFrame({"image": ["a.png"], "text": ["Bonn"], "path": [str(tmp_path / "a.png")]})
    dataset = split_dataset(frame, str(tmp_path), "dhsd-val")
    client = MlflowClient()
    rival = client.create_run("0").info.run_id

    class RivalInsertsFirst:  # the store draws a new dataset's uuid after its look-up came back empty
        armed, fired = False, False

        @classmethod
        def uuid4(cls):
            if cls.armed and not cls.fired:
                cls.fired = True
                client.log_inputs(rival, [DatasetInput(dataset._to_mlflow_entity(), [])])
            return uuid.uuid4()

    monkeypatch.setattr(sqlalchemy_store, "uuid", RivalInsertsFirst)
    with mlflow.start_run() as run:
        RivalInsertsFirst.armed = True
        log_dataset(dataset, "val")
    assert RivalInsertsFirst.fired
    for run_id in (run.info.run_id, rival):
        [logged] = client.get_run(run_id).inputs.dataset_inputs
        assert (logged.dataset.name, logged.dataset.digest) == ("dhsd-val", dataset.digest)

    calls = []

    def refuses(*args, **kwargs):
        calls.append(args)
        raise MlflowException("RESOURCE_DOES_NOT_EXIST: run not found")

    monkeypatch.setattr(mlflow, "log_input", refuses)
    with pytest.raises(MlflowException, match="run not found"):
        log_dataset(dataset, "val")
    assert len(calls) == 1
