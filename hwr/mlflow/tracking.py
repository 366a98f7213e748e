"""Talking to the tracking server: bounded retries, and one clear line when it does not answer.

MLflow retries a failing HTTP request 7 times with a doubling back-off by default, so a verb started
against a server that is down would wait minutes before a traceback. :func:`connect` bounds the
retries (unless the user set them), checks that the tracking store answers within
:data:`PROBE_SECONDS`, and raises :class:`~hwr.errors.TrackingUnavailable` naming the URI if not.
Transient failures during a run are still retried: :data:`HTTP_RETRIES` (5 retries, back-off factor 1:
1 + 2 + 4 + 8 + 16 s, each request timing out after 60 s).
"""

from __future__ import annotations

import os
import threading

import mlflow

from hwr.errors import TrackingUnavailable

PROBE_SECONDS = 10.0
HTTP_RETRIES = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "5", "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
                "MLFLOW_HTTP_REQUEST_TIMEOUT": "60"}


def bound_retries() -> None:
    """Set :data:`HTTP_RETRIES` in the environment where the user has not set them."""
    for name, value in HTTP_RETRIES.items():
        os.environ.setdefault(name, value)


def check_tracking(seconds: float = PROBE_SECONDS) -> None:
    """Ask the tracking store for one experiment, giving up after ``seconds``.

    Raises:
        TrackingUnavailable: no answer in time, or an error (the URI and the first line of the error named).
    """
    uri = mlflow.get_tracking_uri()
    outcome: dict[str, BaseException | None] = {}

    def probe() -> None:
        try:
            mlflow.MlflowClient(uri).search_experiments(max_results=1)
            outcome["error"] = None
        except BaseException as exc:  # any failure to answer is reported as one line below
            outcome["error"] = exc

    thread = threading.Thread(target=probe, daemon=True, name="hwr-tracking-probe")
    thread.start()
    thread.join(seconds)
    hint = "start it, or point MLFLOW_TRACKING_URI at one that runs"
    if "error" not in outcome:
        raise TrackingUnavailable(f"tracking server {uri} did not answer within {seconds:g} s; {hint}")
    if outcome["error"] is not None:
        reason = (str(outcome["error"]).strip().splitlines() or [type(outcome["error"]).__name__])[0][:300]
        raise TrackingUnavailable(f"tracking server {uri} cannot be used ({reason}); {hint}")


def connect(new_run: bool = True) -> None:
    """What every verb does first: bounded retries, the tracking store checked, and, for a verb
    that opens a new run (``new_run``; not a resume, which reopens a run where it is), the default
    experiment (:func:`hwr.mlflow.runs.use_default_experiment`) selected.

    Raises:
        TrackingUnavailable: the tracking store does not answer.
    """
    from hwr.mlflow.runs import use_default_experiment

    bound_retries()
    check_tracking()
    if new_run:
        use_default_experiment()
