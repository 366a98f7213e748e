"""Load and abuse test of the served prediction model, against a no-op floor.

    MLFLOW_TRACKING_URI=sqlite:///mlflow.db .venv/bin/python bench/serve_load.py \
        [--model models:/hwr-crnn@champion] [--seconds 10] [--clients 1,8,32] [--malformed 10000] \
        [--workers 1] [--timeout 60]

Starts `mlflow models serve --env-manager local` on 127.0.0.1 twice, one server at a time:

1. with a no-op pyfunc (the same signature; it only decodes each image with
   `hwr.data.images.decode_image`): the floor that the scoring server, JSON and base64 cost;
2. with the prediction model (`--model`).

Each is driven by 1, 8 and 32 concurrent clients (threads, one `requests.Session` each) for
`--seconds` per level, each request one real DHSD word image (base64 PNG); it prints p50/p95/p99
latency, requests/s, images/s and errors, and each as a ratio to the no-op floor. Then the time of
one 64-image request against the model's raw batch inference (the Keras forward pass on the same 64
preprocessed images, in this process, timed
alternately with the request), then `--malformed` malformed requests (not JSON, no `image`
column, no rows, garbage bodies, bad rows, a bad parameter) sent to the prediction server by 8
clients, counting answers by status, 5xx answers and server restarts (worker processes that
appeared or died), then one 50 MB garbage body. The resident memory of every server process is
printed after loading and at the end. Servers are stopped on exit, error or Ctrl-C.

The model's accuracy does not matter here, only its architecture: a model trained for one epoch
has the latency of the fully trained one.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd
import requests

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT.parent / "shared" / "data" / "dhsd"
JSON = {"Content-Type": "application/json"}

NOOP_CODE = '''
import mlflow.pyfunc
import pandas as pd
from mlflow.models import set_model

from hwr.data.images import decode_image
from hwr.mlflow.pyfunc import image_bytes


class DecodeOnly(mlflow.pyfunc.PythonModel):
    """The floor: decode every image, transcribe nothing."""

    def predict(self, context, model_input, params=None):
        n = [decode_image(image_bytes(v)).shape[1] for v in model_input["image"]]
        return pd.DataFrame({"text": [""] * len(n), "confidence": [0.0] * len(n), "error": [""] * len(n)})


set_model(DecodeOnly())
'''


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def frame(cells: list, params: dict | None = None) -> bytes:
    body = {"dataframe_split": {"columns": ["image"], "data": [[c] for c in cells]}}
    if params:
        body["params"] = params
    return json.dumps(body).encode()


def group_pids(pgid: int) -> set[int]:
    """The processes of a process group (the server, its uvicorn workers)."""
    pids = set()
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if os.getpgid(int(entry)) == pgid:
                    pids.add(int(entry))
            except ProcessLookupError:
                pass
    return pids


def memory(pids: set[int]) -> dict[int, tuple[str, float, float]]:
    """pid -> (command, resident MB now, peak resident MB)."""
    out = {}
    for pid in sorted(pids):
        try:
            status = Path(f"/proc/{pid}/status").read_text()
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()[:60]
        except OSError:
            continue
        fields = {line.split(":")[0]: line.split(":")[1].strip() for line in status.splitlines() if ":" in line}
        out[pid] = (cmd, int(fields.get("VmRSS", "0 kB").split()[0]) / 1024, int(fields.get("VmHWM", "0 kB").split()[0]) / 1024)
    return out


class Server:
    """`mlflow models serve` in its own process group; stopped (group and all) by :meth:`stop`."""

    def __init__(self, model: str, workers: int, timeout: int, log: Path):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        mlflow_cli = str(Path(sys.executable).parent / "mlflow")
        env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
        self.log = open(log, "wb")
        started = time.monotonic()
        self.process = subprocess.Popen(
            [mlflow_cli, "models", "serve", "-m", model, "--env-manager", "local", "-h", "127.0.0.1",
             "-p", str(self.port), "-w", str(workers), "-t", str(timeout)],
            env=env, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True)
        self.pgid = self.process.pid
        while time.monotonic() - started < 300:
            if self.process.poll() is not None:
                raise RuntimeError(f"the server exited with status {self.process.returncode}; see {log}")
            try:
                if requests.get(self.url + "/ping", timeout=1).status_code == 200:
                    break
            except requests.RequestException:
                pass
            time.sleep(0.5)
        else:
            raise RuntimeError(f"the server did not answer /ping within 300 s; see {log}")
        self.startup_s = time.monotonic() - started
        time.sleep(1.0)
        self.pids = group_pids(self.pgid)

    def alive(self) -> bool:
        return self.process.poll() is None

    def stop(self) -> None:
        if self.process.poll() is None:
            try:
                os.killpg(self.pgid, signal.SIGTERM)
                self.process.wait(timeout=20)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                pass
        try:
            os.killpg(self.pgid, signal.SIGKILL)  # any worker left behind
        except ProcessLookupError:
            pass
        self.log.close()


def drive(url: str, bodies: list[tuple[bytes, int]], clients: int, seconds: float) -> dict:
    """``clients`` threads post bodies round robin for ``seconds``. Returns latencies (s), counts."""
    stop_at = time.monotonic() + seconds
    latencies: list[float] = []
    errors = [0]
    images = [0]
    lock = threading.Lock()

    def client(k: int) -> None:
        session = requests.Session()
        i = k
        while time.monotonic() < stop_at:
            body, n = bodies[i % len(bodies)]
            i += clients
            started = time.perf_counter()
            try:
                ok = session.post(url + "/invocations", data=body, headers=JSON, timeout=120).status_code == 200
            except requests.RequestException:
                ok = False
            elapsed = time.perf_counter() - started
            with lock:
                latencies.append(elapsed)
                images[0] += n if ok else 0
                errors[0] += 0 if ok else 1

    started = time.monotonic()
    with ThreadPoolExecutor(clients) as pool:
        list(pool.map(client, range(clients)))
    wall = time.monotonic() - started
    ms = np.array(latencies) * 1000
    return {"p50": np.percentile(ms, 50), "p95": np.percentile(ms, 95), "p99": np.percentile(ms, 99),
            "rps": len(ms) / wall, "ips": images[0] / wall, "errors": errors[0], "n": len(ms)}


def timed_post(url: str, body: bytes, repeats: int) -> float:
    """Median seconds of ``repeats`` sequential posts (after one untimed)."""
    session = requests.Session()
    session.post(url + "/invocations", data=body, headers=JSON, timeout=120).raise_for_status()
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        session.post(url + "/invocations", data=body, headers=JSON, timeout=120).raise_for_status()
        times.append(time.perf_counter() - started)
    return float(np.median(times))


def malformed_bodies(good: str) -> list[tuple[str, bytes, str, set[int]]]:
    """(kind, body, content type, accepted statuses) of the malformed requests."""
    rng = random.Random(0)
    garbage = bytes(rng.getrandbits(8) for _ in range(256 * 1024))
    text_garbage = "".join(rng.choice("abcdefxyz{}[]:,\"") for _ in range(256 * 1024)).encode()
    not_image = base64.b64encode(b"\x89PNG\r\n\x1a\n but then nothing" * 10).decode()
    return [
        ("not JSON", b"this is not json", "application/json", {400}),
        ("binary garbage", garbage, "application/json", {400}),
        ("text garbage", text_garbage, "application/json", {400}),
        ("JSON list", b"[1, 2, 3]", "application/json", {400}),
        ("no image column", json.dumps({"dataframe_split": {"columns": ["picture"], "data": [[good]]}}).encode(),
         "application/json", {400}),
        ("no rows", frame([]), "application/json", {400}),
        ("unknown decoder", frame([good], {"decoder": "viterbi"}), "application/json", {400}),
        ("wrong content type", frame([good]), "text/plain", {415}),
        ("bad rows only", frame(["%%% not base64", not_image, "", None, 12, 3.5]), "application/json", {200}),
        ("bad rows + 1 good", frame([good, "%%%", None, 12, ""]), "application/json", {200}),
    ]


def run_malformed(server: Server, count: int, good: str) -> tuple[dict, int, list[str]]:
    kinds = malformed_bodies(good)
    tally: dict[tuple[str, int], int] = {}
    unexpected: list[str] = []
    lock = threading.Lock()

    def one(i: int) -> None:
        kind, body, content_type, expected = kinds[i % len(kinds)]
        try:
            answer = requests.post(server.url + "/invocations", data=body, headers={"Content-Type": content_type},
                                   timeout=60)
            status, text = answer.status_code, answer.text[:200]
        except requests.RequestException as exc:
            status, text = -1, str(exc)[:200]
        with lock:
            tally[(kind, status)] = tally.get((kind, status), 0) + 1
            if status not in expected and len(unexpected) < 5:
                unexpected.append(f"{kind}: {status} {text}")

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(one, range(count)))
    five_xx = sum(n for (_, status), n in tally.items() if status >= 500 or status < 0)
    return tally, five_xx, unexpected


def print_levels(name: str, levels: dict, floor: dict | None) -> None:
    for clients, r in levels.items():
        line = (f"  {name:<6} {clients:>2} clients: p50 {r['p50']:7.1f} ms  p95 {r['p95']:7.1f} ms  "
                f"p99 {r['p99']:7.1f} ms  {r['rps']:7.1f} req/s  {r['ips']:7.1f} img/s  errors {r['errors']} "
                f"(of {r['n']})")
        if floor:
            f = floor[clients]
            line += (f"\n         ratio to floor: p50 {r['p50'] / f['p50']:.2f}x  p95 {r['p95'] / f['p95']:.2f}x  "
                     f"p99 {r['p99'] / f['p99']:.2f}x  req/s {r['rps'] / f['rps']:.2f}x  img/s {r['ips'] / f['ips']:.2f}x")
        print(line, flush=True)


def print_memory(label: str, server: Server) -> None:
    for pid, (cmd, rss, peak) in memory(group_pids(server.pgid)).items():
        print(f"  memory {label}: pid {pid} {rss:6.0f} MB resident (peak {peak:6.0f} MB)  {cmd}", flush=True)


def raw_batch_timer(model_uri: str, cells: list[str]):
    """A function timing one Keras forward pass on ``cells`` preprocessed (the model's raw batch
    inference, in this process), in seconds."""
    import mlflow.pyfunc

    from hwr.model.inference import predict_probs

    inner = mlflow.pyfunc.load_model(model_uri).unwrap_python_model()
    images, _, errors = inner.preprocess(cells)
    assert not any(errors), errors
    predict_probs(inner.model, images)

    def timed() -> float:
        started = time.perf_counter()
        predict_probs(inner.model, images)
        return time.perf_counter() - started

    return timed


def batch_versus_raw(url: str, body: bytes, raw, repeats: int) -> tuple[float, float]:
    """Medians of a served 64-image request and of the raw forward pass, measured alternately so
    that the other load on the machine weighs on both alike."""
    session = requests.Session()
    session.post(url + "/invocations", data=body, headers=JSON, timeout=120).raise_for_status()
    served, forward = [], []
    for _ in range(repeats):
        forward.append(raw())
        started = time.perf_counter()
        session.post(url + "/invocations", data=body, headers=JSON, timeout=120).raise_for_status()
        served.append(time.perf_counter() - started)
    return float(np.median(served)), float(np.median(forward))


def save_noop(folder: Path) -> str:
    import mlflow.pyfunc

    from hwr.mlflow.code_paths import write_code
    from hwr.mlflow.packaging import model_requirements, prediction_signature

    code = folder / "noop_code.py"
    code.write_text(NOOP_CODE)
    example = pd.DataFrame({"image": ["aGk="]})
    mlflow.pyfunc.save_model(str(folder / "noop"), python_model=str(code),
                             code_paths=[str(write_code(["hwr.mlflow.pyfunc"], folder / "code"))],
                             pip_requirements=model_requirements(), signature=prediction_signature(example))
    return str(folder / "noop")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="models:/hwr-crnn@champion")
    parser.add_argument("--data", default=str(DATA), help="a folder with labels.csv (column image) and the images")
    parser.add_argument("--seconds", type=float, default=10.0, help="duration of each concurrency level")
    parser.add_argument("--clients", default="1,8,32", help="concurrency levels")
    parser.add_argument("--malformed", type=int, default=10000, help="malformed requests to send")
    parser.add_argument("--workers", type=int, default=1, help="uvicorn workers (mlflow models serve -w)")
    parser.add_argument("--timeout", type=int, default=60, help="request timeout in s (mlflow models serve -t)")
    parser.add_argument("--images", type=int, default=256, help="distinct DHSD images to send")
    args = parser.parse_args()
    levels = [int(c) for c in args.clients.split(",")]

    table = pd.read_csv(Path(args.data) / "labels.csv").head(args.images)
    cells = [base64.b64encode((Path(args.data) / p).read_bytes()).decode("ascii") for p in table.image]
    singles = [(frame([c]), 1) for c in cells]
    batch64 = frame(cells[:64])
    print(f"model {args.model}; {len(cells)} DHSD images (mean {np.mean([len(c) for c in cells]) / 1024:.1f} KB "
          f"base64); {args.seconds:g} s per level; --workers {args.workers}, --timeout {args.timeout} s; "
          f"{os.cpu_count()} CPUs", flush=True)

    results: dict[str, dict] = {}
    servers: list[Server] = []
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    with tempfile.TemporaryDirectory(prefix="serve-load-") as tmp:
        try:
            for name, uri in (("no-op", save_noop(Path(tmp))), ("model", args.model)):
                server = Server(uri, args.workers, args.timeout, Path(tmp) / f"{name}.log")
                servers.append(server)
                print(f"{name}: server up after {server.startup_s:.1f} s, processes {sorted(server.pids)}", flush=True)
                print_memory(f"{name} loaded", server)
                started = time.perf_counter()
                requests.post(server.url + "/invocations", data=singles[0][0], headers=JSON, timeout=120).raise_for_status()
                first_s = time.perf_counter() - started
                results[name] = {c: drive(server.url, singles, c, args.seconds) for c in levels}
                results[name]["first_ms"] = first_s * 1000
                if name == "model":
                    raw = raw_batch_timer(args.model, cells[:64])
                    results[name]["batch64_s"], results[name]["raw64_s"] = batch_versus_raw(server.url, batch64, raw, 15)
                    del raw
                else:
                    results[name]["batch64_s"] = timed_post(server.url, batch64, 10)
                print_levels(name, {c: results[name][c] for c in levels}, results.get("no-op") if name == "model" else None)
                print(f"  {name} first request after start: {first_s * 1000:.1f} ms; "
                      f"one 64-image request: {results[name]['batch64_s'] * 1000:.1f} ms (median)", flush=True)
                if name == "model":
                    before = group_pids(server.pgid)
                    started = time.monotonic()
                    tally, five_xx, unexpected = run_malformed(server, args.malformed, cells[0])
                    after = group_pids(server.pgid)
                    restarts = len(after - before) + len(before - after) + (0 if server.alive() else 1)
                    print(f"  malformed: {args.malformed} requests in {time.monotonic() - started:.1f} s by 8 clients; "
                          f"5xx or no answer: {five_xx}; server restarts: {restarts}", flush=True)
                    for (kind, status), n in sorted(tally.items()):
                        print(f"    {kind:<20} HTTP {status}: {n}")
                    for line in unexpected:
                        print(f"    unexpected: {line}")
                    garbage = os.urandom(50 * 1024 * 1024)
                    started = time.perf_counter()
                    try:
                        answer = requests.post(server.url + "/invocations", data=garbage, headers=JSON, timeout=300)
                        said = f"HTTP {answer.status_code}, {len(answer.content) / 2**20:.0f} MB answer: {answer.text[:90]!r}"
                    except requests.RequestException as exc:
                        said = f"no answer ({exc})"
                    print(f"  50 MB garbage body: {said} in {time.perf_counter() - started:.1f} s; "
                          f"server alive: {server.alive() and requests.get(server.url + '/ping', timeout=5).ok}", flush=True)
                print_memory(f"{name} at the end", server)
                server.stop()
        finally:
            for server in servers:
                server.stop()

    model, floor = results["model"], results["no-op"]
    raw = model["raw64_s"]
    print(f"raw batch inference (64 images, Keras forward pass in this process, measured alternately with "
          f"the 64-image request, median of 15): {raw * 1000:.1f} ms; the request: {model['batch64_s'] * 1000:.1f} ms")
    print("targets:")
    single = levels[0]
    eight = 8 if 8 in levels else levels[-1]
    checks = [
        ("single-client p50 <= 4x floor", model[single]["p50"] / floor[single]["p50"], 4.0, "<="),
        (f"req/s at {eight} clients >= 50% of floor", model[eight]["rps"] / floor[eight]["rps"], 0.5, ">="),
        ("64-image request <= 1.5x raw batch inference", model["batch64_s"] / raw, 1.5, "<="),
    ]
    for label, value, bound, op in checks:
        met = value <= bound if op == "<=" else value >= bound
        print(f"  {label}: {value:.2f}x  {'met' if met else 'NOT met'}")


if __name__ == "__main__":
    main()
