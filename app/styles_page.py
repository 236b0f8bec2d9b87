"""The Styles page: the library grouped into style clusters, each a row of its most central images.

Clustering (:mod:`core.clusters`) runs through :meth:`app.engine.Engine.library_job`,
never on the GUI thread. It is asked for when the page shows and again after the
library changed (then images added since join their nearest style, which is
quick); the number of styles and Recompute ask for a new run. Only the answer to
the newest request is shown, and a run that a newer request overtakes is
cancelled. Opening a style lists its images ranked by closeness to its centre,
in the results grid (:class:`app.views.ResultsView`).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

from PySide6.QtCore import QModelIndex, QPoint, QRect, QSize, Qt, QTimer, Signal
from PySide6.QtGui import QFontMetrics, QPainter, QPalette
from PySide6.QtWidgets import (QAbstractItemView, QHBoxLayout, QInputDialog, QLabel, QListView, QMenu, QPushButton,
                               QSpinBox, QSplitter, QStyledItemDelegate, QStyleOptionViewItem, QVBoxLayout,
                               QWidget)

from app.delegates import begin_tile, draw_thumbnail
from app.engine import Engine
from app.moodboard_model import MoodboardEntry
from app.results_model import ResultsModel
from app.roles import PathRole
from app.styles_model import PixmapsRole, StylesModel
from app.thumbnails import ThumbnailProvider
from app.views import ResultsView
from core.errors import AladinError

# The spin box's "Auto": the number of styles follows the library's size (core.clusters.default_k).
AUTO = 0
MAX_STYLES = 500
# Waits for the spin box to settle before asking for a run: each value typed would start one.
K_SETTLE_MS = 400
# A saved moodboard takes the style's most central images: its query is their mean, which these
# already fix, and a board of thousands of cards could not be edited.
MOODBOARD_IMAGES = 24


@dataclass
class StylesAnswer:
    """A clustering job's answer: the clusters and the object that can list their members, or why not."""

    clusters: Any = None
    styles: Any = None
    message: str | None = None


def compute_styles(library, embedder, k: int | None, recompute: bool, cancel) -> StylesAnswer | None:
    """Runs in a worker: the library's style clusters with its model; None when ``cancel`` stopped it.

    A library with nothing to cluster yet, or of another model, is an answer with its message, not a failure.
    """
    from core.clusters import StyleClusters
    from core.search import Searcher

    try:
        clusters = StyleClusters.for_searcher(Searcher(library, embedder))
        styles = (clusters.recompute if recompute else clusters.current)(k, cancel)
    except AladinError as exc:
        return StylesAnswer(message=str(exc))
    return None if styles is None else StylesAnswer(clusters, styles)


def style_members(library, clusters, cluster) -> list:
    """Runs in a worker: a style's images as ranked ``SearchResult`` rows."""
    return clusters.members(cluster)


class StyleDelegate(QStyledItemDelegate):
    """A style row: its name and size above a strip of its representative thumbnails."""

    EDGE = 88
    WIDTH = 6 * (EDGE + 4) + 16

    def sizeHint(self, option: QStyleOptionViewItem, index: QModelIndex) -> QSize:
        return QSize(self.WIDTH, self.EDGE + QFontMetrics(option.font).height() + 20)

    def paint(self, painter: QPainter, option: QStyleOptionViewItem, index: QModelIndex) -> None:
        pal = option.palette
        cell = begin_tile(painter, option)[0]
        line = QFontMetrics(option.font).height()
        painter.setPen(pal.color(QPalette.ColorRole.Text))
        painter.drawText(QRect(cell.left() + 6, cell.top() + 3, cell.width() - 12, line),
                         Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter,
                         index.data(Qt.ItemDataRole.DisplayRole) or "")
        left, top = cell.left() + 4, cell.top() + line + 8
        for pixmap in index.data(PixmapsRole) or []:
            if left + self.EDGE > cell.right():
                break
            draw_thumbnail(painter, QRect(left, top, self.EDGE, self.EDGE), pixmap, pal)
            left += self.EDGE + 4
        painter.restore()


class StylesPage(QWidget):
    """The library by style: a list of styles beside the images of the one opened.

    Signals:
        add_to_moodboard(list): image paths to add to the moodboard.
        more_like_this(str): search for images like this one.
    """

    add_to_moodboard = Signal(list)
    more_like_this = Signal(str)

    def __init__(self, engine: Engine, thumbs: ThumbnailProvider, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.engine = engine
        self.thumbs = thumbs
        self.clusters = None
        self.styles = None
        self.stale = True
        self.computing = False
        self._asked = 0
        self._cancel: threading.Event | None = None
        self._members_asked = 0
        self.opened = None

        self.count = QSpinBox(self)
        self.count.setRange(AUTO, MAX_STYLES)
        self.count.setSpecialValueText("Auto")
        self.count.setToolTip("How many styles to group the library into (Auto follows the library's size)")
        self.recompute_button = QPushButton("Recompute", self)
        self.recompute_button.setToolTip("Group the whole library again (images added since a run join the "
                                         "nearest style until then)")
        self.status = QLabel(self)
        self.status.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        top = QHBoxLayout()
        top.addWidget(QLabel("Styles:", self))
        top.addWidget(self.count)
        top.addWidget(self.recompute_button)
        top.addWidget(self.status, 1)

        self.model = StylesModel(thumbs, self)
        self.list = QListView(self)
        self.list.setModel(self.model)
        self.list.setItemDelegate(StyleDelegate(self.list))
        self.list.setUniformItemSizes(True)
        self.list.setMouseTracking(True)
        self.list.setVerticalScrollMode(QAbstractItemView.ScrollMode.ScrollPerPixel)
        self.list.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.list.setMinimumWidth(StyleDelegate.WIDTH + self.list.verticalScrollBar().sizeHint().width() + 8)
        self.list.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)

        self.title = QLabel(self)
        self.add_button = QPushButton("Add to Moodboard", self)
        self.add_button.setToolTip("Add the selected images, or the style's most central ones, to the moodboard")
        self.save_button = QPushButton("Save as Moodboard…", self)
        self.save_button.setToolTip(f"Save the style's {MOODBOARD_IMAGES} most central images as a moodboard")
        self.members = ResultsModel(thumbs, self)
        self.grid = ResultsView(self)
        self.grid.setModel(self.members)
        head = QHBoxLayout()
        head.addWidget(self.title, 1)
        head.addWidget(self.add_button)
        head.addWidget(self.save_button)
        detail = QWidget(self)
        column = QVBoxLayout(detail)
        column.setContentsMargins(0, 0, 0, 0)
        column.addLayout(head)
        column.addWidget(self.grid, 1)

        split = QSplitter(Qt.Orientation.Horizontal, self)
        split.addWidget(self.list)
        split.addWidget(detail)
        split.setStretchFactor(1, 1)
        layout = QVBoxLayout(self)
        layout.addLayout(top)
        layout.addWidget(split, 1)

        self.settle = QTimer(self, singleShot=True, interval=K_SETTLE_MS)
        self.settle.timeout.connect(lambda: self.refresh())
        self.count.valueChanged.connect(lambda _value: self.settle.start())
        self.recompute_button.clicked.connect(lambda: self.refresh(recompute=True))
        self.list.selectionModel().currentChanged.connect(lambda index, _old: self.open_style(index.row()))
        self.add_button.clicked.connect(self._add_chosen)
        self.save_button.clicked.connect(lambda: self.save_as_moodboard())
        self.grid.open_requested.connect(lambda index: self.more_like_this.emit(index.data(PathRole)))
        self.grid.customContextMenuRequested.connect(self._member_menu)
        for signal in (engine.library_ready, engine.library_changed, engine.model_ready):
            signal.connect(self._library_changed)
        self._show_opened()

    # -- clustering ------------------------------------------------------------------
    @property
    def k(self) -> int | None:
        """The number of styles asked for; None follows the library's size."""
        return None if self.count.value() == AUTO else self.count.value()

    def refresh(self, recompute: bool = False) -> None:
        """Ask for the styles (a new run when ``recompute``); later, when the page is hidden now."""
        if not self.isVisible() and not recompute:
            self.stale = True
            return
        self.stale = False
        if not self.engine.library_open or not self.engine.has_model:
            self.status.setText("Styles appear once the library and the model are ready.")
            return
        if self._cancel is not None:
            self._cancel.set()  # the run in flight is overtaken: stop it at its next step
        self._asked += 1
        serial, cancel = self._asked, threading.Event()
        self._cancel = cancel
        self.computing = True
        self.recompute_button.setEnabled(False)
        self.status.setText("Grouping the library by style…")
        self.engine.library_job(compute_styles, self.engine.embedder, self.k, recompute, cancel.is_set,
                                returned=lambda answer: self._styles_arrived(serial, answer))

    def _styles_arrived(self, serial: int, answer: StylesAnswer | None) -> None:
        if serial != self._asked:
            return  # a newer request is on its way
        self.computing = False
        self._cancel = None
        self.recompute_button.setEnabled(True)
        if answer is None:
            return
        if answer.message is not None:
            self.clusters = self.styles = None
            self.model.set_clusters([])
            self.status.setText(answer.message)
            self._open(None)
            return
        opened = self.opened.id if self.opened is not None else None
        self.clusters, self.styles = answer.clusters, answer.styles
        self.model.set_clusters(self.styles.clusters)
        self.status.setText(self._summary())
        rows = [row for row, c in enumerate(self.styles.clusters) if c.id == opened]
        row = rows[0] if rows else 0 if self.styles.clusters else -1
        if row >= 0:
            self.list.setCurrentIndex(self.model.index(row))
            self.open_style(row)
        else:
            self._open(None)

    def _summary(self) -> str:
        s = self.styles
        text = f"{len(s.clusters)} styles in {s.count:,} images"
        if s.requested_k is None:
            text += " (number chosen for the library's size)"
        if s.assigned:
            text += f" · {s.assigned:,} changed since they were grouped: Recompute to regroup"
        return text

    def _library_changed(self, *_args) -> None:
        self.refresh()

    def showEvent(self, event) -> None:
        super().showEvent(event)
        if self.stale:
            self.refresh()

    # -- one style ----------------------------------------------------------------------
    def open_style(self, row: int) -> None:
        """Show the images of the style in ``row``, ranked by closeness to its centre (read in a worker)."""
        if self.styles is None or not 0 <= row < self.model.rowCount():
            return
        cluster = self.model.cluster(row)
        if cluster is self.opened:
            return
        self._open(cluster)
        self._members_asked += 1
        serial = self._members_asked
        self.engine.library_job(style_members, self.clusters, cluster,
                                returned=lambda results: self._members_arrived(serial, results))

    def _open(self, cluster) -> None:
        self.opened = cluster
        self.members.set_results([])
        self._show_opened()

    def _members_arrived(self, serial: int, results: list) -> None:
        if serial == self._members_asked:
            self.members.set_results(results)

    def _show_opened(self) -> None:
        c = self.opened
        self.title.setText(f"{c.title}: {c.size:,} images, closest to its centre first" if c else "")
        self.add_button.setEnabled(c is not None)
        self.save_button.setEnabled(c is not None)

    def chosen_paths(self) -> list[str]:
        """The selected images of the opened style, else its most central ones."""
        rows = sorted(i.row() for i in self.grid.selectionModel().selectedIndexes())
        if rows:
            return [self.members.result(r).path for r in rows]
        return [r.path for r in self.members.results()[:MOODBOARD_IMAGES]]

    def _add_chosen(self) -> None:
        paths = self.chosen_paths()
        if paths:
            self.add_to_moodboard.emit(paths)

    def save_as_moodboard(self, name: str | None = None) -> None:
        """Save the opened style's most central images as a moodboard (asks for a name when none is given)."""
        if self.opened is None or not self.members.rowCount():
            return
        if name is None:
            name, ok = QInputDialog.getText(self, "Save as Moodboard", "Name:", text=self.opened.title)
            if not ok:
                return
        entries = [MoodboardEntry(r.path, image_id=r.image_id) for r in self.members.results()[:MOODBOARD_IMAGES]]
        self.engine.save_moodboard(name, entries)

    def _member_menu(self, pos: QPoint) -> None:
        index = self.grid.indexAt(pos)
        if not index.isValid():
            return
        menu = QMenu(self)
        menu.addAction("More Like This", lambda: self.more_like_this.emit(index.data(PathRole)))
        menu.addAction("Add to Moodboard", self._add_chosen)
        menu.exec(self.grid.viewport().mapToGlobal(pos))
