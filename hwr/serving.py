"""Compatibility: prediction models logged before hwr had subpackages (up to commit 96b75d7)
pickled their pyfunc as ``hwr.serving.HwrPredictionModel``. Loading them in a process that has
imported today's ``hwr`` resolves that name here. New code imports :mod:`hwr.mlflow.pyfunc`."""

from hwr.mlflow.pyfunc import HwrPredictionModel

__all__ = ["HwrPredictionModel"]
