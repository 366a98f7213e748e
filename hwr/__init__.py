"""hwr: handwriting text recognition (CRNN + CTC) as an MLflow Project.

Layers, each a subpackage importing only those before it (README "Architecture"; a test checks):
``errors``, ``config`` -> ``data`` -> ``evaluation`` -> ``model`` -> ``mlflow`` ->
``training`` / ``prediction`` -> ``tuning`` -> ``cli`` (the entry points' plumbing).
"""

__version__ = "0.2.0"
