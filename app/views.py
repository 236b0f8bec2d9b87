"""The two item views: the results grid and the moodboard strip."""

from __future__ import annotations

from PySide6.QtCore import QModelIndex, QSize, Qt, Signal
from PySide6.QtGui import QKeyEvent, QPalette
from PySide6.QtWidgets import QAbstractItemView, QListView

from app.delegates import MoodboardDelegate, TileDelegate, step_weight
from app.roles import NegativeRole, WeightRole


class ResultsView(QListView):
    """A virtualised grid: uniform tiles, so only visible rows are ever measured or painted.

    List mode with wrapping, not icon mode: icon mode keeps a spatial tree of every item's
    rectangle, which stalled the GUI for 300 ms on a 100,000-image library; list mode lays
    out uniform tiles by arithmetic (``bench/gui_responsiveness.py``, library phase).
    Dragged tiles carry file URLs and a thumbnail (the model's ``mimeData``).

    Signals:
        preview_requested(QModelIndex): Space on a tile.
        open_requested(QModelIndex): Enter or double-click on a tile.
    """

    preview_requested = Signal(QModelIndex)
    open_requested = Signal(QModelIndex)

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.tile_delegate = TileDelegate(parent=self)
        self.setItemDelegate(self.tile_delegate)
        self.setViewMode(QListView.ViewMode.ListMode)
        self.setFlow(QListView.Flow.LeftToRight)
        self.setWrapping(True)
        self.setResizeMode(QListView.ResizeMode.Adjust)
        self.setMovement(QListView.Movement.Static)
        self.setUniformItemSizes(True)
        self.setLayoutMode(QListView.LayoutMode.Batched)
        self.setBatchSize(200)
        self.setSpacing(2)
        self.setMouseTracking(True)
        self.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self.setDragEnabled(True)
        self.setDragDropMode(QAbstractItemView.DragDropMode.DragOnly)
        self.setDefaultDropAction(Qt.DropAction.CopyAction)
        self.setVerticalScrollMode(QAbstractItemView.ScrollMode.ScrollPerPixel)
        self.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        self.setFrameShape(QListView.Shape.NoFrame)
        self.doubleClicked.connect(self.open_requested)
        self.set_tile_size(160)

    def set_tile_size(self, edge: int) -> None:
        self.tile_delegate.edge = edge
        caption = self.tile_delegate.caption_height_for(self.font())
        self.setGridSize(QSize(edge + 16, edge + 16 + caption))
        self.verticalScrollBar().setSingleStep(max(20, edge // 4))
        self.scheduleDelayedItemsLayout()

    def keyPressEvent(self, event: QKeyEvent) -> None:
        index = self.currentIndex()
        if event.key() == Qt.Key.Key_Space and index.isValid():
            self.preview_requested.emit(index)
            return
        if event.key() in (Qt.Key.Key_Return, Qt.Key.Key_Enter) and index.isValid():
            self.open_requested.emit(index)
            return
        super().keyPressEvent(event)


class MoodboardStrip(QListView):
    """A horizontal strip of moodboard cards; keyboard: Delete removes, N flips the sign, +/- weight.

    A card dragged along the strip moves there (an internal move: ``QAbstractItemView`` ignores
    other drags, so images from elsewhere reach the window's drop handling as before).
    """

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.setItemDelegate(MoodboardDelegate(self))
        self.setViewMode(QListView.ViewMode.ListMode)
        self.setFlow(QListView.Flow.LeftToRight)
        self.setWrapping(False)
        self.setUniformItemSizes(True)
        self.setMouseTracking(True)
        self.setHorizontalScrollMode(QAbstractItemView.ScrollMode.ScrollPerPixel)
        self.setVerticalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        self.setFrameShape(QListView.Shape.NoFrame)
        self.viewport().setBackgroundRole(QPalette.ColorRole.Window)
        self.setSpacing(2)
        # Cards are reordered by drag; anything else dropped here goes on to the window's query area.
        self.setDragDropMode(QAbstractItemView.DragDropMode.InternalMove)
        self.setDefaultDropAction(Qt.DropAction.MoveAction)
        self.setDropIndicatorShown(True)
        height = MoodboardDelegate.CARD + MoodboardDelegate.BAR + 12 + 8
        self.setFixedHeight(height + self.horizontalScrollBar().sizeHint().height())

    def keyPressEvent(self, event: QKeyEvent) -> None:
        index = self.currentIndex()
        model = self.model()
        if index.isValid() and model is not None:
            key = event.key()
            if key in (Qt.Key.Key_Delete, Qt.Key.Key_Backspace):
                model.remove(index.row())
                return
            if key == Qt.Key.Key_N:
                model.setData(index, not index.data(NegativeRole), NegativeRole)
                return
            if key in (Qt.Key.Key_Plus, Qt.Key.Key_Equal, Qt.Key.Key_Minus):
                direction = -1 if key == Qt.Key.Key_Minus else 1
                model.setData(index, step_weight(index.data(WeightRole), direction), WeightRole)
                return
        super().keyPressEvent(event)
