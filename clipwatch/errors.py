"""User-facing errors: one line that names the problem, turned into a non-zero exit by the CLI.

Anything raised as a ClipwatchError is expected (bad input, a missing file, a model that does
not match its sidecar); anything else is a bug and keeps its traceback.
"""


class ClipwatchError(Exception):
    """An expected failure whose message is a single line meant for the user."""


class SourceError(ClipwatchError):
    """A frame source could not be opened or read."""


class DatasetError(ClipwatchError):
    """A dataset folder or its ground truth is missing or malformed."""


class ModelError(ClipwatchError):
    """A model file or its sidecar is missing, unreadable or inconsistent."""
