"""The results grid's model: search results in rank order, thumbnails on demand.

``data(DecorationRole)`` is the only place a thumbnail is requested, and the
view only asks for rows it paints, so a search with thousands of results costs
thumbnails for one screenful. When a thumbnail arrives, only its rows change.
Each row's calibrated score goes to the tile's badge through ``CalibratedScoreRole``
while scores are shown (:meth:`ResultsModel.set_show_scores`, the "show_scores" option).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from PySide6.QtCore import QAbstractListModel, QMimeData, QModelIndex, QPersistentModelIndex, Qt

from app.dragging import DRAG_TYPES, file_drag_mime
from app.roles import CalibratedScoreRole, ImageIdRole, PathRole, RankRole, ScoreRole, ThumbFailedRole
from app.thumbnails import ThumbnailProvider

Index = QModelIndex | QPersistentModelIndex


class ResultsModel(QAbstractListModel):
    """Rows are ``core.search.SearchResult`` objects (path, score, rank, image_id); a row without a
    calibrated score (``percentile`` missing or None) shows no badge."""

    def __init__(self, thumbnails: ThumbnailProvider, parent=None) -> None:
        super().__init__(parent)
        self.thumbnails = thumbnails
        self._rows: list[Any] = []
        self._by_path: dict[str, list[int]] = {}
        self.show_scores = True
        thumbnails.ready.connect(self._thumbnail_ready)

    def set_show_scores(self, on: bool) -> None:
        """Show or hide the score badges; every tile repaints."""
        self.show_scores = bool(on)
        if self._rows:
            self.dataChanged.emit(self.index(0), self.index(len(self._rows) - 1), [CalibratedScoreRole])

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
            return f"{r.path}\n{score_summary(r)} · rank {r.rank}"
        if role == PathRole:
            return r.path
        if role == ScoreRole:
            return float(r.score)
        if role == CalibratedScoreRole:
            return getattr(r, "percentile", None) if self.show_scores else None
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
        return list(DRAG_TYPES)

    def mimeData(self, indexes: Sequence[QModelIndex]) -> QMimeData:
        """Dragged results are file URLs, with the first one's thumbnail as image data (:mod:`app.dragging`)."""
        paths = [self._rows[i.row()].path for i in sorted(indexes, key=lambda i: i.row()) if i.isValid()]
        pixmap = self.thumbnails.pixmap(paths[0]) if paths else None
        return file_drag_mime(paths, pixmap.toImage() if pixmap is not None else None)

    def supportedDragActions(self) -> Qt.DropAction:
        return Qt.DropAction.CopyAction

    def _thumbnail_ready(self, path: str) -> None:
        for row in self._by_path.get(path, ()):
            index = self.index(row)
            self.dataChanged.emit(index, index, [Qt.ItemDataRole.DecorationRole])


def score_summary(result: Any) -> str:
    """The raw cosine and, where there is one, what it means in this library."""
    text = f"score {result.score:.3f}"
    if getattr(result, "percentile", None) is None:
        return text
    return f"{text} · {result.label}: closer than {result.percentile:.0f} % of this library's near neighbours"
