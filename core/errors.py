"""Exception types the engine raises; the CLI and GUI turn them into one-line messages."""

from __future__ import annotations

from pathlib import Path


class AladinError(Exception):
    """A known, user-facing problem (bad input, environment); not a bug."""


class ImageError(AladinError):
    """One image could not be used. Carries the path and a short reason."""

    def __init__(self, path: str | Path, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = str(path)
        self.reason = reason


class ModelFileError(AladinError):
    """A model file is missing, damaged, or not an ALADIN model file."""


class NoTrainedModelError(AladinError):
    """No trained model is installed and none was named."""


class DeviceError(AladinError):
    """The requested compute device is not available."""
