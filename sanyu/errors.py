"""Errors a user can act on: each names the input and the reason."""

from __future__ import annotations


class SanyuError(Exception):
    """Base class for errors Sanyu reports to users."""


class AudioError(SanyuError):
    """An input that cannot be turned into audio samples."""

    def __init__(self, path: str, reason: str):
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")


class ModelError(SanyuError):
    """A model that cannot be found, fetched or verified."""


class DecodeCancelled(AudioError):
    """A decode stopped because its caller cancelled it (client gone, deadline): not a fault of
    the input."""
