"""The project's error vocabulary: every error hwr raises on purpose derives from :class:`HwrError`.

The command-line entry points catch :class:`HwrError` and print its message as one line
(``error: ...``, exit status 2) instead of a stack trace, so every message names the parameter,
file, row or field at fault and what was wrong. Imports nothing: every layer may use it.
"""

from __future__ import annotations


class HwrError(Exception):
    """Base class of the errors a user can fix; the message says what and where."""


class ConfigError(HwrError, ValueError):
    """A parameter (or a search-space file, or a base model) the project cannot use; the message
    names the parameter."""


class BadInputError(HwrError, ValueError):
    """A labels CSV, a row or an image the project cannot use; the message says which and why."""


class ImageDecodeError(HwrError, ValueError):
    """The bytes are not a decodable PNG/JPEG image."""


class InvalidImageError(HwrError, ValueError):
    """A row of a prediction request holds no decodable image; the message names the row."""


class LexiconError(HwrError, ValueError):
    """The lexicon file is missing, unreadable or empty; the message names the file."""


class TrialFailed(HwrError, RuntimeError):
    """A ``tune`` trial trained but its result is unusable (non-finite loss or metric)."""


class TrainingDiverged(HwrError, RuntimeError):
    """The training loss became NaN or infinite; the message names the epoch, the batch and the
    learning rate, and how to resume from the last good checkpoint."""


class TrackingUnavailable(HwrError, ConnectionError):
    """The MLflow tracking server (or database) does not answer; the message names its URI."""


class ModelsNotLogged(HwrError, RuntimeError):
    """The trained models could not be logged to MLflow; they were saved to a local folder that the
    message names, with the command that logs them later."""


class TooManyUnreadable(HwrError, RuntimeError):
    """``predict`` found more unreadable images than ``max_unreadable`` allows; the message gives the
    count and the most common reason."""
