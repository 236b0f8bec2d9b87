"""The library page shown while the moodboard is empty: a folder tree beside the image grid.

The folder tree lists "All folders" first, then each library folder (root) with
the folders inside it, each with its count of indexed images; a root whose folder
cannot be reached (an unplugged drive, a network share that is down) is labelled
offline, and its images stay listed. Above the grid: a filter by file name and the
sort order. The pane only presents; :mod:`app.mainwindow.library_browser` reads
the store and fills it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtGui import QPalette, QShowEvent
from PySide6.QtWidgets import (QComboBox, QHBoxLayout, QHeaderView, QLabel, QLineEdit, QSplitter, QTreeWidget,
                               QTreeWidgetItem, QVBoxLayout, QWidget)

from app.views import ResultsView

SORTS = (("Name", "name"), ("Date Modified", "modified"), ("Size", "size"))  # core.library.BROWSE_SORTS
FILTER_DELAY_MS = 200  # typing in the name filter reads the library once the user pauses
FolderRole = Qt.ItemDataRole.UserRole


@dataclass
class FolderNode:
    """A folder in the tree, with the indexed images in it and in every folder below it."""

    path: str
    name: str
    images: int = 0
    offline: bool = False
    children: list["FolderNode"] = field(default_factory=list)


def folder_nodes(roots: list[str], counts: list[tuple[str, int]], offline: set[str]) -> list[FolderNode]:
    """The folder tree of ``roots`` from ``counts`` (``core.library.Library.folder_counts``); pure, so it
    runs in the worker that read the counts. A folder under nested roots belongs to the innermost one."""
    top = [FolderNode(root, root, offline=root in offline) for root in sorted(roots)]
    by_path = {node.path: node for node in top}
    by_depth = sorted(top, key=lambda node: len(node.path), reverse=True)
    for folder, images in counts:
        root = next((node for node in by_depth
                     if folder == node.path or folder.startswith(node.path.rstrip(os.sep) + os.sep)), None)
        if root is None:
            continue
        node = root
        root.images += images
        for part in os.path.relpath(folder, root.path).split(os.sep) if folder != root.path else ():
            path = os.path.join(node.path, part)
            child = by_path.get(path)
            if child is None:
                child = by_path[path] = FolderNode(path, part)
                node.children.append(child)
            child.images += images
            node = child
    for node in by_path.values():
        node.children.sort(key=lambda c: c.name.lower())
    return top


class FolderTree(QTreeWidget):
    """Folders with their image counts; the current item is the folder the grid shows (None: all).

    Signals:
        folder_chosen(): the user chose another folder.
    """

    folder_chosen = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setColumnCount(2)
        self.setHeaderHidden(True)
        self.setUniformRowHeights(True)
        self.setFrameShape(QTreeWidget.Shape.NoFrame)
        header = self.header()
        header.setStretchLastSection(False)
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        header.setSectionResizeMode(1, QHeaderView.ResizeMode.ResizeToContents)
        self._fill([])
        self.setCurrentItem(self.topLevelItem(0))  # else the view picks one when it shows, as if the user had
        self.currentItemChanged.connect(lambda *_: self.folder_chosen.emit())

    def folder(self) -> str | None:
        item = self.currentItem()
        return item.data(0, FolderRole) if item is not None else None

    def set_nodes(self, nodes: list[FolderNode]) -> None:
        """Show ``nodes``, keeping the chosen folder chosen while it is still there (else "All folders")."""
        chosen = self.folder()
        self.blockSignals(True)
        self._fill(nodes)
        found = self._find(chosen) if chosen else None
        self.setCurrentItem(found or self.topLevelItem(0))
        self.blockSignals(False)
        if chosen and found is None:
            self.folder_chosen.emit()

    def choose(self, folder: str | None) -> bool:
        item = self._find(folder) if folder else self.topLevelItem(0)
        if item is not None:
            self.setCurrentItem(item)
        return item is not None

    def _fill(self, nodes: list[FolderNode]) -> None:
        self.clear()
        total = sum(node.images for node in nodes)
        self._item(None, "All folders", total, None, "Every image in the library")
        for node in nodes:
            self._add(None, node)
        self.expandToDepth(0)

    def _add(self, parent: QTreeWidgetItem | None, node: FolderNode) -> None:
        name = (os.path.basename(node.path.rstrip(os.sep)) or node.path) if parent is None else node.name
        tip = node.path + ("\nThis folder is offline: its images stay in the library until it is back "
                           "or removed." if node.offline else "")
        item = self._item(parent, f"{name} (offline)" if node.offline else name, node.images, node.path, tip)
        if node.offline:
            item.setForeground(0, self.palette().color(QPalette.ColorGroup.Disabled, QPalette.ColorRole.Text))
        for child in node.children:
            self._add(item, child)

    def _item(self, parent: QTreeWidgetItem | None, text: str, images: int, path: str | None,
              tip: str) -> QTreeWidgetItem:
        item = QTreeWidgetItem([text, f"{images:,}"])
        item.setData(0, FolderRole, path)
        item.setToolTip(0, tip)
        item.setTextAlignment(1, Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        item.setForeground(1, self.palette().color(QPalette.ColorRole.PlaceholderText))
        if parent is None:
            self.addTopLevelItem(item)
        else:
            parent.addChild(item)
        return item

    def _find(self, folder: str) -> QTreeWidgetItem | None:
        items = [self.topLevelItem(i) for i in range(self.topLevelItemCount())]
        while items:
            item = items.pop()
            if item.data(0, FolderRole) == folder:
                return item
            items.extend(item.child(i) for i in range(item.childCount()))
        return None


class LibraryPane(QWidget):
    """Folder tree | name filter, sort and the grid of the chosen folder's images.

    Signals:
        query_changed(): the folder, sort or name filter changed; the images are read again.
        shown(): the pane became visible (a refresh put off while it was hidden can run now).
    """

    query_changed = Signal()
    shown = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.folders = FolderTree()
        self.name_edit = QLineEdit()
        self.name_edit.setPlaceholderText("Filter by file name")
        self.name_edit.setClearButtonEnabled(True)
        self.name_edit.setMinimumWidth(200)
        self.name_edit.setMaximumWidth(280)
        self.sort_combo = QComboBox()
        for text, key in SORTS:
            self.sort_combo.addItem(text, key)
        self.count_label = QLabel()
        self.count_label.setForegroundRole(QPalette.ColorRole.PlaceholderText)
        self.view = ResultsView()
        bar = QHBoxLayout()
        bar.setContentsMargins(10, 4, 10, 4)
        bar.addWidget(self.count_label, 1)
        bar.addWidget(self.name_edit)
        bar.addWidget(QLabel("Sort by"))
        bar.addWidget(self.sort_combo)
        right = QWidget()
        column = QVBoxLayout(right)
        column.setContentsMargins(0, 0, 0, 0)
        column.setSpacing(0)
        column.addLayout(bar)
        column.addWidget(self.view, 1)
        splitter = QSplitter(Qt.Orientation.Horizontal)
        splitter.addWidget(self.folders)
        splitter.addWidget(right)
        splitter.setStretchFactor(1, 1)
        splitter.setSizes([220, 900])
        splitter.setChildrenCollapsible(False)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(splitter)
        self.filter_timer = QTimer(self, singleShot=True, interval=FILTER_DELAY_MS)
        self.filter_timer.timeout.connect(self.query_changed)
        self.name_edit.textChanged.connect(lambda _text: self.filter_timer.start())
        self.sort_combo.currentIndexChanged.connect(lambda _i: self.query_changed.emit())
        self.folders.folder_chosen.connect(self.query_changed)

    def query(self) -> tuple[str | None, str, str]:
        """``(folder, sort, name_filter)`` as :meth:`core.library.Library.browse` takes them."""
        return self.folders.folder(), self.sort_combo.currentData(), self.name_edit.text().strip()

    def set_sort(self, key: str) -> None:
        self.sort_combo.setCurrentIndex(max(0, self.sort_combo.findData(key)))

    def set_count(self, shown: int) -> None:
        if shown == 0 and self.name_edit.text().strip():
            self.count_label.setText("No file names match the filter")
        else:
            self.count_label.setText(f"{shown:,} image{'s' * (shown != 1)}")

    def showEvent(self, event: QShowEvent) -> None:
        super().showEvent(event)
        self.shown.emit()
