"""Scoring transcriptions: CER/WER (``metrics``), per-sample scores, confidence intervals and
confusions (``scoring``), lexicon correction (``lexicon``), the HTML report (``report``).
Pure functions over strings, tables and image files: no model, no MLflow."""
