"""The bad-input catalogue, the served model: the scoring server's own request handling
(``mlflow.pyfunc.scoring_server.invocations``, the function ``mlflow models serve`` runs per
request), in this process, on a tiny logged prediction model: each malformed request must map to
HTTP 400 (never 500) with a message naming the problem; bad rows inside a good frame must give 200
with a per-row error. ``tests/test_serving.py`` does a few of these through a real server.
"""

from __future__ import annotations

import base64
import json
import os
import sys

import pytest

from conftest import DHSD
from hwr.config import ModelConfig

SOURCE_IMAGE = "images/writer1/1_0.png"


@pytest.fixture(scope="module")
def serving_model(tmp_path_factory):
    """A tiny untrained prediction model, logged (signature and all) and loaded as the server loads it."""
    import keras
    import mlflow

    from hwr.data.charset import Charset
    from hwr.mlflow.packaging import log_models
    from hwr.model.crnn import build_crnn

    root = tmp_path_factory.mktemp("serving")
    uri = f"sqlite:///{root / 'mlflow.db'}"
    keras.utils.set_random_seed(0)
    charset = Charset(tuple("abcdefghij"))
    cfg = ModelConfig(img_height=32, img_width=64, conv_filters=(4, 8), dense_units=8, lstm1_units=4, lstm2_units=4)
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(root)
        mp.setattr(sys, "path", list(sys.path))  # loading prepends the model's code/ folder
        mlflow.set_tracking_uri(uri)
        with mlflow.start_run():
            models = log_models(build_crnn(cfg, charset.num_classes), charset, [str(DHSD / SOURCE_IMAGE)])
        model = mlflow.pyfunc.load_model(models.prediction_uri)
    mlflow.set_tracking_uri(None)
    return model


def serve_once(model, body: bytes, content_type: str = "application/json") -> tuple[int, dict | str]:
    """What `mlflow models serve` answers to one POST /invocations: (HTTP status, parsed body)."""
    from mlflow.exceptions import MlflowException
    from mlflow.pyfunc import scoring_server

    try:
        answer = scoring_server.invocations(body, content_type, model, model.metadata.get_input_schema())
    except MlflowException as exc:  # the server's handler turns these into their HTTP status
        return exc.get_http_status_code(), json.loads(exc.serialize_as_json())
    return answer.status, (json.loads(answer.response) if answer.status == 200 else answer.response)


def serving_frame(cells: list, params: dict | None = None) -> bytes:
    body = {"dataframe_split": {"columns": ["image"], "data": [[c] for c in cells]}}
    return json.dumps({**body, **({"params": params} if params else {})}).encode()


SERVING_GOOD = base64.b64encode((DHSD / SOURCE_IMAGE).read_bytes()).decode()
MALFORMED_REQUESTS = {  # name: (body, content type, status, what the answer says)
    "not JSON": (b"{'image': not json", "application/json", 400, "valid JSON"),
    "not UTF-8": (bytes(range(256)) * 64, "application/json", 400, "valid JSON"),
    "a JSON list": (b"[1, 2, 3]", "application/json", 400, "Received a list"),
    "no image column": (json.dumps({"dataframe_split": {"columns": ["picture"], "data": [[SERVING_GOOD]]}}).encode(),
                        "application/json", 400, "missing inputs ['image']"),
    "no rows": (serving_frame([]), "application/json", 400, "the request has no rows"),
    "unknown decoder": (serving_frame([SERVING_GOOD], {"decoder": "viterbi"}), "application/json", 400,
                        "decoder='viterbi'"),
    "bad beam width": (serving_frame([SERVING_GOOD], {"decoder": "beam", "beam_width": 0}), "application/json", 400,
                       "beam_width=0"),
    "CSV without the column": (b"picture\nabc\n", "text/csv", 400, "missing inputs ['image']"),
}


@pytest.mark.parametrize("case", MALFORMED_REQUESTS)
def test_serving_a_malformed_request_is_400_with_its_reason(serving_model, case):
    body, content_type, status, says = MALFORMED_REQUESTS[case]
    got, answer = serve_once(serving_model, body, content_type)
    assert got == status, (case, got, answer)
    assert says in (answer["message"] if isinstance(answer, dict) else answer), answer


def test_serving_50_mb_of_garbage_is_400_not_a_crash(serving_model):
    got, answer = serve_once(serving_model, b"\x00garbage" * (50 * 1024 * 1024 // 8))
    assert got == 400 and "valid JSON" in answer["message"]


SERVING_BAD_CELLS = [  # (cell, what its row's error says)
    ("%%% not base64", "not valid base64"),
    (base64.b64encode(b"\x89PNG\r\n\x1a\n and nothing more").decode(), "not a decodable PNG or JPEG image"),
    ("", "empty file"),
    (None, "missing value (null)"),
    (12, "expected a base64 string, got int"),
    (1.5, "expected a base64 string, got float"),
    (True, "expected a base64 string, got bool"),
    (base64.b64encode(os.urandom(3 * 1024 * 1024)).decode(), "not a decodable PNG or JPEG image"),  # 4 MB cell
]


@pytest.mark.parametrize("content", ["dataframe_split", "dataframe_records", "inputs"])
def test_serving_bad_rows_get_200_and_an_error_each_the_good_rows_are_transcribed(serving_model, content):
    cells = [SERVING_GOOD] + [cell for cell, _ in SERVING_BAD_CELLS] + [SERVING_GOOD]
    body = {"dataframe_split": {"columns": ["image"], "data": [[c] for c in cells]},
            "dataframe_records": [{"image": c} for c in cells],
            "inputs": {"image": cells}}[content]
    got, answer = serve_once(serving_model, json.dumps({content: body}).encode())
    assert got == 200, answer
    rows = answer["predictions"]
    assert len(rows) == len(cells) and all(set(r) == {"text", "confidence", "error"} for r in rows)
    assert rows[0]["error"] == rows[-1]["error"] == "" and rows[0]["text"] == rows[-1]["text"]
    for row, (_, says) in zip(rows[1:-1], SERVING_BAD_CELLS):
        assert row["error"], row  # "inputs" turns numbers and nulls into strings: still a row error
        if content != "inputs":
            assert says in row["error"], row
        assert row["text"] == "" and row["confidence"] == 0.0
