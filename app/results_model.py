"""The results grid's model: search results in rank order, thumbnails on demand.

``data(DecorationRole)`` is the only place a thumbnail is requested, and the
view only asks for rows it paints, so a search with thousands of results costs
thumbnails for one screenful. When a thumbnail arrives, only its rows change.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from PySide6.QtCore import QAbstractListModel, QMimeData, QModelIndex, QPersistentModelIndex, Qt, QUrl

from app.roles import ImageIdRole, PathRole, RankRole, ScoreRole, ThumbFailedRole
from app.thumbnails import ThumbnailProvider

Index = QModelIndex | QPersistentModelIndex


class ResultsModel(QAbstractListModel):
    """Rows are ``core.search.SearchResult`` objects (path, score, rank, image_id)."""

    def __init__(self, thumbnails: ThumbnailProvider, parent=None) -> None:
        super().__init__(parent)
        self.thumbnails = thumbnails
        self._rows: list[Any] = []
        self._by_path: dict[str, list[int]] = {}
        thumbnails.ready.connect(self._thumbnail_ready)

    def set_results(self, results: Sequence[Any]) -> None:
        self.beginResetModel()
        self._rows = list(results)
        self._by_path = {}
        for row, result in enumerate(self._rows):
            self._by_path.setdefault(result.path, []).append(row)
        self.endResetModel()

    def result(self, row: int) -> Any:
        return self._rows[row]

    def results(self) -> list[Any]:
        return list(self._rows)

    def image_ids(self, paths: list[str]) -> dict[str, int]:
        """Image ids of those ``paths`` that are results here (dragged back in), so search can reuse vectors."""
        return {p: self._rows[self._by_path[p][0]].image_id for p in paths if p in self._by_path}

    def rowCount(self, parent: Index = QModelIndex()) -> int:
        return 0 if parent.isValid() else len(self._rows)

    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid() or not 0 <= index.row() < len(self._rows):
            return None
        r = self._rows[index.row()]
        if role == Qt.ItemDataRole.DisplayRole:
            return os.path.basename(r.path)
        if role == Qt.ItemDataRole.DecorationRole:
            return self.thumbnails.pixmap(r.path)
        if role == Qt.ItemDataRole.ToolTipRole:
            return f"{r.path}\nscore {r.score:.3f} · rank {r.rank + 1}"
        if role == PathRole:
            return r.path
        if role == ScoreRole:
            return float(r.score)
        if role == RankRole:
            return int(r.rank)
        if role == ImageIdRole:
            return r.image_id
        if role == ThumbFailedRole:
            return self.thumbnails.failure(r.path)
        return None

    def flags(self, index: Index) -> Qt.ItemFlag:
        if not index.isValid():
            return Qt.ItemFlag.NoItemFlags
        return Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsSelectable | Qt.ItemFlag.ItemIsDragEnabled

    def mimeTypes(self) -> list[str]:
        return ["text/uri-list", "text/plain"]

    def mimeData(self, indexes: Sequence[QModelIndex]) -> QMimeData:
        """Dragged results are file URLs, which file managers, browsers and editors accept."""
        paths = [self._rows[i.row()].path for i in sorted(indexes, key=lambda i: i.row()) if i.isValid()]
        mime = QMimeData()
        mime.setUrls([QUrl.fromLocalFile(p) for p in paths])
        mime.setText("\n".join(paths))
        return mime

    def supportedDragActions(self) -> Qt.DropAction:
        return Qt.DropAction.CopyAction

    def _thumbnail_ready(self, path: str) -> None:
        for row in self._by_path.get(path, ()):
            index = self.index(row)
            self.dataChanged.emit(index, index, [Qt.ItemDataRole.DecorationRole])
