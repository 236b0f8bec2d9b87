"""The library view's model: every indexed image (``core.library.BrowseEntry``), thumbnails on demand.

It is the results grid's model with library rows instead of search results, so
the same view, delegate, drag and context actions serve both. Rows are slotted
entries (a column store, :class:`core.library.BrowseList`) read in a worker,
together with their index by path (:func:`library_page`): at 100,000 rows building
that index costs the GUI thread half a second under load. Nothing else is kept per
row, and a thumbnail is asked for only when the view paints that row.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import Qt

from app.results_model import Index, ResultsModel
from app.roles import ImageIdRole, PathRole, ThumbFailedRole

if TYPE_CHECKING:  # the store (and SQLAlchemy) loads in a worker, not while the window starts
    from core.library import BrowseList


def describe_entry(entry: Any) -> str:
    """A tile's tooltip: where the file is, its size in pixels and bytes, and when it changed."""
    pixels = f"{entry.width} × {entry.height} px · " if entry.width and entry.height else ""
    modified = time.strftime("%Y-%m-%d %H:%M", time.localtime(entry.mtime_ns / 1e9))
    return f"{entry.path}\n{pixels}{human_size(entry.size)} · modified {modified}"


def human_size(size: int) -> str:
    units = ("bytes", "KB", "MB", "GB")
    power = 0
    while power < len(units) - 1 and size >= 1024 ** (power + 1):
        power += 1
    return f"{size:,} bytes" if power == 0 else f"{size / 1024 ** power:.1f} {units[power]}"


# What a library row shares with a result; score, rank and any other result role are None here.
SHARED_ROLES = frozenset({Qt.ItemDataRole.DisplayRole, Qt.ItemDataRole.DecorationRole, PathRole, ImageIdRole,
                          ThumbFailedRole})


@dataclass(frozen=True)
class LibraryPage:
    """Rows to show and their rows by path, as :class:`ResultsModel` looks them up."""

    entries: BrowseList
    rows: dict[str, tuple[int]]


def library_page(entries: BrowseList) -> LibraryPage:
    """Made in the worker that read ``entries``; tuples of ints, which the garbage collector stops tracking."""
    return LibraryPage(entries, {path: (row,) for row, path in enumerate(entries.paths)})


class LibraryModel(ResultsModel):
    """Rows are ``core.library.BrowseEntry`` (image_id, path, size, mtime, width, height); no score or rank."""

    def entries(self) -> BrowseList | list:
        """The rows shown; they are replaced, never changed, so a worker may compare a new read with them."""
        return self._rows

    def set_page(self, page: LibraryPage) -> None:
        self.beginResetModel()
        self._rows = page.entries
        self._by_path = page.rows
        self.endResetModel()

    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if role == Qt.ItemDataRole.ToolTipRole:
            return describe_entry(self._rows[index.row()]) if self._valid(index) else None
        return super().data(index, role) if role in SHARED_ROLES else None

    def _valid(self, index: Index) -> bool:
        return index.isValid() and 0 <= index.row() < len(self._rows)
