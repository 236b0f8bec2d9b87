"""The moodboard: the query images, each with a weight and a positive/negative sign.

The model is the one source of truth for the current query; the strip widget
only draws it and edits it through ``setData`` (and reorders it by drag, through
``moveRows``), and the window searches again and saves the board whenever the
model says it changed (``changed``).
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from typing import Any

from PySide6.QtCore import QAbstractListModel, QModelIndex, QPersistentModelIndex, Qt, Signal

from app.roles import ImageIdRole, NegativeRole, PathRole, WeightRole
from app.thumbnails import ThumbnailProvider

Index = QModelIndex | QPersistentModelIndex
MIN_WEIGHT, MAX_WEIGHT = 0.1, 5.0


@dataclass
class MoodboardEntry:
    path: str
    weight: float = 1.0
    negative: bool = False
    image_id: int | None = None  # known when the entry came from a result: search can reuse its vector

    def to_dict(self) -> dict:
        return {k: v for k, v in asdict(self).items() if k != "image_id"}

    @classmethod
    def from_dict(cls, d: dict) -> "MoodboardEntry":
        return cls(path=str(d["path"]), weight=clamp_weight(d.get("weight", 1.0)),
                   negative=bool(d.get("negative", False)))


def clamp_weight(value: Any) -> float:
    try:
        return min(MAX_WEIGHT, max(MIN_WEIGHT, float(value)))
    except (TypeError, ValueError):
        return 1.0


class MoodboardModel(QAbstractListModel):
    """Signals:
        changed(): entries were added, removed or edited; the query must be rerun.
    """

    changed = Signal()

    def __init__(self, thumbnails: ThumbnailProvider, parent=None) -> None:
        super().__init__(parent)
        self.thumbnails = thumbnails
        self._entries: list[MoodboardEntry] = []
        thumbnails.ready.connect(self._thumbnail_ready)

    def entries(self) -> list[MoodboardEntry]:
        return list(self._entries)

    def set_entries(self, entries: list[MoodboardEntry]) -> None:
        self.beginResetModel()
        self._entries = list(entries)
        self.endResetModel()
        self.changed.emit()

    def add(self, entries: list[MoodboardEntry]) -> int:
        """Append entries whose path is not on the board yet; returns how many were added."""
        have = {e.path for e in self._entries}
        new = []
        for e in entries:
            if e.path not in have:
                have.add(e.path)
                new.append(e)
        if new:
            first = len(self._entries)
            self.beginInsertRows(QModelIndex(), first, first + len(new) - 1)
            self._entries.extend(new)
            self.endInsertRows()
            self.changed.emit()
        return len(new)

    def remove(self, row: int) -> None:
        if 0 <= row < len(self._entries):
            self.beginRemoveRows(QModelIndex(), row, row)
            del self._entries[row]
            self.endRemoveRows()
            self.changed.emit()

    def clear(self) -> None:
        if self._entries:
            self.set_entries([])

    def rowCount(self, parent: Index = QModelIndex()) -> int:
        return 0 if parent.isValid() else len(self._entries)

    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid() or not 0 <= index.row() < len(self._entries):
            return None
        e = self._entries[index.row()]
        if role == Qt.ItemDataRole.DisplayRole:
            return os.path.basename(e.path)
        if role == Qt.ItemDataRole.DecorationRole:
            return self.thumbnails.pixmap(e.path)
        if role == Qt.ItemDataRole.ToolTipRole:
            sign = "less like this" if e.negative else "more like this"
            return f"{e.path}\nweight {e.weight:.1f} · {sign}"
        if role == PathRole:
            return e.path
        if role == WeightRole:
            return e.weight
        if role == NegativeRole:
            return e.negative
        if role == ImageIdRole:
            return e.image_id
        return None

    def setData(self, index: Index, value: Any, role: int = Qt.ItemDataRole.EditRole) -> bool:
        if not index.isValid() or not 0 <= index.row() < len(self._entries):
            return False
        e = self._entries[index.row()]
        if role == WeightRole:
            new = clamp_weight(value)
            if new == e.weight:
                return False
            e.weight = new
        elif role == NegativeRole:
            if bool(value) == e.negative:
                return False
            e.negative = bool(value)
        else:
            return False
        self.dataChanged.emit(index, index, [role, Qt.ItemDataRole.ToolTipRole])
        self.changed.emit()
        return True

    def flags(self, index: Index) -> Qt.ItemFlag:
        if not index.isValid():
            return Qt.ItemFlag.ItemIsDropEnabled  # cards dropped between cards move there
        return (Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsSelectable | Qt.ItemFlag.ItemIsEditable
                | Qt.ItemFlag.ItemIsDragEnabled)

    def supportedDropActions(self) -> Qt.DropAction:
        return Qt.DropAction.MoveAction

    def supportedDragActions(self) -> Qt.DropAction:
        return Qt.DropAction.MoveAction

    def moveRows(self, sourceParent: Index, sourceRow: int, count: int, destinationParent: Index,
                 destinationChild: int) -> bool:
        """Move ``count`` cards from ``sourceRow`` to before ``destinationChild`` (the strip's drag and drop)."""
        n = len(self._entries)
        if (sourceParent.isValid() or destinationParent.isValid() or count < 1 or sourceRow < 0
                or sourceRow + count > n or not 0 <= destinationChild <= n
                or sourceRow <= destinationChild <= sourceRow + count):
            return False
        self.beginMoveRows(QModelIndex(), sourceRow, sourceRow + count - 1, QModelIndex(), destinationChild)
        moved = self._entries[sourceRow:sourceRow + count]
        del self._entries[sourceRow:sourceRow + count]
        at = destinationChild - count if destinationChild > sourceRow else destinationChild
        self._entries[at:at] = moved
        self.endMoveRows()
        self.changed.emit()
        return True

    def roleNames(self) -> dict:
        names = super().roleNames()
        names.update({PathRole: b"path", WeightRole: b"weight", NegativeRole: b"negative"})
        return names

    def _thumbnail_ready(self, path: str) -> None:
        for row, e in enumerate(self._entries):
            if e.path == path:
                index = self.index(row)
                self.dataChanged.emit(index, index, [Qt.ItemDataRole.DecorationRole])
