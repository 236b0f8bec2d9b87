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


class LibraryError(AladinError):
    """The library folder or its database cannot be used (damaged, newer schema, not writable)."""


class LibraryBusyError(LibraryError):
    """Another process is writing to this library (the writer lock, or SQLite's own lock): try again later."""


class LibraryDamagedError(LibraryError):
    """The library database has unreadable pages, or was emptied; ``aladin repair`` recovers what is readable."""


class LibraryReadOnlyError(LibraryError):
    """The library can be searched but not changed: its folder or database file is read-only."""


class ModelMismatchError(LibraryError):
    """The library was built with a different model than the one offered.

    ``updated``: both models carry one name, so the file changed under that name (a new version of the
    bundled default, a replaced file) rather than the user choosing another model; the app says which.
    ``keeps_vectors``: the offered model makes the library's stored raw vectors too (it only re-weights or
    whitens them), so switching to it re-embeds nothing.
    """

    def __init__(self, message: str, updated: bool = False, keeps_vectors: bool = False) -> None:
        super().__init__(message)
        self.updated = updated
        self.keeps_vectors = keeps_vectors


class QueryError(AladinError):
    """A search request cannot be answered as asked (no usable query image, unknown moodboard)."""
