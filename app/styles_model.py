"""The Styles page's list model: one row per style cluster, with its size and representative thumbnails.

Rows are ``core.clusters.StyleCluster`` objects. Thumbnails are asked for only
from ``data(PixmapsRole)``, which the delegate reads for rows it paints, so a
library of a hundred styles loads the thumbnails of one screenful; when one
arrives, only the rows that show it change.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from PySide6.QtCore import QAbstractListModel, QModelIndex, QPersistentModelIndex, Qt

from app.thumbnails import ThumbnailProvider

Index = QModelIndex | QPersistentModelIndex

# Roles of this model only, kept clear of app.roles' shared ones.
_BASE = Qt.ItemDataRole.UserRole + 100
SizeRole = _BASE + 1
RepresentativesRole = _BASE + 2
PixmapsRole = _BASE + 3
CohesionRole = _BASE + 4
ClusterIdRole = _BASE + 5


class StylesModel(QAbstractListModel):
    """A read-only list of style clusters, largest first."""

    def __init__(self, thumbnails: ThumbnailProvider, parent=None) -> None:
        super().__init__(parent)
        self.thumbnails = thumbnails
        self._rows: list[Any] = []
        self._by_path: dict[str, list[int]] = {}
        thumbnails.ready.connect(self._thumbnail_ready)

    def set_clusters(self, clusters: Sequence[Any]) -> None:
        self.beginResetModel()
        self._rows = list(clusters)
        self._by_path = {}
        for row, cluster in enumerate(self._rows):
            for path in cluster.representatives:
                self._by_path.setdefault(path, []).append(row)
        self.endResetModel()

    def cluster(self, row: int) -> Any:
        return self._rows[row]

    def rowCount(self, parent: Index = QModelIndex()) -> int:
        return 0 if parent.isValid() else len(self._rows)

    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid() or not 0 <= index.row() < len(self._rows):
            return None
        c = self._rows[index.row()]
        if role == Qt.ItemDataRole.DisplayRole:
            return f"{c.title} · {c.size:,} images"
        if role == Qt.ItemDataRole.ToolTipRole:
            return f"{c.title}: {c.size:,} images, cohesion {c.cohesion:.2f}\n" + "\n".join(c.representatives)
        if role == SizeRole:
            return c.size
        if role == CohesionRole:
            return c.cohesion
        if role == ClusterIdRole:
            return c.id
        if role == RepresentativesRole:
            return list(c.representatives)
        if role == PixmapsRole:
            return [self.thumbnails.pixmap(path) for path in c.representatives]
        return None

    def flags(self, index: Index) -> Qt.ItemFlag:
        if not index.isValid():
            return Qt.ItemFlag.NoItemFlags
        return Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsSelectable

    def _thumbnail_ready(self, path: str) -> None:
        for row in self._by_path.get(path, ()):
            index = self.index(row)
            self.dataChanged.emit(index, index, [PixmapsRole])
