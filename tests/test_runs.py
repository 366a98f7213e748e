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
