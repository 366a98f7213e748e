"""The prediction model behind a real ``mlflow models serve``: a request that is malformed as a whole
gets HTTP 400 with a message saying what is wrong; a frame mixing good and bad rows gets 200 with
an ``error`` per row; the server neither dies nor restarts a worker. One server session (about
15-20 s), a tiny untrained model: the answers' shape matters here, not their accuracy."""

from __future__ import annotations

import base64
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import DHSD

PNG = (DHSD / "images/writer1/1_0.png").read_bytes()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def frame(cells: list, params: dict | None = None) -> bytes:
    body = {"dataframe_split": {"columns": ["image"], "data": [[c] for c in cells]}}
    return json.dumps({**body, **({"params": params} if params else {})}).encode()


def group_pids(pgid: int) -> set[int]:
    pids = set()
    for entry in filter(str.isdigit, os.listdir("/proc")):
        try:
            if os.getpgid(int(entry)) == pgid:
                pids.add(int(entry))
        except ProcessLookupError:
            pass
    return pids


@pytest.mark.slow
def test_served_model_answers_bad_requests_with_400_and_bad_rows_with_row_errors(tracking_uri, tmp_path):
    import keras
    import mlflow
    import requests

    from hwr.config import ModelConfig
    from hwr.data.charset import Charset
    from hwr.mlflow.packaging import log_models
    from hwr.model.crnn import build_crnn

    keras.utils.set_random_seed(0)
    charset = Charset(tuple("abcdefghij"))
    cfg = ModelConfig(img_height=32, img_width=64, conv_filters=(4, 8), dense_units=8, lstm1_units=4, lstm2_units=4)
    with mlflow.start_run():
        models = log_models(build_crnn(cfg, charset.num_classes), charset, [str(DHSD / "images/writer1/1_0.png")])
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    mlflow_cli = str(Path(sys.executable).parent / "mlflow")
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    log = open(tmp_path / "server.log", "wb")
    server = subprocess.Popen([mlflow_cli, "models", "serve", "-m", models.prediction_uri, "--env-manager", "local",
                               "-h", "127.0.0.1", "-p", str(port)], env=env, stdout=log, stderr=subprocess.STDOUT,
                              start_new_session=True)
    try:
        deadline = time.monotonic() + 180
        while True:
            assert server.poll() is None, (tmp_path / "server.log").read_text()[-3000:]
            assert time.monotonic() < deadline, "no answer to /ping within 180 s"
            try:
                if requests.get(url + "/ping", timeout=1).ok:
                    break
            except requests.RequestException:
                time.sleep(0.5)
        workers = group_pids(server.pid)

        def post(body: bytes, content_type: str = "application/json") -> requests.Response:
            return requests.post(url + "/invocations", data=body, headers={"Content-Type": content_type}, timeout=60)

        good = base64.b64encode(PNG).decode()
        refused = [  # (body, what the 400 message says)
            (b"this is not json {", "valid JSON"),
            (os.urandom(2 * 1024 * 1024), "valid JSON"),  # 2 MB of binary garbage
            (json.dumps({"dataframe_split": {"columns": ["picture"], "data": [[good]]}}).encode(),
             "missing inputs ['image']"),
            (frame([]), "the request has no rows"),
            (frame([good], {"decoder": "viterbi"}), "decoder='viterbi'"),
        ]
        for body, says in refused:
            answer = post(body)
            assert answer.status_code == 400, (says, answer.status_code, answer.text[:500])
            assert says in answer.json()["message"], (says, answer.text[:500])

        mixed = post(frame([good, "%%% not base64", base64.b64encode(b"not an image").decode(), "", None, 12, good]))
        assert mixed.status_code == 200, mixed.text[:2000]
        rows = mixed.json()["predictions"]
        assert [sorted(r) for r in rows] == [["confidence", "error", "text"]] * 7
        assert rows[0]["error"] == rows[-1]["error"] == "" and rows[0]["text"] == rows[-1]["text"]
        assert 0 < rows[0]["confidence"] <= 1
        says = ["not valid base64", "not a decodable PNG or JPEG", "empty file", "missing value (null)",
                "expected a base64 string, got int"]
        for row, expected in zip(rows[1:-1], says):
            assert expected in row["error"] and row["text"] == "" and row["confidence"] == 0.0, row

        assert requests.get(url + "/ping", timeout=5).ok and server.poll() is None
        assert group_pids(server.pid) == workers  # no worker died or was restarted
    finally:
        try:
            os.killpg(server.pid, signal.SIGTERM)
            server.wait(timeout=30)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            os.killpg(server.pid, signal.SIGKILL)
        log.close()
