"""Spark sessions for the verbs that spread work over a cluster: ``tune`` (Hyperopt's
``SparkTrials``) and ``predict`` (``mlflow.pyfunc.spark_udf``).

The master is a URL: ``local[N]`` (threads in this process), ``spark://host:7077`` (a standalone
cluster such as ``make spark`` starts). Executors get this process's Python (``PYSPARK_PYTHON``),
the ``hwr`` package (a zip added with ``addPyFile``) and the environment variables that reach the
team server and the object store (:data:`FORWARDED_ENV`), since a standalone worker's processes
inherit the worker daemon's environment, not the driver's.
"""

from __future__ import annotations

import os
import sys
import tempfile
import zipfile
from pathlib import Path

from hwr.errors import ConfigError
from hwr.mlflow.packaging import PACKAGE, REQUIREMENTS_FILE, project_pins

FORWARDED_ENV = (
    "MLFLOW_TRACKING_URI", "MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD", "MLFLOW_TRACKING_TOKEN",
    "MLFLOW_S3_ENDPOINT_URL", "AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY",
    "AWS_DEFAULT_REGION", "HWR_S3_CACHE",
)


def master_url(master: str, fallback: str) -> str:
    """The master to use: ``master``, else ``$SPARK_MASTER``, else ``fallback`` (e.g. ``local[2]``)."""
    return master.strip() or os.environ.get("SPARK_MASTER") or fallback


def spark_session(master: str, app_name: str):
    """A new (or the running) SparkSession on ``master`` with the package shipped and
    :data:`FORWARDED_ENV` set on the executors. Stop it with ``session.stop()``.

    Raises:
        ConfigError: pyspark is not installed (``make venv-spark``).
    """
    try:
        from pyspark.sql import SparkSession
    except ImportError as exc:
        raise ConfigError("backend=spark needs pyspark: make venv-spark "
                          "(pip install -r requirements-spark.txt)") from exc
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    builder = SparkSession.builder.master(master).appName(app_name).config("spark.ui.enabled", "false")
    for name in FORWARDED_ENV:
        if os.environ.get(name):
            builder = builder.config(f"spark.executorEnv.{name}", os.environ[name])
    session = builder.getOrCreate()
    ship_package(session)
    return session


def ship_package(session) -> str:
    """Put the ``hwr`` package on every Spark executor's import path: a zip of it (with the pins
    of ``requirements.txt`` at its root, for the models the trials log), added with
    ``SparkContext.addPyFile``, so tasks run on workers where hwr is not installed. Returns the zip."""
    archive = Path(tempfile.mkdtemp(prefix="hwr-spark-")) / "hwr.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as bundle:
        for path in sorted(PACKAGE.rglob("*.py")):
            bundle.write(path, path.relative_to(PACKAGE.parent))
        bundle.writestr(REQUIREMENTS_FILE.name, "\n".join(project_pins().values()) + "\n")
    session.sparkContext.addPyFile(str(archive))
    return str(archive)
