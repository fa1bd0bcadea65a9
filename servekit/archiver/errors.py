"""The archiver's one error type."""

from __future__ import annotations


class ModelArchiverError(Exception):
    """An archive cannot be built. The message is one line that says what to fix."""
