"""The library's folders, counts and indexing runs, as the window shows them.

Counts, roots and unreadable files are read by the engine in a worker and
arrive by signal; the Folders menu and the root filter are filled from the
latest status, never from a query of their own. While indexing runs, the status
is read again every ``STATUS_EVERY_S`` seconds.
"""

from __future__ import annotations

import time

from PySide6.QtCore import QObject, Signal
from PySide6.QtWidgets import QFileDialog, QMenu, QMessageBox, QWidget

from app.dialogs import FailuresDialog
from app.engine import Engine
from app.mainwindow.actions import MainActions
from app.mainwindow.desktop import Desktop
from app.mainwindow.widgets import MainWidgets
from app.options import Settings

STATUS_EVERY_S = 2.0


class LibraryController(QObject):
    """Adds, rescans and removes folders; shows counts, indexing progress and unreadable files.

    Attributes:
        roots: the library's folders, from the latest status.
        failures: the unreadable files (``core.library.Failure``), from the latest status.
        open_error: why the library could not be opened; None while it is open (or opening).

    Signals:
        changed(): counts, folders or indexing state changed; the window re-picks its page.
        error(str): something to show in the banner.
    """

    changed = Signal()
    error = Signal(str)

    def __init__(self, engine: Engine, settings: Settings, ui: MainWidgets, act: MainActions, desktop: Desktop,
                 window: QWidget) -> None:
        super().__init__(window)
        self.engine = engine
        self.settings = settings
        self.ui = ui
        self.act = act
        self.desktop = desktop
        self.window = window
        self.roots: list[str] = []
        self.failures: list = []
        self.open_error: str | None = None
        self.failures_dialog: FailuresDialog | None = None
        self._status_at = 0.0
        panel = ui.index_panel
        panel.cancel_clicked.connect(self.cancel_indexing)
        panel.resume_clicked.connect(self.rescan)
        panel.failures_clicked.connect(self.show_failures)
        ui.folders_menu.aboutToShow.connect(self._menu_opening)
        engine.library_ready.connect(self.refresh)
        engine.library_failed.connect(self._open_failed)
        engine.library_changed.connect(self.refresh)
        engine.status_read.connect(self._status_read)
        engine.failures_read.connect(self._failures_read)
        engine.index_started.connect(lambda folders: panel.set_running())
        engine.index_progress.connect(panel.set_progress)
        engine.index_progress.connect(self._refresh_while_indexing)
        engine.index_finished.connect(self._index_finished)
        engine.index_failed.connect(self._index_failed)

    def refresh(self) -> None:
        """Ask for counts, roots and unreadable files; they arrive by signal."""
        self.engine.read_status()

    def _open_failed(self, message: str) -> None:
        self.open_error = message
        self.error.emit(f"The library cannot be opened: {message}")
        self.changed.emit()

    def _status_read(self, status) -> None:
        ui = self.ui
        roots = [root.path for root in status.roots]
        ui.filters.set_roots(status.roots, ui.filters.root() or self.settings.get("filter_root"))
        n = len(roots)
        text = (f"{status.indexed:,} images indexed in {n} folder{'s' * (n != 1)}" if n
                else "The library is empty")
        if status.pending > 0 and not self.engine.indexing:
            text += f" · {status.pending:,} not indexed yet"
        ui.library_label.setText(text)
        ui.index_panel.set_failures(status.failed)
        if (not self.engine.indexing and status.pending > 0 and self.engine.ready
                and ui.index_panel.resume.isHidden()):
            ui.index_panel.set_paused(f"{status.pending:,} images are waiting to be indexed.")
        if roots != self.roots:
            self.roots = roots
            if ui.folders_menu.isVisible():
                self.fill_menu()
        self.changed.emit()

    def _failures_read(self, failures: list) -> None:
        self.failures = failures
        self.ui.index_panel.set_failures(len(failures))
        if self.failures_dialog is not None:
            self.failures_dialog.set_failures(failures)

    # -- indexing ---------------------------------------------------------------------------
    def choose_folder(self) -> None:
        folder = QFileDialog.getExistingDirectory(self.window, "Add an art folder")
        if folder:
            self.add_folders([folder])

    def add_folders(self, folders: list[str]) -> None:
        if not self.engine.ready:
            self.error.emit("A model is needed to index images. Choose one in Settings first.")
            return
        self.engine.index(folders)
        self.changed.emit()

    def rescan(self) -> None:
        if self.engine.ready:
            self.engine.index(None)

    def cancel_indexing(self) -> None:
        self.engine.cancel_index()
        self.ui.index_panel.set_cancelling()

    def _refresh_while_indexing(self, _progress) -> None:
        now = time.monotonic()
        if now - self._status_at > STATUS_EVERY_S:
            self._status_at = now
            self.refresh()

    def _index_finished(self, summary, cancelled: bool) -> None:
        panel = self.ui.index_panel
        if cancelled:
            panel.set_paused("Indexing paused. Everything indexed so far is kept and searchable.")
        else:
            parts = []
            if summary is not None:
                for label, n in (("added", summary.added), ("updated", summary.updated), ("moved", summary.moved),
                                 ("removed", summary.removed), ("unreadable", summary.failed)):
                    if n:
                        parts.append(f"{n:,} {label}")
                if getattr(summary, "missing_roots", None):
                    parts.append(f"{len(summary.missing_roots)} folder(s) missing")
            panel.set_idle("Library up to date" + (": " + ", ".join(parts) if parts else "."))
        self.refresh()

    def _index_failed(self, message: str) -> None:
        self.ui.index_panel.set_paused("Indexing stopped.")
        if message:
            self.error.emit(message)
        self.changed.emit()

    def show_failures(self) -> None:
        if self.failures_dialog is None:
            self.failures_dialog = FailuresDialog(self.window)
            self.failures_dialog.retry_requested.connect(self.rescan)
        self.failures_dialog.set_failures(self.failures)
        self.refresh()
        self.failures_dialog.show()
        self.failures_dialog.raise_()

    # -- folders -------------------------------------------------------------------------------
    def _menu_opening(self) -> None:
        """Show the folders last read at once; a fresh status refills the open menu when they changed."""
        self.fill_menu()
        self.refresh()

    def fill_menu(self) -> None:
        menu = self.ui.folders_menu
        for sub in menu.findChildren(QMenu):  # clear() keeps sub-menus alive
            sub.deleteLater()
        menu.clear()
        menu.addAction(self.act.add)
        menu.addAction(self.act.rescan)
        menu.addAction(self.act.failures)
        menu.addSeparator()
        if not self.roots:
            menu.addAction("No folders yet").setEnabled(False)
        for root in self.roots:
            sub = menu.addMenu(root)
            sub.addAction("Search Only Here", lambda r=root: self.ui.filters.choose_root(r))
            sub.addAction("Show in File Manager", lambda r=root: self.desktop.open_path(r))
            remove = sub.addAction("Remove From Library…", lambda r=root: self.prompt_remove_folder(r))
            remove.setEnabled(not self.engine.indexing)

    def prompt_remove_folder(self, root: str) -> None:
        answer = QMessageBox.question(self.window, "Remove Folder", f"Remove “{root}” from the library? Its images "
                                      "leave the index; the files themselves are not touched.")
        if answer == QMessageBox.StandardButton.Yes:
            self.remove_folder(root)

    def remove_folder(self, root: str) -> None:
        """Forget a root and its vectors (the engine refuses while indexing runs)."""
        self.engine.remove_root(root)
