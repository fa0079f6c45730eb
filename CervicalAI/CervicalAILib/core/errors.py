"""Exceptions the engine raises for problems a user can act on.

The CLI prints these as one clear line (no traceback) and exits with status 2; anything else
is a bug and keeps its traceback.
"""

from __future__ import annotations

from pathlib import Path


class CervicalAIError(Exception):
    """Base class for errors caused by input, configuration or data, not by a bug."""


class InputError(CervicalAIError):
    """Bad input: names the file or value and says what is wrong with it."""

    def __init__(self, message: str, path: str | Path | None = None):
        self.path = Path(path) if path is not None else None
        self.message = message  # without the path
        super().__init__(f"{path}: {message}" if path is not None else message)


class BundleError(CervicalAIError):
    """A model bundle that cannot be trusted: unknown schema, missing file or hash mismatch."""


class OutputExistsError(CervicalAIError):
    """Refusal to overwrite something a user made (exports, corrected segmentations)."""
