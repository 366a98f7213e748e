"""hwr: handwriting text recognition (CRNN + CTC) as an MLflow Project.

Modules, one concern each (see README "Architecture"): ``config``, ``charset``, ``data``,
``preprocess``, ``pipeline``, ``model``, ``decode``, ``metrics``, ``fit``, ``train``,
``tracking``, ``serving``.
"""

__version__ = "0.1.0"
