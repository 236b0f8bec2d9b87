"""The Duplicates page's tree: one row per group of copies, its files as children.

Columns: the file (thumbnail and name; the group's summary on a group row), its folder, its
size and its pixel dimensions. A thumbnail is asked of the :class:`app.thumbnails.ThumbnailProvider` only
when the view paints the row, and only that row changes when it arrives.
"""

from __future__ import annotations

import os
from typing import Any

from PySide6.QtCore import QAbstractItemModel, QLocale, QModelIndex, QPersistentModelIndex, Qt

from app.roles import ImageIdRole, PathRole, ThumbFailedRole
from app.thumbnails import ThumbnailProvider

Index = QModelIndex | QPersistentModelIndex

COLUMNS = ("File", "Folder", "Size", "Dimensions")
# internalId of a group row; a file row's is its group's row + 1.
GROUP = 0


def dimensions(width: int | None, height: int | None) -> str:
    return f"{width} × {height}" if width and height else "unknown"


def group_title(group) -> str:
    kind = "identical files" if group.exact else "copies of one picture"
    return f"{len(group.files)} {kind}"


class DuplicatesModel(QAbstractItemModel):
    """Groups are ``core.duplicates.DuplicateGroup`` objects; their files ``DuplicateFile``."""

    def __init__(self, thumbnails: ThumbnailProvider, parent=None) -> None:
        super().__init__(parent)
        self.thumbnails = thumbnails
        self._groups: list[Any] = []
        self._where: dict[str, tuple[int, int]] = {}
        thumbnails.ready.connect(self._thumbnail_ready)

    # -- contents ----------------------------------------------------------------------------------
    def set_groups(self, groups: list[Any]) -> None:
        self.beginResetModel()
        self._groups = [g for g in groups if len(g.files) > 1]
        self._reindex()
        self.endResetModel()

    def groups(self) -> list[Any]:
        return list(self._groups)

    def remove_paths(self, paths: set[str]) -> None:
        """The files at ``paths`` are gone: they leave their groups, and a group of one file leaves too."""
        if not paths & set(self._where):
            return
        kept = [type(g)(tuple(f for f in g.files if f.path not in paths), g.exact) for g in self._groups]
        self.set_groups(kept)

    def file_at(self, index: Index):
        """The ``DuplicateFile`` of a file row, or None for a group row."""
        if not index.isValid() or index.internalId() == GROUP:
            return None
        return self._groups[index.internalId() - 1].files[index.row()]

    def _reindex(self) -> None:
        self._where = {f.path: (g, r) for g, group in enumerate(self._groups) for r, f in enumerate(group.files)}

    def _thumbnail_ready(self, path: str) -> None:
        where = self._where.get(path)
        if where is not None:
            index = self.index(where[1], 0, self.index(where[0], 0))
            self.dataChanged.emit(index, index, [Qt.ItemDataRole.DecorationRole])

    # -- QAbstractItemModel --------------------------------------------------------------------------
    def index(self, row: int, column: int, parent: Index = QModelIndex()) -> QModelIndex:
        if not self.hasIndex(row, column, parent):
            return QModelIndex()
        if not parent.isValid():
            return self.createIndex(row, column, GROUP)
        return self.createIndex(row, column, parent.row() + 1)

    def parent(self, index: Index = QModelIndex()) -> QModelIndex:  # type: ignore[override]
        if not index.isValid() or index.internalId() == GROUP:
            return QModelIndex()
        return self.createIndex(index.internalId() - 1, 0, GROUP)

    def rowCount(self, parent: Index = QModelIndex()) -> int:
        if not parent.isValid():
            return len(self._groups)
        if parent.internalId() == GROUP and parent.column() == 0:
            return len(self._groups[parent.row()].files)
        return 0

    def columnCount(self, parent: Index = QModelIndex()) -> int:
        return len(COLUMNS)

    def headerData(self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        horizontal = orientation == Qt.Orientation.Horizontal
        if horizontal and role == Qt.ItemDataRole.DisplayRole and 0 <= section < len(COLUMNS):
            return COLUMNS[section]
        return None

    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid():
            return None
        if index.internalId() == GROUP:
            return self._group_data(self._groups[index.row()], index.column(), role)
        return self._file_data(self.file_at(index), index.column(), role)

    def _group_data(self, group, column: int, role: int) -> Any:
        if role == Qt.ItemDataRole.DisplayRole:
            if column == 0:
                return group_title(group)
            if column == 2:
                return QLocale().formattedDataSize(sum(f.size for f in group.files))
        return None

    def _file_data(self, f, column: int, role: int) -> Any:
        if role == Qt.ItemDataRole.DisplayRole:
            return (os.path.basename(f.path), os.path.dirname(f.path), QLocale().formattedDataSize(f.size),
                    dimensions(f.width, f.height))[column]
        if role == Qt.ItemDataRole.DecorationRole and column == 0:
            return self.thumbnails.pixmap(f.path)
        if role == Qt.ItemDataRole.ToolTipRole:
            return f.path
        if role == Qt.ItemDataRole.TextAlignmentRole and column > 1:
            return int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        if role == PathRole:
            return f.path
        if role == ImageIdRole:
            return f.image_id
        if role == ThumbFailedRole:
            return self.thumbnails.failure(f.path)
        return None

    def flags(self, index: Index) -> Qt.ItemFlag:
        if not index.isValid():
            return Qt.ItemFlag.NoItemFlags
        return Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsSelectable
