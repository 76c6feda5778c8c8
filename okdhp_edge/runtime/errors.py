"""Errors the runtime raises instead of letting a backend crash deep inside native code.

Every message names the file or argument at fault and says how to fix it.
"""

from __future__ import annotations

__all__ = ["BackendUnavailableError", "FetchError", "InputError", "ModelFileError"]


class ModelFileError(ValueError):
    """A model file that is missing, truncated, foreign, or whose metadata disagrees with it."""


class FetchError(ModelFileError):
    """A model fetched on first use (MediaPipe's) that is not cached and cannot be had from here
    (no package index, no pip, or a file the wheel does not ship): tests skip on this, and only this."""


class InputError(ValueError):
    """An image or box array that `Predictor.predict` cannot use."""


class BackendUnavailableError(RuntimeError):
    """The backend a model needs is not installed or cannot run on this machine."""
