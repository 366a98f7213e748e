"""Running for a team, end to end on real services: the stack of ``make server`` (PostgreSQL,
Ceph's S3 gateway with a file-backed OSD, ``mlflow server`` behind basic auth) and of ``make spark``
(a standalone master and two workers), started here on their own ports and state folder so a
developer's running stack is left alone, then torn down.

A tiny model is trained by ``mlflow run`` on an ``s3://`` copy of a DHSD subset against the team
server, transcribed with ``predict -P backend=spark`` on the cluster, and everything is checked
where it lives: runs as PostgreSQL rows, artifacts and models as objects in the bucket, the
champion loading in a fresh process with only the tracking URI and credentials.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from conftest import DHSD, ROOT, TINY_MODEL

pytestmark = pytest.mark.slow

BIN = Path(sys.executable).parent
PORTS = {"HWR_MLFLOW_PORT": "5150", "HWR_S3_PORT": "7580", "HWR_MON_PORT": "3400", "HWR_CEPH_PORT_MIN": "7200",
         "HWR_CEPH_PORT_MAX": "7399", "HWR_SPARK_PORT": "7177", "HWR_SPARK_UI_PORT": "8190",
         "HWR_PG_DB": "hwr_test_mlflow", "HWR_AUTH_DB": "hwr_test_auth"}
BUCKET = "hwr-test-data"
PREFIX = "dhsd-small"


def sh(args: list[str], env: dict, timeout: int = 600) -> subprocess.CompletedProcess:
    proc = subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, f"{args} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}"
    return proc


def psql(sql: str, db: str = "postgres") -> str:
    return subprocess.run(["psql", "-h", "127.0.0.1", "-U", "postgres", "-d", db, "-tAc", sql],
                          capture_output=True, text=True, check=True).stdout.strip()


def exports(text: str) -> dict[str, str]:
    return dict(re.findall(r"^export (\w+)=['\"]?(.*?)['\"]?$", text, re.M))


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    """The team stack from nothing (fresh state folder and databases); yields the client
    environment ``make server`` prints, plus SPARK_MASTER."""
    if not shutil.which("psql"):
        pytest.skip("no PostgreSQL client on this machine")
    state = tmp_path_factory.mktemp("stack")
    base = {**os.environ, **PORTS, "HWR_STACK_DIR": str(state), "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}
    for name in ("MLFLOW_TRACKING_URI", "MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD", "SPARK_MASTER"):
        base.pop(name, None)
    for db in (PORTS["HWR_PG_DB"], PORTS["HWR_AUTH_DB"]):
        psql(f"DROP DATABASE IF EXISTS {db} WITH (FORCE)")
    try:
        server = sh(["bash", "stack/server.sh", "start"], base)
        again = sh(["bash", "stack/server.sh", "start"], base)  # idempotent: the first keeps running
        spark = sh(["bash", "stack/spark.sh", "start"], base)
        env = {**base, **exports(server.stdout), **exports(spark.stdout)}
        assert exports(again.stdout) == exports(server.stdout)
        yield env
    finally:
        subprocess.run(["bash", "stack/spark.sh", "stop"], cwd=ROOT, env=base, capture_output=True)
        subprocess.run(["bash", "stack/server.sh", "stop"], cwd=ROOT, env=base, capture_output=True)


@pytest.fixture(scope="module")
def s3_data(stack, tmp_path_factory):
    """A DHSD subset (24 train, 8 val, 8 test) uploaded to s3://hwr-test-data/dhsd-small with boto3."""
    import boto3

    s3 = boto3.client("s3", endpoint_url=stack["AWS_ENDPOINT_URL"], aws_access_key_id=stack["AWS_ACCESS_KEY_ID"],
                      aws_secret_access_key=stack["AWS_SECRET_ACCESS_KEY"], region_name="us-east-1")
    s3.create_bucket(Bucket=BUCKET)
    table = pd.read_csv(DHSD / "labels.csv", dtype=str, keep_default_na=False)
    table = pd.concat([table[table.split == s].head(n) for s, n in (("train", 24), ("val", 8), ("test", 8))])
    csv = tmp_path_factory.mktemp("s3data") / "labels.csv"
    table.to_csv(csv, index=False)
    s3.upload_file(str(csv), BUCKET, f"{PREFIX}/labels.csv")
    for image in table.image:
        s3.upload_file(str(DHSD / image), BUCKET, f"{PREFIX}/{image}")
    return {"s3": s3, "table": table, "uri": f"s3://{BUCKET}/{PREFIX}"}


def client_env(stack: dict, tmp_path: Path) -> dict:
    return {**stack, "HWR_S3_CACHE": str(tmp_path / "s3cache")}


def test_server_refuses_a_client_without_credentials(stack):
    import requests

    url = f"{stack['MLFLOW_TRACKING_URI']}/api/2.0/mlflow/experiments/search?max_results=5"
    assert requests.get(url, timeout=10).status_code == 401
    answer = requests.get(url, auth=(stack["MLFLOW_TRACKING_USERNAME"], stack["MLFLOW_TRACKING_PASSWORD"]),
                          timeout=10)
    assert answer.status_code == 200 and "experiments" in answer.json()


def test_s3_data_errors_name_the_bucket_and_the_key(stack, s3_data, tmp_path, monkeypatch):
    from hwr.config import DataConfig
    from hwr.data.remote import local_view
    from hwr.errors import BadInputError

    for name in ("AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.setenv(name, stack[name])
    cache = tmp_path / "cache"
    with pytest.raises(BadInputError, match="bucket 'no-such-bucket' does not exist"):
        local_view(DataConfig(data="s3://no-such-bucket/x"), cache)
    table = s3_data["table"].copy()
    table.iloc[3, table.columns.get_loc("image")] = "images/missing.png"
    table.iloc[4, table.columns.get_loc("image")] = "../../etc/passwd"
    broken = tmp_path / "labels.csv"
    table.to_csv(broken, index=False)
    s3_data["s3"].upload_file(str(broken), BUCKET, f"{PREFIX}/broken.csv")
    with pytest.raises(BadInputError, match=rf"row 5 \(image 'images/missing.png'\): object "
                                            rf"s3://{BUCKET}/{PREFIX}/images/missing.png does not exist"):
        local_view(DataConfig(data=s3_data["uri"], labels="broken.csv"), cache)

    from hwr.data.dataset import BadInputLog
    from hwr.data.labels import read_labels

    view = local_view(DataConfig(data=s3_data["uri"], labels="broken.csv", on_bad_input="skip"), cache)
    bad = BadInputLog("skip", "broken.csv")
    rows = read_labels(view, 42, bad)
    assert len(rows) == len(table) - 2
    reasons = {b.file: b.reason for b in bad.rows}
    assert reasons["images/missing.png"] == "image file does not exist"
    assert "outside the data folder" in reasons["../../etc/passwd"]
    objects = sorted((cache / "objects").iterdir())
    assert len(objects) == len(table) - 2 + 1  # the images it names and its CSV; nothing else of the bucket
    local_view(DataConfig(data=s3_data["uri"]), cache)
    # fetched: labels.csv and the two images broken.csv replaced; the other 38 came from the cache
    assert len(list((cache / "objects").iterdir())) == len(objects) + 3


def test_train_on_s3_data_and_predict_on_the_cluster(stack, s3_data, tmp_path, monkeypatch):
    from mlflow import MlflowClient

    env = client_env(stack, tmp_path)
    model = [f"-P{k}={v}" for k, v in TINY_MODEL.items()]
    sh([str(BIN / "mlflow"), "run", ".", "-e", "train", "--env-manager", "local", "--experiment-name", "team",
        "-P", f"data={s3_data['uri']}", "-P", "epochs=1", "-P", "batch_size=16", "-P", "system_metrics=false",
        *model], env)
    out = tmp_path / "predictions.csv"
    sh([str(BIN / "mlflow"), "run", ".", "-e", "predict", "--env-manager", "local", "--experiment-name", "team",
        "-P", f"data={s3_data['uri']}", "-P", "split=test", "-P", "backend=spark",
        "-P", f"spark_master={stack['SPARK_MASTER']}", "-P", f"output={out}", "-P", "system_metrics=false"], env)

    predictions = pd.read_csv(out, dtype=str, keep_default_na=False)
    assert predictions.image.tolist() == s3_data["table"].query("split == 'test'").image.tolist()
    assert (predictions.error == "").all()

    for name in ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD"):
        monkeypatch.setenv(name, stack[name])
    client = MlflowClient(stack["MLFLOW_TRACKING_URI"])
    experiment = client.get_experiment_by_name("team")
    runs = {r.data.tags["hwr.verb"]: r for r in client.search_runs([experiment.experiment_id])}
    assert set(runs) == {"train", "predict"} and all(r.info.status == "FINISHED" for r in runs.values())
    assert runs["predict"].data.metrics["n_images"] == 8 and "cer" in runs["predict"].data.metrics
    inputs = runs["train"].inputs.dataset_inputs
    assert {i.dataset.source for i in inputs} and s3_data["uri"] in inputs[0].dataset.source

    rows = psql(f"SELECT run_uuid, status FROM runs WHERE experiment_id = {experiment.experiment_id} "
                "ORDER BY start_time", PORTS["HWR_PG_DB"]).splitlines()
    assert rows == [f"{runs['train'].info.run_id}|FINISHED", f"{runs['predict'].info.run_id}|FINISHED"]
    champion = client.get_model_version_by_alias("hwr-crnn", "champion")
    assert champion.run_id == runs["train"].info.run_id
    keys = [o["Key"] for page in s3_data["s3"].get_paginator("list_objects_v2").paginate(Bucket="mlflow-artifacts")
            for o in page.get("Contents", [])]
    assert any(runs["train"].info.run_id in k for k in keys)  # the run's artifacts
    assert any(k.endswith("MLmodel") for k in keys) and any(k.endswith(".keras") for k in keys)  # the models

    fresh = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "MLFLOW_"))}
    fresh.update({k: stack[k] for k in ("MLFLOW_TRACKING_URI", "MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD")})
    image = DHSD / s3_data["table"].image.iloc[-1]
    code = ("import base64, sys, mlflow, pandas as pd; m = mlflow.pyfunc.load_model('models:/hwr-crnn@champion');"
            f"b = base64.b64encode(open({str(image)!r}, 'rb').read()).decode();"
            "print('TEXT', len(m.predict(pd.DataFrame({'image': [b]}))))")
    answer = subprocess.run([sys.executable, "-c", code], env=fresh, capture_output=True, text=True, timeout=300)
    assert answer.returncode == 0 and "TEXT 1" in answer.stdout, answer.stderr[-3000:]


def test_artifacts_survive_a_restart_of_the_stack(stack, tmp_path, monkeypatch):
    from mlflow import MlflowClient

    for name in ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD"):
        monkeypatch.setenv(name, stack[name])
    # the client alone: mlflow.set_experiment would leave MLFLOW_EXPERIMENT_ID set for the later test modules
    client = MlflowClient(stack["MLFLOW_TRACKING_URI"])
    note = tmp_path / "note.txt"
    note.write_text("kept")
    run = client.create_run(client.create_experiment("restart"))
    client.log_artifact(run.info.run_id, str(note))
    client.set_terminated(run.info.run_id)
    sh(["bash", "stack/server.sh", "stop"], stack)
    sh(["bash", "stack/server.sh", "start"], stack)
    back = client.download_artifacts(run.info.run_id, "note.txt", str(tmp_path / "back"))
    assert Path(back).read_text() == "kept"
