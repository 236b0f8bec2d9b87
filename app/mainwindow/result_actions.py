"""What can be done with a result: its context menu, "more like this", the large preview.

The window makes one :class:`ResultActions` per grid, for the results and for the
library page, so a library image has the same menu, keys and preview as a result.

The preview decodes in a worker and shows a placeholder meanwhile; the arrow
keys step through the results without closing it.
"""

from __future__ import annotations

import os

from PySide6.QtCore import QModelIndex, QObject, QPoint, QThreadPool
from PySide6.QtWidgets import QMenu, QWidget

from app.dialogs import PreviewDialog, read_preview
from app.mainwindow.desktop import Desktop
from app.mainwindow.moodboard_controller import MoodboardController
from app.moodboard_model import MoodboardEntry
from app.results_model import ResultsModel
from app.roles import ImageIdRole, PathRole, ScoreRole
from app.views import ResultsView
from app.workers import run_in_thread

PREVIEW_EDGE = 1600


class ResultActions(QObject):
    """A grid's actions on one image or the selection (``results`` is the grid's model).

    Attributes:
        preview: the preview dialog, made the first time it is asked for.
    """

    def __init__(self, view: ResultsView, results: ResultsModel, boards: MoodboardController, desktop: Desktop,
                 pool: QThreadPool, window: QWidget) -> None:
        super().__init__(window)
        self.view = view
        self.results = results
        self.boards = boards
        self.desktop = desktop
        self.pool = pool
        self.window = window
        self.preview: PreviewDialog | None = None
        view.customContextMenuRequested.connect(self._menu)
        view.open_requested.connect(lambda index: desktop.open_path(index.data(PathRole)))
        view.preview_requested.connect(self.show_preview)

    def selected_paths(self) -> list[str]:
        rows = sorted(i.row() for i in self.view.selectionModel().selectedIndexes())
        if not rows and self.view.currentIndex().isValid():
            rows = [self.view.currentIndex().row()]
        return [self.results.result(r).path for r in rows]

    def _paths_for(self, index: QModelIndex) -> list[str]:
        """The selection when ``index`` is part of it, else just ``index``."""
        return self.selected_paths() if self.view.selectionModel().isSelected(index) else [index.data(PathRole)]

    def for_index(self, index: QModelIndex) -> list[tuple[str | None, object]]:
        """The context actions for a result, in menu order ((None, None) = separator)."""
        path = index.data(PathRole)
        return [
            ("More Like This", lambda: self.more_like_this(index)),
            ("Add to Moodboard", lambda: self.add_to_moodboard(index)),
            (None, None),
            ("Open", lambda: self.desktop.open_path(path)),
            ("Show in Folder", lambda: self.desktop.reveal(path)),
            (None, None),
            ("Copy Path", lambda: self.desktop.copy_paths(self._paths_for(index))),
            ("Copy Image", lambda: self.desktop.copy_image(path)),
        ]

    def _menu(self, pos: QPoint) -> None:
        index = self.view.indexAt(pos)
        if not index.isValid():
            return
        menu = QMenu(self.window)
        for text, slot in self.for_index(index):
            if text is None:
                menu.addSeparator()
            else:
                menu.addAction(text, slot)
        menu.popup(self.view.viewport().mapToGlobal(pos))

    def more_like_this(self, index: QModelIndex) -> None:
        """Replace the moodboard with this result; its stored vector answers without decoding."""
        if not index.isValid():
            return
        self.boards.start([MoodboardEntry(index.data(PathRole), image_id=index.data(ImageIdRole))])
        self.view.scrollToTop()

    def add_to_moodboard(self, index: QModelIndex) -> None:
        paths = self._paths_for(index)
        ids = self.results.image_ids(paths)
        self.boards.model.add([MoodboardEntry(p, image_id=ids.get(p)) for p in paths])

    def show_preview(self, index: QModelIndex) -> None:
        if self.preview is None:
            self.preview = PreviewDialog(self.window)
            self.preview.step.connect(self._step)
            self.preview.resize(960, 760)
        self._load_preview(index)
        self.preview.show()
        self.preview.raise_()
        self.preview.activateWindow()

    def _load_preview(self, index: QModelIndex) -> None:
        path = index.data(PathRole)
        self.preview.setWindowTitle(os.path.basename(path))
        score = index.data(ScoreRole)
        self.preview.set_loading(path, path if score is None else f"{path} · score {score:.3f}")
        run_in_thread(read_preview, path, PREVIEW_EDGE, pool=self.pool, context=self,
                      returned=lambda image, p=path: self.preview.set_image(p, image),
                      errored=lambda exc, p=path: self.preview.set_error(p, str(exc)))

    def _step(self, step: int) -> None:
        row = self.view.currentIndex().row() + step
        if 0 <= row < self.results.rowCount():
            index = self.results.index(row)
            self.view.setCurrentIndex(index)
            self._load_preview(index)
