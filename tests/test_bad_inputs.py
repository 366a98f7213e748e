"""The bad-input catalogue: each case goes through the entry point a user would use (``train``'s
data, ``predict``'s data, the served model, a run) and must end in a clear error or a counted,
reported skip: never a stack trace from inside TensorFlow, never a silent skip, never a lost run.
"""

from __future__ import annotations

# --- training and predict data ---

# --- serving ---

# --- runs: NaN loss, tracking server down ---
