"""Latency of the served prediction model through MLflow's scoring server.

    .venv/bin/python bench/serve_latency.py [--model models:/hwr-crnn@champion] [--requests 200]

Starts `mlflow models serve --env-manager local` on a free loopback port, sends one-image
requests (a real DHSD word image, base64 PNG) one after another, and prints the median and 95th
percentile request time in milliseconds, then stops the server. Uses the tracking store from
MLFLOW_TRACKING_URI (default: sqlite:///mlflow.db in the working directory).
"""

import argparse
import base64
import json
import os
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

IMAGE = Path(__file__).resolve().parent.parent.parent / "shared/data/dhsd/images/writer1/1_0.png"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def post(url: str, body: bytes) -> dict:
    request = urllib.request.Request(url, body, {"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


def wait_until_up(url: str, server: subprocess.Popen, limit_s: float = 120) -> float:
    started = time.monotonic()
    while time.monotonic() - started < limit_s:
        if server.poll() is not None:
            sys.exit(f"the server exited with status {server.returncode}")
        try:
            urllib.request.urlopen(url + "/ping", timeout=1)
            return time.monotonic() - started
        except OSError:
            time.sleep(0.5)
    sys.exit(f"the server did not answer /ping within {limit_s} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="models:/hwr-crnn@champion")
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--image", default=str(IMAGE))
    args = parser.parse_args()
    port = free_port()
    mlflow = str(Path(sys.executable).parent / "mlflow")
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    server = subprocess.Popen([mlflow, "models", "serve", "-m", args.model, "--env-manager", "local",
                               "-h", "127.0.0.1", "-p", str(port)], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        startup = wait_until_up(url, server)
        image = base64.b64encode(Path(args.image).read_bytes()).decode()
        body = json.dumps({"dataframe_split": {"columns": ["image"], "data": [[image]]}}).encode()
        answer = post(url + "/invocations", body)  # warm-up (first call traces the model)
        times = []
        for _ in range(args.requests):
            started = time.perf_counter()
            post(url + "/invocations", body)
            times.append((time.perf_counter() - started) * 1000)
        times.sort()
        print(f"model: {args.model}; server up after {startup:.1f} s; answer: {answer['predictions'][0]}")
        print(f"one-image request: median {statistics.median(times):.1f} ms, "
              f"p95 {times[int(0.95 * len(times)) - 1]:.1f} ms over {args.requests} requests")
    finally:
        server.terminate()
        server.wait(timeout=30)


if __name__ == "__main__":
    main()
