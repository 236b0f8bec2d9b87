"""Known trainer problems; the CLI turns them into one line on stderr."""

from __future__ import annotations

from core.errors import AladinError


class DataError(AladinError):
    """A manifest, data folder or data-set import is missing, malformed or too small."""


class CheckpointError(AladinError):
    """A checkpoint is missing, damaged, or does not match the run that loads it."""
