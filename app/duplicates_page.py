"""The Duplicates page: groups of files that show the same picture, and moving the spare ones to the trash.

The search (:func:`core.duplicates.find_duplicates`) runs through
:meth:`app.engine.Engine.library_job` when the user asks for it (Find Duplicates): on a large
library it reads many files, so it never starts by itself. Files can be opened, shown in their
folder, or moved to the system trash; never deleted for good, and never without a confirmation
that lists them. Trashing runs in a worker too, then the trashed images leave the library, so
search and the other views stop showing them at once.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path

from PySide6.QtCore import QFile, QModelIndex, QPoint, QSize, Qt
from PySide6.QtWidgets import (QAbstractItemView, QHBoxLayout, QHeaderView, QLabel, QMenu, QMessageBox, QPushButton,
                               QTreeView, QVBoxLayout, QWidget)

from app.duplicates_model import DuplicatesModel
from app.engine import Engine
from app.thumbnails import ThumbnailProvider
from core.errors import LibraryError

ICON_EDGE = 48
# The confirmation names this many files in its text; every one is in its details.
LISTED = 12


def find_in_library(library, searcher, embedder, cancel):
    """Runs in a worker: the library's duplicate groups; exact copies only while no model is loaded."""
    from core.duplicates import find_duplicates
    from core.search import Searcher

    index = None
    if embedder is not None and library.model_record() is not None:
        index = (searcher or Searcher(library, embedder)).cache.current()
    return find_duplicates(library, index, cancel=cancel)


@dataclass
class TrashOutcome:
    """What moving files to the trash did: ``unavailable`` when there is no trash (nothing was moved)."""

    trashed: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    unavailable: bool = False
    forgotten: int = 0
    library_note: str | None = None


def trash_files(library, files: list[tuple[int, str]]) -> TrashOutcome:
    """Runs in a worker: move each ``(image id, path)`` to the system trash, then forget the trashed images.

    When the first file that exists cannot be trashed, the platform has no usable trash (or none for that
    drive): nothing is moved, and no later file is tried. A file that fails later is reported and kept.

    Raises:
        LibraryReadOnlyError: the library cannot be changed; nothing is moved.
    """
    library.check_writable()
    outcome = TrashOutcome()
    ids = []
    for image_id, path in files:
        if QFile(path).moveToTrash():
            outcome.trashed.append(path)
            ids.append(image_id)
        elif not outcome.trashed and Path(path).exists():
            outcome.unavailable = True
            return outcome
        else:
            outcome.failed.append(path)
    if ids:
        try:
            outcome.forgotten = library.forget_images(ids)
        except LibraryError as exc:  # busy indexing: its rescan forgets them instead
            outcome.library_note = str(exc)
    return outcome


def confirm_trash(parent: QWidget, paths: list[str]) -> bool:
    """Ask before trashing; the question lists the files (all of them under Show Details)."""
    box = QMessageBox(QMessageBox.Icon.Question, "Move to Trash",
                      f"Move {len(paths)} file{'s' if len(paths) != 1 else ''} to the trash?",
                      QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No, parent)
    shown = "\n".join(paths[:LISTED]) + (f"\n… and {len(paths) - LISTED} more" if len(paths) > LISTED else "")
    box.setInformativeText(f"{shown}\n\nThey can be restored from the trash; they also leave the library.")
    box.setDetailedText("\n".join(paths))
    box.setDefaultButton(QMessageBox.StandardButton.No)
    return box.exec() == QMessageBox.StandardButton.Yes


def trash_unavailable(parent: QWidget, message: str) -> None:
    QMessageBox.warning(parent, "Move to Trash", message)


class DuplicatesPage(QWidget):
    """Find Duplicates, the groups found, and actions on the selected files.

    Args:
        engine: runs the search and the trashing off the GUI thread.
        thumbs: the window's thumbnail provider.
        desktop: opens files and shows them in their folder (``app.mainwindow.desktop.Desktop``).
    """

    def __init__(self, engine: Engine, thumbs: ThumbnailProvider, desktop, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.engine = engine
        self.desktop = desktop
        self.searching = False
        self.trashing = False
        self._cancel: threading.Event | None = None

        self.find_button = QPushButton("Find Duplicates", self)
        self.find_button.setToolTip("Look for exact copies, and for resized, re-encoded, slightly cropped or "
                                    "rotated copies of the same picture")
        self.status = QLabel("Find copies of the same picture in the library.", self)
        self.status.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.status.setWordWrap(True)
        top = QHBoxLayout()
        top.addWidget(self.find_button)
        top.addWidget(self.status, 1)

        self.model = DuplicatesModel(thumbs, self)
        self.tree = QTreeView(self)
        self.tree.setModel(self.model)
        self.tree.setIconSize(QSize(ICON_EDGE, ICON_EDGE))
        self.tree.setUniformRowHeights(False)
        self.tree.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self.tree.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.tree.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        header = self.tree.header()
        header.setStretchLastSection(False)
        header.setSectionResizeMode(1, QHeaderView.ResizeMode.Stretch)  # the folder takes the room left
        self.tree.setColumnWidth(0, 320)

        self.open_button = QPushButton("Open", self)
        self.reveal_button = QPushButton("Show in Folder", self)
        self.trash_button = QPushButton("Move to Trash…", self)
        self.trash_button.setToolTip("Move the selected files to the system trash (you are asked first)")
        actions = QHBoxLayout()
        actions.addStretch(1)
        for button in (self.open_button, self.reveal_button, self.trash_button):
            actions.addWidget(button)

        layout = QVBoxLayout(self)
        layout.addLayout(top)
        layout.addWidget(self.tree, 1)
        layout.addLayout(actions)

        self.find_button.clicked.connect(self.refresh)
        self.open_button.clicked.connect(lambda: self._each_selected(desktop.open_path))
        self.reveal_button.clicked.connect(lambda: self._each_selected(desktop.reveal))
        self.trash_button.clicked.connect(lambda: self.move_to_trash())
        self.tree.doubleClicked.connect(self._activated)
        self.tree.customContextMenuRequested.connect(self._menu)
        self.tree.selectionModel().selectionChanged.connect(lambda *_: self._update_buttons())
        engine.failed.connect(self._job_failed)
        engine.library_changed.connect(self._library_changed)
        self._changing = False
        self._update_buttons()

    # -- finding -------------------------------------------------------------------------------------
    def refresh(self) -> None:
        """Search the library again; a search already running is cancelled and overtaken."""
        if not self.engine.library_open:
            self.status.setText("The library is not open yet.")
            return
        if self._cancel is not None:
            self._cancel.set()
        cancel = self._cancel = threading.Event()
        self.searching = True
        self.status.setText("Looking for duplicates…" if self.engine.has_model else
                            "Looking for identical files (similar copies need the model, which is not loaded)…")
        self._update_buttons()
        self.engine.library_job(find_in_library, self.engine.searcher, self.engine.embedder, cancel.is_set,
                                returned=lambda report, c=cancel: self._found(c, report))

    def _found(self, cancel: threading.Event, report) -> None:
        if cancel is not self._cancel:
            return  # overtaken by a newer search
        self._cancel = None
        self.searching = False
        if report is not None:
            self.model.set_groups(report.groups)
            self.tree.expandAll()
            self.status.setText(self._summary(report))
        self._update_buttons()

    @staticmethod
    def _summary(report) -> str:
        files = sum(len(g.files) for g in report.groups)
        found = (f"{len(report.groups)} group{'s' if len(report.groups) != 1 else ''} of duplicates, {files} files."
                 if report.groups else "No duplicates found.")
        skipped = f" {len(report.skipped)} unreadable files were skipped." if report.skipped else ""
        return found + skipped

    def _job_failed(self, _message: str) -> None:
        """A library job failed (the window shows the message): whichever of ours was running has ended."""
        if self.searching or self.trashing:
            self.searching = self.trashing = False  # a search's answer, if it still comes, is shown all the same
            self.status.setText("The last request failed.")
            self._update_buttons()

    def _library_changed(self) -> None:
        """Indexing or another view changed the library: the groups shown may be out of date."""
        if self.model.rowCount() and not self._changing and not self.searching:
            self.status.setText("The library has changed since this search; Refresh to look again.")

    # -- actions -------------------------------------------------------------------------------------
    def selected_files(self) -> list:
        """The ``DuplicateFile`` of each selected file row (group rows are not files)."""
        rows = self.tree.selectionModel().selectedRows(0)
        return [f for f in (self.model.file_at(i) for i in rows) if f is not None]

    def _each_selected(self, action) -> None:
        for f in self.selected_files():
            action(f.path)

    def _activated(self, index: QModelIndex) -> None:
        f = self.model.file_at(index.siblingAtColumn(0))
        if f is not None:
            self.desktop.open_path(f.path)

    def move_to_trash(self, files: list | None = None) -> None:
        """Ask, then move ``files`` (default: the selected ones) to the system trash."""
        files = self.selected_files() if files is None else files
        if not files or self.trashing:
            return
        if not confirm_trash(self, [f.path for f in files]):
            return
        self.trashing = True
        self._update_buttons()
        self.status.setText(f"Moving {len(files)} files to the trash…")
        self.engine.library_job(trash_files, [(f.image_id, f.path) for f in files], returned=self._trashed)

    def _trashed(self, outcome: TrashOutcome) -> None:
        self.trashing = False
        if outcome.unavailable:
            message = ("There is no trash for these files here (the system or this drive offers none), so "
                       "nothing was moved. Delete them in your file manager if you are sure.")
            self.status.setText(message)
            trash_unavailable(self, message)
        else:
            self.model.remove_paths(set(outcome.trashed))
            parts = [f"Moved {len(outcome.trashed)} files to the trash."]
            if outcome.failed:
                parts.append(f"{len(outcome.failed)} could not be moved: {', '.join(outcome.failed)}.")
            if outcome.library_note:
                parts.append(f"They stay in the library until its next rescan ({outcome.library_note}).")
            self.status.setText(" ".join(parts))
            if outcome.forgotten:
                self._changing = True  # the list already follows this change
                self.engine.library_changed.emit()
                self._changing = False
        self._update_buttons()

    def _menu(self, pos: QPoint) -> None:
        if not self.selected_files():
            return
        menu = QMenu(self)
        menu.addAction("Open", lambda: self._each_selected(self.desktop.open_path))
        menu.addAction("Show in Folder", lambda: self._each_selected(self.desktop.reveal))
        menu.addSeparator()
        menu.addAction("Move to Trash…", lambda: self.move_to_trash())
        menu.popup(self.tree.viewport().mapToGlobal(pos))

    def _update_buttons(self) -> None:
        chosen = bool(self.selected_files())
        self.find_button.setText("Refresh" if self.model.rowCount() else "Find Duplicates")
        self.open_button.setEnabled(chosen)
        self.reveal_button.setEnabled(chosen)
        self.trash_button.setEnabled(chosen and not self.trashing and not self.searching)
