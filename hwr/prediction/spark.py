"""``predict -P backend=spark``: the same transcription as :func:`hwr.prediction.predict.transcribe_table`,
run by ``mlflow.pyfunc.spark_udf`` on a Spark cluster.

The images are read and checked here, chunk by chunk (:func:`hwr.data.sources.read_chunks`), so
an unreadable file is reported per row exactly as locally; the readable ones go to the executors
as base64 strings in a Spark DataFrame, where each executor loads the registered prediction model
once (MLflow ships it from the driver) and transcribes its partitions.
"""

from __future__ import annotations

import time

import numpy as np
import pandas as pd

from hwr.data.sources import read_chunks
from hwr.mlflow.spark import spark_session

RESULT_TYPE = "text string, confidence double"  # the pyfunc's output columns, as a Spark struct


def transcribe_on_spark(table: pd.DataFrame, models: list, params: dict, batch_size: int,
                        master: str) -> dict[str, pd.DataFrame]:
    """Transcribe ``table``'s images with every model on ``master``.

    Args:
        table: the image table (:func:`hwr.data.sources.image_table`).
        models: :class:`hwr.prediction.models.LoadedModel` (their ``uri`` is what the executors load;
            ``seconds`` gets the wall time of each model's Spark job).
        params: the pyfunc's ``decoder`` and ``beam_width``.
        batch_size: images read and checked per chunk here.
        master: Spark master URL.

    Returns:
        One table per model label: ``table`` with ``error`` filled in and ``prediction`` /
        ``confidence`` added (empty / NaN for unreadable rows), rows in ``table``'s order.
    """
    import mlflow
    from pyspark.sql import functions as F

    chunks = list(read_chunks(table, batch_size))
    rows = pd.concat([c.rows for c in chunks], ignore_index=True)
    encoded = [e for c in chunks for e in c.encoded]
    ok = (rows["error"] == "").to_numpy()
    if not encoded:
        return {m.label: rows.assign(prediction="", confidence=np.nan) for m in models}
    session = spark_session(master, "hwr-predict")
    try:
        images = session.createDataFrame(pd.DataFrame({"i": np.arange(len(encoded)), "image": encoded}))
        out = {}
        for m in models:
            udf = mlflow.pyfunc.spark_udf(session, m.uri, result_type=RESULT_TYPE, env_manager="local",
                                          params=params)
            started = time.perf_counter()
            got = (images.select("i", udf(F.struct("image")).alias("p"))
                   .select("i", "p.text", "p.confidence").toPandas().sort_values("i"))
            m.seconds += time.perf_counter() - started
            frame = rows.assign(prediction="", confidence=np.nan)
            frame.loc[ok, "prediction"] = got["text"].to_numpy()
            frame.loc[ok, "confidence"] = got["confidence"].to_numpy()
            out[m.label] = frame
        return out
    finally:
        session.stop()
