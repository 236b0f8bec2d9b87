"""The library's folders, counts and indexing runs, as the window shows them.

Counts, roots and unreadable files are read by the engine in a worker and
arrive by signal; the Folders menu and the root filter are filled from the
latest status, never from a query of their own. While indexing runs, the status
is read again every ``STATUS_EVERY_S`` seconds.

The roots are watched (:class:`core.watch.FolderWatcher`) unless the user paused watching: the
watcher's reports arrive on the GUI thread by a queued signal and rescan the roots that changed
(behind a running indexing run). A root that went offline is only shown as such; the indexer keeps
its images, and the watcher reports it for a rescan when it is back.
"""

from __future__ import annotations

import time

from PySide6.QtCore import QObject, Signal
from PySide6.QtWidgets import QFileDialog, QMenu, QMessageBox, QWidget

from core.paths import cache_dir
from core.watch import OFFLINE, POLLING, FolderWatcher, WatchReport, WatchTiming

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
        offline: the roots that cannot be seen now (by the latest status or the watcher).
        watcher: the folder watcher; None while watching is paused or there are no roots.
        watch_timing: the watcher's waits (tests shorten them before the first status arrives).
        failures: the unreadable files (``core.library.Failure``), from the latest status.
        open_error: why the library could not be opened; None while it is open (or opening).

    Signals:
        changed(): counts, folders or indexing state changed; the window re-picks its page.
        error(str): something to show in the banner.
    """

    changed = Signal()
    error = Signal(str)
    _reported = Signal(object)  # a WatchReport, emitted on the watcher's thread

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
        self.offline: set[str] = set()
        self.watcher: FolderWatcher | None = None
        self.watch_timing = WatchTiming()
        self._to_rescan: set[str] = set()  # reported roots waiting for a model, or for indexing to be resumed
        self._cancelled = False  # the user cancelled the last indexing run: changes wait for a resume
        self._caught_up = False  # the roots were rescanned once for what changed while the app was closed
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
        engine.model_ready.connect(lambda _state: self._rescan_reported())
        self._reported.connect(self._watched)
        act.watch_paused.setChecked(bool(settings.get("watch_paused")))
        act.watch_paused.toggled.connect(self._watch_paused_toggled)

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
        states = self.watcher.states() if self.watcher is not None else {}
        gone = {path for path, state in states.items() if state.how == OFFLINE}  # e.g. an emptied mount point
        self.offline = {root.path for root in status.roots if not root.exists or root.path in gone}
        n = len(roots)
        text = (f"{status.indexed:,} images indexed in {n} folder{'s' * (n != 1)}" if n
                else "The library is empty")
        if status.pending > 0 and not self.engine.indexing:
            text += f" · {status.pending:,} not indexed yet"
        if self.offline:
            text += f" · {len(self.offline)} offline"
        if n and self.watch_paused:
            text += " · watching paused"
        ui.library_label.setText(text)
        ui.index_panel.set_failures(status.failed)
        if (not self.engine.indexing and status.pending > 0 and self.engine.ready
                and ui.index_panel.resume.isHidden()):
            ui.index_panel.set_paused(f"{status.pending:,} images are waiting to be indexed.")
        if roots != self.roots:
            self.roots = roots
            if ui.folders_menu.isVisible():
                self.fill_menu()
        self._follow_roots()
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
            self._cancelled = False
            self._to_rescan.clear()  # every root is rescanned
            self.engine.index(None)

    # -- watching ------------------------------------------------------------------------------
    @property
    def watch_paused(self) -> bool:
        return self.act.watch_paused.isChecked()

    def set_watch_paused(self, paused: bool) -> None:
        """Pause or resume watching, as the Folders menu's Pause Watching does."""
        self.act.watch_paused.setChecked(paused)

    def _watch_paused_toggled(self, paused: bool) -> None:
        """Kept in the settings; resuming rescans every root, for what changed meanwhile."""
        self.settings.set("watch_paused", paused)
        if paused:
            self._stop_watching()
        else:
            self._follow_roots()
            self.rescan()
        self.refresh()

    def _follow_roots(self) -> None:
        """Watch the latest roots while watching is on; without roots there is no watcher (and no thread)."""
        if self.watch_paused or not self.roots or self.engine.library is None:
            self._stop_watching()
            return
        if self.watcher is None:
            self.watcher = FolderWatcher(self._reported.emit, ignore=[self.engine.library.folder, cache_dir()],
                                         timing=self.watch_timing)
            self.watcher.start()
        self.watcher.set_roots(self.roots)
        if not self._caught_up and self.settings.get("rescan_on_start"):
            self._caught_up = True  # what changed while the app was closed: one rescan as watching starts
            self._to_rescan.update(self.roots)
            self._rescan_reported()

    def _stop_watching(self) -> None:
        watcher, self.watcher = self.watcher, None
        self._to_rescan.clear()
        if watcher is not None:
            watcher.stop()

    def _watched(self, report: WatchReport) -> None:
        """A report of the watcher, on the GUI thread: rescan the roots that changed, show those gone."""
        if self.watcher is None:  # paused since it was sent
            return
        self._to_rescan.update(report.rescan)
        self._rescan_reported()
        self.refresh()

    def _rescan_reported(self) -> None:
        """Index the reported roots that are still in the library. Without a model they wait for one; after
        the user cancelled indexing they wait for a resume (a rescan of every root), so a file saved into a
        folder does not restart the work the user stopped."""
        if self._cancelled:
            return
        roots = sorted(r for r in self._to_rescan if r in self.roots)
        if not roots or self.engine.index(roots):
            self._to_rescan.clear()

    def shutdown(self) -> None:
        """Stop watching: no thread of the watcher outlives the window."""
        self._stop_watching()

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
        self._cancelled = cancelled
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
        menu.addAction(self.act.watch_paused)
        menu.addSeparator()
        if not self.roots:
            menu.addAction("No folders yet").setEnabled(False)
        for root in self.roots:
            offline = root in self.offline
            sub = menu.addMenu(f"{root} (offline)" if offline else root)
            sub.addAction(self.watch_text(root)).setEnabled(False)
            sub.addSeparator()
            sub.addAction("Search Only Here", lambda r=root: self.ui.filters.choose_root(r))
            sub.addAction("Show in File Manager", lambda r=root: self.desktop.open_path(r)).setEnabled(not offline)
            remove = sub.addAction("Remove From Library…", lambda r=root: self.prompt_remove_folder(r))
            remove.setEnabled(not self.engine.indexing)

    def watch_text(self, root: str) -> str:
        """How the Folders menu says a root is watched."""
        if root in self.offline:
            return "Offline: its images stay until it is back or removed"
        if self.watcher is None:
            return "Watching paused" if self.watch_paused else "Not watched"
        state = self.watcher.states().get(root)
        if state is not None and state.how == POLLING:
            return f"Checked for changes every {self.watch_timing.poll_s:.0f} s: {state.reason}"
        return "Watched for changes"

    def prompt_remove_folder(self, root: str) -> None:
        answer = QMessageBox.question(self.window, "Remove Folder", f"Remove “{root}” from the library? Its images "
                                      "leave the index; the files themselves are not touched.")
        if answer == QMessageBox.StandardButton.Yes:
            self.remove_folder(root)

    def remove_folder(self, root: str) -> None:
        """Forget a root and its vectors (the engine refuses while indexing runs); it is no longer watched."""
        self.roots = [r for r in self.roots if r != root]
        self._follow_roots()
        self.engine.remove_root(root)
