"""The groups of a teaching session as a table: name, where the images come from, how many there are."""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import QAbstractTableModel, QModelIndex, QPersistentModelIndex, Qt, Signal

from app.teach.groups import FOLDER, MIN_IMAGES, Group, problems, unique_name

Index = QModelIndex | QPersistentModelIndex


class GroupsModel(QAbstractTableModel):
    """The groups to teach, each counted once (in a worker) after it is added.

    Signals:
        changed(): a group was added, counted or removed; what stops training may have changed.
    """

    HEADERS = ("Group", "From", "Images")
    changed = Signal()

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self._groups: list[Group] = []

    def groups(self) -> list[Group]:
        return list(self._groups)

    def add(self, kind: str, source: str, name: str) -> Group | None:
        """Add a group (its images still to be counted); None when this folder or moodboard is there already."""
        if any(g.kind == kind and g.source == source for g in self._groups):
            return None
        group = Group(unique_name(name, [g.name for g in self._groups]), kind, source)
        row = len(self._groups)
        self.beginInsertRows(QModelIndex(), row, row)
        self._groups.append(group)
        self.endInsertRows()
        self.changed.emit()
        return group

    def counted(self, group: Group, paths: list[str] | None, error: str | None = None) -> None:
        """A group's images arrived (or why there are none); a group removed meanwhile is ignored."""
        if group not in self._groups:
            return
        group.paths, group.error = (paths, None) if error is None else ([], error)
        row = self._groups.index(group)
        self.dataChanged.emit(self.index(row, 0), self.index(row, len(self.HEADERS) - 1))
        self.changed.emit()

    def remove(self, rows: list[int]) -> None:
        for row in sorted(set(rows), reverse=True):
            if 0 <= row < len(self._groups):
                self.beginRemoveRows(QModelIndex(), row, row)
                del self._groups[row]
                self.endRemoveRows()
        self.changed.emit()

    @property
    def counting(self) -> bool:
        return any(g.paths is None for g in self._groups)

    def problems(self) -> list[str]:
        return problems(self._groups)

    # -- QAbstractTableModel -----------------------------------------------------------------------
    def rowCount(self, parent: Index = QModelIndex()) -> int:
        return 0 if parent.isValid() else len(self._groups)

    def columnCount(self, parent: Index = QModelIndex()) -> int:
        return 0 if parent.isValid() else len(self.HEADERS)

    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid() or not 0 <= index.row() < len(self._groups):
            return None
        g = self._groups[index.row()]
        column = index.column()
        if role == Qt.ItemDataRole.DisplayRole:
            if column == 0:
                return g.name
            if column == 1:
                return f"Folder {g.source}" if g.kind == FOLDER else f"Moodboard “{g.source}”"
            if g.error:
                return "cannot be used"
            return "counting…" if g.paths is None else f"{len(g.paths):,}"
        if role == Qt.ItemDataRole.ToolTipRole:
            if g.error:
                return g.error
            if g.paths is not None and len(g.paths) < MIN_IMAGES:
                return f"{MIN_IMAGES} images are needed"
            return g.source
        if role == Qt.ItemDataRole.TextAlignmentRole and column == 2:
            return int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        return None

    def headerData(self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if (role == Qt.ItemDataRole.DisplayRole and orientation == Qt.Orientation.Horizontal
                and 0 <= section < len(self.HEADERS)):
            return self.HEADERS[section]
        return None
