"""The ``predict`` verb: batch transcription of a folder with registered prediction models, the
predictions CSV, metrics and the evaluation report, logged to MLflow."""
