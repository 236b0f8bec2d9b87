"""The main window: moodboard strip on top, filters, the results grid, indexing status.

It only presents. Every action is a call on :class:`app.engine.Engine` (which
runs ``core`` in worker threads) or on a model; results come back as signals.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from pathlib import Path

from PySide6.QtCore import QMimeData, QModelIndex, QObject, QPoint, QProcess, Qt, QTimer, QUrl
from PySide6.QtGui import (QAction, QCloseEvent, QDesktopServices, QDragEnterEvent, QDropEvent, QGuiApplication,
                           QImage, QKeySequence, QPalette)
from PySide6.QtWidgets import (QApplication, QCheckBox, QComboBox, QFileDialog, QFrame, QHBoxLayout, QInputDialog,
                               QLabel, QLineEdit, QMainWindow, QMenu, QMessageBox, QPushButton, QSizePolicy, QSlider,
                               QSpinBox, QStackedWidget, QToolButton, QVBoxLayout, QWidget)

from core.query import SearchFilters

from app import icons
from app.delegates import mix
from app.dialogs import FailuresDialog, PreviewDialog, SettingsDialog, read_preview
from app.dropping import DropContent, read_mime, save_pasted
from app.engine import Engine, ModelState, SearchRequest
from app.moodboard_model import MoodboardEntry, MoodboardModel
from app.options import MODEL_BASELINE, THUMB_MAX, THUMB_MIN, Settings
from app.panels import Banner, EmptyState, IndexPanel
from app.results_model import ResultsModel
from app.roles import ImageIdRole, NegativeRole, PathRole, ScoreRole, WeightRole
from app.thumbnails import ThumbnailProvider, prune_cache
from app.views import MoodboardStrip, ResultsView
from app.workers import run_in_thread

log = logging.getLogger(__name__)

SEARCH_DELAY_MS = 60  # coalesces a burst of edits (several files dropped) into one search
PREVIEW_EDGE = 1600


def open_external(url: QUrl) -> bool:
    """Hand a file or folder to the desktop; tests replace this to avoid launching viewers."""
    return QDesktopServices.openUrl(url)


def reveal_in_folder(path: str, parent: QObject | None = None) -> bool:
    """Show ``path`` selected in the file manager where the platform can; else open its folder.

    On Linux the freedesktop FileManager1 D-Bus call selects the file (Files, Dolphin, Nemo,
    Caja, Thunar...). ``dbus-send`` runs as a child process so a slow or absent file manager
    never blocks the GUI; if it is missing or the call fails, the folder opens instead.
    """
    if sys.platform == "win32":
        return QProcess.startDetached("explorer", ["/select,", os.path.normpath(path)])[0]
    if sys.platform == "darwin":
        return QProcess.startDetached("open", ["-R", path])[0]
    folder = QUrl.fromLocalFile(str(Path(path).parent))
    proc = QProcess(parent)

    def fall_back(failed: bool) -> None:
        # A process that fails to start emits no finished(); one that ran emits it once.
        if failed:
            open_external(folder)
        proc.deleteLater()

    proc.finished.connect(lambda code, status: fall_back(code != 0 or status != QProcess.ExitStatus.NormalExit))
    proc.errorOccurred.connect(lambda error: fall_back(True) if error == QProcess.ProcessError.FailedToStart else None)
    proc.start("dbus-send", ["--session", "--print-reply", "--reply-timeout=3000",
                             "--dest=org.freedesktop.FileManager1", "--type=method_call",
                             "/org/freedesktop/FileManager1", "org.freedesktop.FileManager1.ShowItems",
                             f"array:string:{QUrl.fromLocalFile(path).toString()}", "string:"])
    return True


class QueryArea(QFrame):
    """The drop zone around the moodboard strip; highlighted while something is dragged over."""

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.setObjectName("queryArea")
        self.setFrameShape(QFrame.Shape.StyledPanel)
        self.setProperty("dropping", False)

    def set_dropping(self, on: bool) -> None:
        self.setProperty("dropping", on)
        self.setAutoFillBackground(on)
        pal = QApplication.palette(self)
        if on:
            pal.setColor(QPalette.ColorRole.Window, mix(pal.color(QPalette.ColorRole.Window),
                                                        pal.color(QPalette.ColorRole.Highlight), 0.2))
        self.setPalette(pal)


class MainWindow(QMainWindow):
    def __init__(self, settings: Settings | None = None, engine: Engine | None = None,
                 library_dir: str | None = None, start: bool = True) -> None:
        super().__init__()
        self.settings = settings or Settings()
        self.engine = engine or Engine(self)
        self.library_dir = library_dir
        self.moodboard_name: str | None = None
        self.failures: list = []
        self.last_request: SearchRequest | None = None
        self.last_error: str | None = None
        self.library_error: str | None = None
        self.model_missing = False  # no model could be loaded: the library waits for one
        self._last_search_at = 0.0
        self._last_status_at = 0.0
        self.setWindowTitle("ALADIN Style Browser")
        self.setWindowIcon(icons.app_icon())
        self.setAcceptDrops(True)

        edge = min(THUMB_MAX, max(THUMB_MIN, self.settings.get("thumb_size")))
        self.thumbs = ThumbnailProvider(edge, self)
        self.board_thumbs = ThumbnailProvider(112, self)
        self.results = ResultsModel(self.thumbs, self)
        self.moodboard = MoodboardModel(self.board_thumbs, self)
        self.search_timer = QTimer(self, singleShot=True, interval=SEARCH_DELAY_MS)
        self.search_timer.timeout.connect(self.search_now)
        self.preview: PreviewDialog | None = None
        self.failures_dialog: FailuresDialog | None = None

        self._build_actions()
        self._build_ui()
        self._connect()
        self.view.set_tile_size(edge)
        self._restore()
        self.update_state()
        if start:
            self.start_engine()

    # -- construction ---------------------------------------------------------------
    def _action(self, text: str, icon: str | None, slot, shortcut=None, tip: str | None = None) -> QAction:
        action = QAction(text, self)
        if icon:
            icons.bind(action, icon)
        if shortcut is not None:
            action.setShortcut(shortcut)
        if tip:
            action.setToolTip(tip)
        action.triggered.connect(slot)
        self.addAction(action)
        return action

    def _build_actions(self) -> None:
        a = self._action
        self.act_add = a("Add Folder…", "folder-add", self.choose_folder, QKeySequence.StandardKey.Open,
                         "Add an art folder to the library and index it")
        self.act_rescan = a("Rescan", "rescan", self.rescan, QKeySequence(Qt.Key.Key_F5),
                            "Look for new, changed and removed files in every library folder")
        self.act_failures = a("Unreadable Files…", "warning", self.show_failures, None,
                              "Files that could not be indexed, with the reason")
        self.act_paste = a("Paste Image", "paste", self.paste, QKeySequence.StandardKey.Paste,
                           "Add the image on the clipboard to the moodboard")
        self.act_clear = a("Clear Moodboard", "clear", self.clear_moodboard, None, "Remove every image from the moodboard")
        self.act_save = a("Save Moodboard…", "save", self.prompt_save_moodboard, QKeySequence.StandardKey.Save,
                          "Save the moodboard in the library under a name")
        self.act_rename = a("Rename Moodboard…", None, self.prompt_rename_moodboard)
        self.act_delete = a("Delete Moodboard…", None, self.prompt_delete_moodboard)
        self.act_settings = a("Settings…", "settings", self.show_settings, QKeySequence.StandardKey.Preferences,
                              "Device, model file, thumbnail size")
        self.act_bigger = a("Larger Tiles", None, lambda: self.set_tile_size(self.thumbs.edge + 24),
                            QKeySequence.StandardKey.ZoomIn)
        self.act_smaller = a("Smaller Tiles", None, lambda: self.set_tile_size(self.thumbs.edge - 24),
                             QKeySequence.StandardKey.ZoomOut)
        self.act_quit = a("Quit", None, self.close, QKeySequence.StandardKey.Quit)

    def _build_ui(self) -> None:
        tb = self.addToolBar("Main")
        tb.setObjectName("mainToolbar")
        tb.setMovable(False)
        tb.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        tb.addAction(self.act_add)
        tb.addAction(self.act_rescan)
        self.folders_button = QToolButton()
        self.folders_button.setText("Folders")
        icons.bind(self.folders_button, "folder")
        self.folders_button.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        self.folders_button.setToolTip("The library's folders: remove one, see unreadable files")
        self.folders_button.setPopupMode(QToolButton.ToolButtonPopupMode.InstantPopup)
        self.folders_menu = QMenu(self)
        self.folders_menu.aboutToShow.connect(self._fill_folders_menu)
        self.folders_button.setMenu(self.folders_menu)
        tb.addWidget(self.folders_button)
        tb.addSeparator()
        self.boards_button = QToolButton()
        self.boards_button.setText("Moodboards")
        icons.bind(self.boards_button, "moodboard")
        self.boards_button.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        self.boards_button.setPopupMode(QToolButton.ToolButtonPopupMode.InstantPopup)
        self.boards_menu = QMenu(self)
        self.boards_menu.aboutToShow.connect(self._fill_boards_menu)
        self.boards_button.setMenu(self.boards_menu)
        tb.addWidget(self.boards_button)
        tb.addAction(self.act_save)
        tb.addAction(self.act_paste)
        spacer = QWidget()
        spacer.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Preferred)
        tb.addWidget(spacer)
        tb.addAction(self.act_settings)

        central = QWidget()
        layout = QVBoxLayout(central)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(0)
        self.banner = Banner(central)
        layout.addWidget(self.banner)

        # query area: header line, then the strip or its hint
        self.query = QueryArea()
        q = QVBoxLayout(self.query)
        q.setContentsMargins(10, 6, 10, 6)
        q.setSpacing(2)
        header = QHBoxLayout()
        self.board_title = QLabel()
        font = self.board_title.font()
        font.setBold(True)
        self.board_title.setFont(font)
        self.board_hint = QLabel("Drop images here or paste (Ctrl+V) · ⊕ more like · ⊖ less like · ×weight")
        self.board_hint.setForegroundRole(QPalette.ColorRole.PlaceholderText)
        clear = QToolButton()
        clear.setDefaultAction(self.act_clear)
        clear.setAutoRaise(True)
        header.addWidget(self.board_title)
        header.addSpacing(8)
        header.addWidget(self.board_hint, 1)
        header.addWidget(clear)
        q.addLayout(header)
        self.strip = MoodboardStrip()
        self.strip.setModel(self.moodboard)
        self.strip_placeholder = QLabel("Drop one or more images here (from a file manager or a browser), "
                                        "or paste one with Ctrl+V, to find art in the same style.")
        self.strip_placeholder.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.strip_placeholder.setWordWrap(True)
        self.strip_placeholder.setForegroundRole(QPalette.ColorRole.PlaceholderText)
        self.strip_placeholder.setObjectName("dropHint")
        self.strip_placeholder.setStyleSheet("#dropHint { border: 2px dashed palette(mid); border-radius: 10px; }")
        self.strip_placeholder.setFixedHeight(self.strip.height() - 8)
        q.addWidget(self.strip)
        q.addWidget(self.strip_placeholder)
        layout.addWidget(self.query)

        # filters
        bar = QHBoxLayout()
        bar.setContentsMargins(10, 6, 10, 6)
        self.root_combo = QComboBox()
        self.root_combo.setMinimumContentsLength(16)
        self.root_combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.folder_edit = QLineEdit()
        self.folder_edit.setPlaceholderText("any folder")
        self.folder_edit.setClearButtonEnabled(True)
        folder_browse = QToolButton()
        folder_browse.setText("…")
        folder_browse.setToolTip("Choose a folder to search in")
        folder_browse.clicked.connect(self.choose_filter_folder)
        self.exclude_check = QCheckBox("Exclude the query's folders")
        self.k_spin = QSpinBox()
        self.k_spin.setRange(1, 10000)
        self.k_spin.setSingleStep(50)
        self.k_spin.setAccelerated(True)
        bar.addWidget(QLabel("Search in"))
        bar.addWidget(self.root_combo)
        bar.addWidget(QLabel("Folder"))
        bar.addWidget(self.folder_edit, 1)
        bar.addWidget(folder_browse)
        bar.addSpacing(8)
        bar.addWidget(self.exclude_check)
        bar.addSpacing(8)
        bar.addWidget(QLabel("Results"))
        bar.addWidget(self.k_spin)
        self.filter_bar = QWidget()
        self.filter_bar.setLayout(bar)
        layout.addWidget(self.filter_bar)

        self.stack = QStackedWidget()
        self.empty = EmptyState()
        self.view = ResultsView()
        self.view.setModel(self.results)
        self.stack.addWidget(self.empty)
        self.stack.addWidget(self.view)
        layout.addWidget(self.stack, 1)

        self.index_panel = IndexPanel()
        layout.addWidget(self.index_panel)
        self.setCentralWidget(central)

        self.empty_add = icons.bind(QPushButton("Add Folder…"), "folder-add")
        self.empty_add.clicked.connect(self.choose_folder)
        self.empty_paste = icons.bind(QPushButton("Paste Image"), "paste")
        self.empty_paste.clicked.connect(self.paste)

        sb = self.statusBar()
        self.library_label = QLabel()
        self.model_label = QLabel()
        self.tile_slider = QSlider(Qt.Orientation.Horizontal)
        self.tile_slider.setRange(THUMB_MIN, THUMB_MAX)
        self.tile_slider.setFixedWidth(120)
        self.tile_slider.setToolTip("Tile size (Ctrl+plus / Ctrl+minus)")
        sb.addWidget(self.library_label, 1)
        sb.addPermanentWidget(self.model_label)
        sb.addPermanentWidget(self.tile_slider)

    def _connect(self) -> None:
        e = self.engine
        e.library_ready.connect(self._library_ready)
        e.library_failed.connect(self._library_failed)
        e.model_ready.connect(self._model_ready)
        e.model_failed.connect(self._model_failed)
        e.model_mismatch.connect(self._model_mismatch)
        e.index_started.connect(lambda folders: self.index_panel.set_running())
        e.index_progress.connect(self.index_panel.set_progress)
        e.index_progress.connect(self._refresh_while_indexing)
        e.index_finished.connect(self._index_finished)
        e.index_failed.connect(self._index_failed)
        e.results.connect(self._results)
        e.search_failed.connect(self._search_failed)
        e.library_changed.connect(self.refresh_library)
        e.library_changed.connect(self.schedule_search)
        e.failed.connect(self.show_error)
        self.index_panel.cancel_clicked.connect(self.cancel_indexing)
        self.index_panel.resume_clicked.connect(self.rescan)
        self.index_panel.failures_clicked.connect(self.show_failures)
        self.moodboard.changed.connect(self._moodboard_changed)
        self.moodboard.rowsInserted.connect(self.update_state)
        self.moodboard.rowsRemoved.connect(self.update_state)
        self.moodboard.modelReset.connect(self.update_state)
        self.results.modelReset.connect(self.update_state)
        self.root_combo.currentIndexChanged.connect(self._filters_changed)
        self.folder_edit.editingFinished.connect(self._filters_changed)
        self.folder_edit.textChanged.connect(lambda t: t or self._filters_changed())
        self.exclude_check.toggled.connect(self._filters_changed)
        self.k_spin.valueChanged.connect(self._filters_changed)
        self.tile_slider.valueChanged.connect(self.set_tile_size)
        self.view.customContextMenuRequested.connect(self._results_menu)
        self.view.open_requested.connect(lambda i: self.open_path(i.data(PathRole)))
        self.view.preview_requested.connect(self.show_preview)
        self.strip.customContextMenuRequested.connect(self._strip_menu)

    def _restore(self) -> None:
        s = self.settings
        geometry = s.get("window/geometry")
        if geometry and not geometry.isEmpty():
            self.restoreGeometry(geometry)
        else:
            self.resize(1180, 800)
        state = s.get("window/state")
        if state and not state.isEmpty():
            self.restoreState(state)
        for w in (self.exclude_check, self.k_spin, self.tile_slider):
            w.blockSignals(True)
        self.exclude_check.setChecked(s.get("exclude_query_folders"))
        self.k_spin.setValue(s.get("results_k"))
        self.folder_edit.setText(s.get("filter_folder"))
        self.tile_slider.setValue(self.thumbs.edge)
        for w in (self.exclude_check, self.k_spin, self.tile_slider):
            w.blockSignals(False)
        self.moodboard.blockSignals(True)
        self.moodboard.set_entries([MoodboardEntry.from_dict(d) for d in s.moodboard()])
        self.moodboard.blockSignals(False)
        self.moodboard_name = s.get("moodboard_name") or None

    def start_engine(self) -> None:
        self.engine.open_library(self.library_dir)
        self.load_model()
        run_in_thread(prune_cache, pool=self.thumbs.pool)

    def load_model(self) -> None:
        self.model_label.setText("Loading model…")
        self.engine.load_model(self.settings.get("model"), self.settings.get("device"))

    # -- state -----------------------------------------------------------------------------
    def update_state(self) -> None:
        """Show the page that fits: first-run help, 'drop an image', or the results grid."""
        has_board = self.moodboard.rowCount() > 0
        self.strip.setVisible(has_board)
        self.strip_placeholder.setVisible(not has_board)
        self.act_clear.setEnabled(has_board)
        self.act_save.setEnabled(has_board)
        name = self.moodboard_name or "Untitled"
        count = self.moodboard.rowCount()
        self.board_title.setText(f"Moodboard: {name}" + (f"  ({count} image{'s' * (count != 1)})" if count else ""))
        lib = self.engine.library
        has_roots = bool(self.root_combo.count() > 1)
        indexing = self.engine.indexing
        has_model = self.engine.embedder is not None
        self.act_rescan.setEnabled(lib is not None and has_model and not indexing and has_roots)
        self.act_add.setEnabled(has_model)
        self.empty_add.setEnabled(has_model)
        first_run = lib is not None and not has_roots and not indexing and not has_board
        self.query.setVisible(not first_run)
        self.filter_bar.setVisible(not first_run)
        if self.results.rowCount() > 0:
            self.stack.setCurrentWidget(self.view)
            return
        self.stack.setCurrentWidget(self.empty)
        if lib is None and self.library_error:
            self.empty.set_content("warning", "The library cannot be opened", self.library_error)
        elif self.model_missing:
            self.empty.set_content("warning", "No style model",
                                   "Images can be indexed and searched once a model is chosen: use the "
                                   "buttons above, or Settings.")
        elif lib is None:
            self.empty.set_content("image", "Opening the library…", "")
        elif not has_roots and not indexing:
            self.empty.set_content("folder-add", "Add your art folders",
                                   "Add a folder (or drop one onto this window). Every image in it is indexed "
                                   "in the background; you can search while it runs.", [self.empty_add])
        elif not has_board:
            self.empty.set_content("image", "Drop an image to search by style",
                                   "Drop one or more images on the moodboard above, or paste one, and the most "
                                   "similar art in your library appears here.", [self.empty_paste])
        elif self.engine.searching or self.search_timer.isActive():
            self.empty.set_content("search", "Searching…", "")
        elif self.last_error:
            self.empty.set_content("warning", "No results", self.last_error)
        else:
            self.empty.set_content("search", "No results",
                                   "Nothing matches these filters yet. Widen the filters, or wait for indexing "
                                   "to finish." if indexing else "Nothing matches these filters.")

    def refresh_library(self) -> None:
        """Re-read roots and counts off the GUI thread, then update the labels and root filter."""
        if self.engine.library is None:
            return
        self.engine.call(self.engine.library.status, returned=self._status_ready,
                         errored=lambda msg: self.show_error(msg), context=self)
        self.engine.call(self.engine.library.failures, returned=self._failures_ready, context=self)

    def _status_ready(self, status) -> None:
        current = self._root_filter() or self.settings.get("filter_root")
        self.root_combo.blockSignals(True)
        self.root_combo.clear()
        self.root_combo.addItem("All folders", "")
        for root in status.roots:
            self.root_combo.addItem(Path(root.path).name or root.path, root.path)
            self.root_combo.setItemData(self.root_combo.count() - 1,
                                        f"{root.path}\n{root.images:,} images" +
                                        ("" if root.exists else " · folder is missing"),
                                        Qt.ItemDataRole.ToolTipRole)
        self.root_combo.setCurrentIndex(max(0, self.root_combo.findData(current)))
        self.root_combo.blockSignals(False)
        n = len(status.roots)
        text = (f"{status.indexed:,} images indexed in {n} folder{'s' * (n != 1)}" if n
                else "The library is empty")
        if status.pending > 0 and not self.engine.indexing:
            text += f" · {status.pending:,} not indexed yet"
        self.library_label.setText(text)
        self.index_panel.set_failures(status.failed)
        if not self.engine.indexing and status.pending > 0 and self.engine.ready and self.index_panel.resume.isHidden():
            self.index_panel.set_paused(f"{status.pending:,} images are waiting to be indexed.")
        self.update_state()

    def _failures_ready(self, failures: list) -> None:
        self.failures = failures
        self.index_panel.set_failures(len(failures))
        if self.failures_dialog is not None:
            self.failures_dialog.set_failures(failures)

    def show_error(self, message: str) -> None:
        self.banner.show_message(message, "error")

    # -- engine events --------------------------------------------------------------------
    def _library_ready(self) -> None:
        self.refresh_library()
        self.schedule_search()

    def _library_failed(self, message: str) -> None:
        self.library_error = message
        self.show_error(f"The library cannot be opened: {message}")
        self.update_state()

    def _refresh_while_indexing(self, progress) -> None:
        """While indexing runs, counts and folders refresh every few seconds, and a grid that is
        not full yet is searched again: new images count at once."""
        now = time.monotonic()
        if now - self._last_status_at > 2.0:
            self._last_status_at = now
            self.refresh_library()
        if (progress.phase == "embed" and self.moodboard.rowCount() and self.results.rowCount() < self.k_spin.value()
                and time.monotonic() - self._last_search_at > 3.0 and not self.engine.searching):
            self.schedule_search()

    def _model_ready(self, state: ModelState) -> None:
        self.model_missing = False
        device = state.device_label or state.device
        if not state.trained:
            self.model_label.setText(f"⚠ untrained baseline · {device}")
            self.model_label.setToolTip("A random, untrained network: results do not reflect style. "
                                        "Choose a trained model file in Settings.")
            self.banner.show_message(
                "Using the untrained baseline: a random network, so results barely reflect style. "
                "Choose a trained model file in Settings for real style search.", "warning",
                [("Settings…", self.show_settings)])
        else:
            self.model_label.setText(f"Model: {state.name} · {device}")
            self.model_label.setToolTip(state.spec or "bundled model")
            if self.banner.tone != "error":
                self.banner.hide()
        self.update_state()
        self.schedule_search()

    def _model_failed(self, message: str, no_trained: bool) -> None:
        self.model_missing = True
        self.model_label.setText("No model")
        if no_trained:
            self.banner.show_message(
                "No trained style model is installed, so images cannot be indexed or searched yet. "
                "Choose a model file in Settings, or try the untrained baseline (a random network, "
                "for testing only).", "warning",
                [("Choose Model File…", self.choose_model_file), ("Use Untrained Baseline", self.use_baseline)])
        else:
            self.banner.show_message(f"The model could not be loaded: {message}", "error",
                                     [("Settings…", self.show_settings)])
        self.update_state()

    def _model_mismatch(self, message: str) -> None:
        self.banner.show_message(
            "This library was indexed with a different model than the one selected, so it cannot be "
            "searched with it. Index it again with the selected model (every image is re-embedded), "
            "or switch back to the library's model in Settings.", "warning",
            [("Re-index With This Model", lambda: self.engine.index(None, switch_model=True)),
             ("Settings…", self.show_settings)])

    def _index_finished(self, summary, cancelled: bool) -> None:
        if cancelled:
            self.index_panel.set_paused("Indexing paused. Everything indexed so far is kept and searchable.")
        else:
            parts = []
            if summary is not None:
                for label, n in (("added", summary.added), ("updated", summary.updated), ("moved", summary.moved),
                                 ("removed", summary.removed), ("unreadable", summary.failed)):
                    if n:
                        parts.append(f"{n:,} {label}")
                if getattr(summary, "missing_roots", None):
                    parts.append(f"{len(summary.missing_roots)} folder(s) missing")
            self.index_panel.set_idle("Library up to date" + (": " + ", ".join(parts) if parts else "."))
        self.refresh_library()
        self.schedule_search()

    def _index_failed(self, message: str) -> None:
        self.index_panel.set_paused("Indexing stopped.")
        if message:
            self.show_error(message)
        self.update_state()

    # -- search ------------------------------------------------------------------------------
    def _root_filter(self) -> str:
        """The chosen root; "" for all folders (also while the combo is still empty)."""
        return self.root_combo.currentData() if self.root_combo.currentIndex() >= 0 else ""

    def current_request(self) -> SearchRequest:
        root = self._root_filter() or None
        folder = self.folder_edit.text().strip() or None
        filters = SearchFilters(roots=[root] if root else None, folder=folder,
                                exclude_query_folders=self.exclude_check.isChecked(), k=self.k_spin.value())
        return SearchRequest(entries=self.moodboard.entries(), filters=filters)

    def schedule_search(self) -> None:
        self.search_timer.start()
        self.update_state()

    def search_now(self) -> None:
        request = self.current_request()
        if not any(not e.negative for e in request.entries):
            self.last_request = None  # an answer still in flight is now stale
            self.last_error = "Add at least one positive (⊕) image." if request.entries else None
            self.results.set_results([])
            self.update_state()
            return
        if not self.engine.ready:
            self.update_state()
            return  # searched again when the library and model are ready
        self.last_request = request
        self._last_search_at = time.monotonic()
        self.engine.search(request)
        self.update_state()

    def _results(self, request: SearchRequest, results: list) -> None:
        if request is not self.last_request:
            return
        self.last_error = None
        selected = self.view.currentIndex().data(PathRole)
        self.results.set_results(results)
        if selected:
            rows = [i for i, r in enumerate(results) if r.path == selected]
            if rows:
                self.view.setCurrentIndex(self.results.index(rows[0]))
        if results:
            self.statusBar().showMessage(f"{len(results):,} results", 4000)
        self.update_state()

    def _search_failed(self, message: str) -> None:
        if self.last_request is None:
            return
        if self.engine.indexing and self.engine.searcher is None:
            message = "Indexing has just started; results appear here as images are indexed."
        self.last_error = message
        self.results.set_results([])
        self.update_state()

    def _filters_changed(self, *_args) -> None:
        s = self.settings
        s.set("filter_root", self._root_filter())
        s.set("filter_folder", self.folder_edit.text().strip())
        s.set("exclude_query_folders", self.exclude_check.isChecked())
        s.set("results_k", self.k_spin.value())
        self.schedule_search()

    def _moodboard_changed(self) -> None:
        self.settings.set_moodboard([e.to_dict() for e in self.moodboard.entries()])
        if self.moodboard.rowCount() == 0:
            self.search_now()  # an empty board empties the grid at once
        else:
            self.schedule_search()

    # -- folders and indexing --------------------------------------------------------------
    def choose_folder(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Add an art folder")
        if folder:
            self.add_folders([folder])

    def add_folders(self, folders: list[str]) -> None:
        if not self.engine.ready:
            self.show_error("A model is needed to index images. Choose one in Settings first.")
            return
        self.engine.index(folders)
        self.update_state()

    def rescan(self) -> None:
        if self.engine.ready:
            self.engine.index(None)

    def cancel_indexing(self) -> None:
        self.engine.cancel_index()
        self.index_panel.set_cancelling()

    def show_failures(self) -> None:
        if self.failures_dialog is None:
            self.failures_dialog = FailuresDialog(self)
            self.failures_dialog.retry_requested.connect(self.rescan)
        self.failures_dialog.set_failures(self.failures)
        self.refresh_library()
        self.failures_dialog.show()
        self.failures_dialog.raise_()

    def _fill_folders_menu(self) -> None:
        menu = self.folders_menu
        for sub in menu.findChildren(QMenu):  # clear() keeps sub-menus alive
            sub.deleteLater()
        menu.clear()
        menu.addAction(self.act_add)
        menu.addAction(self.act_rescan)
        menu.addAction(self.act_failures)
        menu.addSeparator()
        roots = self.engine.roots()
        if not roots:
            menu.addAction("No folders yet").setEnabled(False)
        for root in roots:
            sub = menu.addMenu(root)
            sub.addAction("Search Only Here", lambda r=root: self.root_combo.setCurrentIndex(
                max(0, self.root_combo.findData(r))))
            sub.addAction("Show in File Manager", lambda r=root: open_external(QUrl.fromLocalFile(r)))
            remove = sub.addAction("Remove From Library…", lambda r=root: self.prompt_remove_folder(r))
            remove.setEnabled(not self.engine.indexing)

    def prompt_remove_folder(self, root: str) -> None:
        answer = QMessageBox.question(self, "Remove Folder", f"Remove “{root}” from the library? Its images "
                                      "leave the index; the files themselves are not touched.")
        if answer == QMessageBox.StandardButton.Yes:
            self.remove_folder(root)

    def remove_folder(self, root: str) -> None:
        """Forget a root and its vectors (the engine refuses while indexing runs)."""
        self.engine.remove_root(root)

    def choose_filter_folder(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Search only in this folder", self.folder_edit.text())
        if folder:
            self.folder_edit.setText(folder)
            self._filters_changed()

    # -- drops and paste -------------------------------------------------------------------
    def _drag_ok(self, event) -> bool:
        source = event.source()
        if source is self.view or source is self.view.viewport():
            # Results dragged back in add to the moodboard only when dropped on it.
            return self.query.geometry().contains(self.query.parentWidget().mapFrom(self, event.position().toPoint()))
        mime = event.mimeData()
        return mime.hasUrls() or mime.hasImage()

    def dragEnterEvent(self, event: QDragEnterEvent) -> None:
        if event.mimeData().hasUrls() or event.mimeData().hasImage():
            event.acceptProposedAction()
            self.query.set_dropping(True)

    def dragMoveEvent(self, event) -> None:
        if self._drag_ok(event):
            event.acceptProposedAction()
        else:
            event.ignore()

    def dragLeaveEvent(self, event) -> None:
        self.query.set_dropping(False)

    def dropEvent(self, event: QDropEvent) -> None:
        self.query.set_dropping(False)
        if not self._drag_ok(event):
            event.ignore()
            return
        event.acceptProposedAction()
        self.accept_mime(event.mimeData())

    def paste(self) -> None:
        mime = QGuiApplication.clipboard().mimeData()
        if mime is None or (not mime.hasUrls() and not mime.hasImage()):
            self.statusBar().showMessage("The clipboard holds no image.", 4000)
            return
        self.accept_mime(mime)

    def accept_mime(self, mime: QMimeData) -> DropContent:
        """Folders are added to the library; images join the moodboard; web links are refused."""
        content = read_mime(mime)
        message = content.message()
        if message:
            self.banner.show_message(message, "warning" if content.empty else "info")
        if content.folders:
            self.add_folders(content.folders)
        if content.files:
            ids = self._known_ids(content.files)
            self.moodboard.add([MoodboardEntry(p, image_id=ids.get(p)) for p in content.files])
        for image in content.images:
            run_in_thread(save_pasted, image, pool=self.engine.pool, context=self,
                          returned=lambda path: self.moodboard.add([MoodboardEntry(path)]),
                          errored=lambda exc: self.show_error(f"The pasted image could not be saved: {exc}"))
        return content

    def _known_ids(self, paths: list[str]) -> dict[str, int]:
        """Image ids of paths that are results on screen (dragged back in), so search can reuse vectors."""
        on_screen = {r.path: r.image_id for r in self.results.results()}
        return {p: on_screen[p] for p in paths if p in on_screen}

    # -- moodboard ------------------------------------------------------------------------------
    def clear_moodboard(self) -> None:
        self.moodboard_name = None
        self.moodboard.clear()
        self.update_state()

    def _query_items(self) -> list:
        from core.query import QueryItem

        return [QueryItem(path=e.path, weight=e.weight, negative=e.negative) for e in self.moodboard.entries()]

    def save_moodboard(self, name: str) -> None:
        name = name.strip()
        if not name or self.engine.library is None:
            return
        items = self._query_items()

        def saved(_result, name=name) -> None:
            self.moodboard_name = name
            self.statusBar().showMessage(f"Moodboard “{name}” saved.", 4000)
            self.update_state()

        self.engine.call(self.engine.library.save_moodboard, name, items,
                         returned=saved, errored=self.show_error, context=self)

    def load_moodboard(self, name: str) -> None:
        def loaded(items, name=name) -> None:
            self.moodboard_name = name
            self.moodboard.set_entries([MoodboardEntry(i.path, float(i.weight), bool(i.negative)) for i in items])
            missing = [i.path for i in items if not os.path.exists(i.path)]
            if missing:
                self.banner.show_message(f"{len(missing)} image(s) of “{name}” are missing: "
                                         + ", ".join(os.path.basename(p) for p in missing[:3]), "warning")
            self.update_state()

        self.engine.call(self.engine.library.load_moodboard, name,
                         returned=loaded, errored=self.show_error, context=self)

    def rename_moodboard(self, old: str, new: str) -> None:
        def renamed(_r, old=old, new=new.strip()) -> None:
            if self.moodboard_name == old:
                self.moodboard_name = new
            self.update_state()

        self.engine.call(self.engine.library.rename_moodboard, old, new,
                         returned=renamed, errored=self.show_error, context=self)

    def delete_moodboard(self, name: str) -> None:
        def deleted(_r, name=name) -> None:
            if self.moodboard_name == name:
                self.moodboard_name = None
            self.update_state()

        self.engine.call(self.engine.library.delete_moodboard, name,
                         returned=deleted, errored=self.show_error, context=self)

    def saved_moodboards(self) -> list[str]:
        return self.engine.library.moodboards() if self.engine.library is not None else []

    def _fill_boards_menu(self) -> None:
        menu = self.boards_menu
        menu.clear()
        menu.addAction(self.act_save)
        names = self.saved_moodboards()
        has_name = self.moodboard_name is not None
        self.act_rename.setEnabled(has_name)
        self.act_delete.setEnabled(has_name)
        menu.addAction(self.act_rename)
        menu.addAction(self.act_delete)
        menu.addAction(self.act_clear)
        menu.addSeparator()
        if not names:
            none = menu.addAction("No saved moodboards")
            none.setEnabled(False)
        for name in names:
            act = menu.addAction(name)
            act.setCheckable(True)
            act.setChecked(name == self.moodboard_name)
            act.triggered.connect(lambda _c=False, n=name: self.load_moodboard(n))

    def prompt_save_moodboard(self) -> None:
        name, ok = QInputDialog.getText(self, "Save Moodboard", "Name:", text=self.moodboard_name or "")
        if ok and name.strip():
            if name.strip() in self.saved_moodboards() and name.strip() != self.moodboard_name:
                answer = QMessageBox.question(self, "Replace Moodboard",
                                              f"A moodboard named “{name.strip()}” exists. Replace it?")
                if answer != QMessageBox.StandardButton.Yes:
                    return
            self.save_moodboard(name)

    def prompt_rename_moodboard(self) -> None:
        if self.moodboard_name is None:
            return
        name, ok = QInputDialog.getText(self, "Rename Moodboard", "New name:", text=self.moodboard_name)
        if ok and name.strip():
            self.rename_moodboard(self.moodboard_name, name)

    def prompt_delete_moodboard(self) -> None:
        if self.moodboard_name is None:
            return
        answer = QMessageBox.question(self, "Delete Moodboard", f"Delete the saved moodboard “{self.moodboard_name}”? "
                                      "The images themselves are not touched.")
        if answer == QMessageBox.StandardButton.Yes:
            self.delete_moodboard(self.moodboard_name)

    def _strip_menu(self, pos: QPoint) -> None:
        index = self.strip.indexAt(pos)
        if not index.isValid():
            return
        menu = QMenu(self)
        negative = bool(index.data(NegativeRole))
        menu.addAction("More Like This (positive)" if negative else "Less Like This (negative)",
                       lambda: self.moodboard.setData(index, not negative, NegativeRole))
        weights = menu.addMenu("Weight")
        for w in (0.25, 0.5, 1.0, 2.0, 3.0, 5.0):
            act = weights.addAction(f"×{w:g}", lambda w=w: self.moodboard.setData(index, w, WeightRole))
            act.setCheckable(True)
            act.setChecked(abs(index.data(WeightRole) - w) < 1e-6)
        menu.addAction("Open", lambda: self.open_path(index.data(PathRole)))
        menu.addSeparator()
        menu.addAction(icons.icon("remove"), "Remove From Moodboard", lambda: self.moodboard.remove(index.row()))
        menu.popup(self.strip.viewport().mapToGlobal(pos))

    # -- result actions ------------------------------------------------------------------------
    def selected_paths(self) -> list[str]:
        rows = sorted(i.row() for i in self.view.selectionModel().selectedIndexes())
        if not rows and self.view.currentIndex().isValid():
            rows = [self.view.currentIndex().row()]
        return [self.results.result(r).path for r in rows]

    def result_actions(self, index: QModelIndex) -> list[tuple[str, object]]:
        """The context actions for a result, in menu order (None = separator)."""
        path = index.data(PathRole)
        return [
            ("More Like This", lambda: self.more_like_this(index)),
            ("Add to Moodboard", lambda: self.add_results_to_moodboard(index)),
            (None, None),
            ("Open", lambda: self.open_path(path)),
            ("Show in Folder", lambda: reveal_in_folder(path, self)),
            (None, None),
            ("Copy Path", lambda: self.copy_paths(index)),
            ("Copy Image", lambda: self.copy_image(path)),
        ]

    def _results_menu(self, pos: QPoint) -> None:
        index = self.view.indexAt(pos)
        if not index.isValid():
            return
        menu = QMenu(self)
        for text, slot in self.result_actions(index):
            if text is None:
                menu.addSeparator()
            else:
                menu.addAction(text, slot)
        menu.popup(self.view.viewport().mapToGlobal(pos))

    def more_like_this(self, index: QModelIndex) -> None:
        if not index.isValid():
            return
        self.moodboard_name = None
        self.moodboard.set_entries([MoodboardEntry(index.data(PathRole), image_id=index.data(ImageIdRole))])
        self.view.scrollToTop()

    def add_results_to_moodboard(self, index: QModelIndex) -> None:
        paths = self.selected_paths() if self.view.selectionModel().isSelected(index) else [index.data(PathRole)]
        ids = self._known_ids(paths)
        self.moodboard.add([MoodboardEntry(p, image_id=ids.get(p)) for p in paths])

    def open_path(self, path: str | None) -> None:
        if path and not open_external(QUrl.fromLocalFile(path)):
            self.statusBar().showMessage(f"No application could open {path}", 5000)

    def copy_paths(self, index: QModelIndex) -> None:
        paths = self.selected_paths() if self.view.selectionModel().isSelected(index) else [index.data(PathRole)]
        QGuiApplication.clipboard().setText("\n".join(paths))
        self.statusBar().showMessage("Path copied." if len(paths) == 1 else f"{len(paths)} paths copied.", 3000)

    def copy_image(self, path: str) -> None:
        def done(image: QImage, path=path) -> None:
            mime = QMimeData()
            mime.setImageData(image)
            mime.setUrls([QUrl.fromLocalFile(path)])
            QGuiApplication.clipboard().setMimeData(mime)
            self.statusBar().showMessage("Image copied.", 3000)

        run_in_thread(read_preview, path, 8192, pool=self.engine.pool, context=self, returned=done,
                      errored=lambda exc: self.show_error(f"The image could not be copied: {exc}"))

    def show_preview(self, index: QModelIndex) -> None:
        if self.preview is None:
            self.preview = PreviewDialog(self)
            self.preview.step.connect(self._preview_step)
            self.preview.resize(960, 760)
        self._load_preview(index)
        self.preview.show()
        self.preview.raise_()
        self.preview.activateWindow()

    def _load_preview(self, index: QModelIndex) -> None:
        path = index.data(PathRole)
        self.preview.setWindowTitle(os.path.basename(path))
        self.preview.set_loading(path, f"{path} · score {index.data(ScoreRole):.3f}")
        run_in_thread(read_preview, path, PREVIEW_EDGE, pool=self.engine.pool, context=self,
                      returned=lambda image, p=path: self.preview.set_image(p, image),
                      errored=lambda exc, p=path: self.preview.set_error(p, str(exc)))

    def _preview_step(self, step: int) -> None:
        row = self.view.currentIndex().row() + step
        if 0 <= row < self.results.rowCount():
            index = self.results.index(row)
            self.view.setCurrentIndex(index)
            self._load_preview(index)

    # -- settings ------------------------------------------------------------------------------------
    def set_tile_size(self, edge: int) -> None:
        edge = min(THUMB_MAX, max(THUMB_MIN, int(edge)))
        self.thumbs.set_edge(edge)
        self.view.set_tile_size(edge)
        self.tile_slider.blockSignals(True)
        self.tile_slider.setValue(edge)
        self.tile_slider.blockSignals(False)
        self.settings.set("thumb_size", edge)

    def settings_values(self) -> dict:
        return {k: self.settings.get(k) for k in ("device", "model", "thumb_size")}

    def show_settings(self) -> None:
        dialog = SettingsDialog(self.settings_values(), parent=self)
        if dialog.exec():
            self.apply_settings(dialog.values())

    def apply_settings(self, values: dict) -> None:
        old = self.settings_values()
        for key, value in values.items():
            self.settings.set(key, value)
        self.set_tile_size(values.get("thumb_size", old["thumb_size"]))
        if (values.get("model"), values.get("device")) != (old["model"], old["device"]):
            self.load_model()

    def choose_model_file(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Choose a model file", "",
                                              "ALADIN models (*.safetensors);;All files (*)")
        if path:
            self.apply_settings({"model": path})

    def use_baseline(self) -> None:
        self.apply_settings({"model": MODEL_BASELINE})

    # -- palette and closing -----------------------------------------------------------------------
    def changeEvent(self, event) -> None:
        """Follow the system's light/dark switch: icons are re-tinted, delegates read the new palette."""
        super().changeEvent(event)
        if event.type() == event.Type.PaletteChange:
            icons.retint()
            self.update_state()

    def closeEvent(self, event: QCloseEvent) -> None:
        s = self.settings
        s.set("window/geometry", self.saveGeometry())
        s.set("window/state", self.saveState())
        s.set_moodboard([e.to_dict() for e in self.moodboard.entries()])
        s.set("moodboard_name", self.moodboard_name or "")
        s.sync()
        self.hide()  # an indexing run finishes its batch before the app exits; no frozen window meanwhile
        self.engine.shutdown()
        self.thumbs.wait_idle(5000)
        self.board_thumbs.wait_idle(5000)
        super().closeEvent(event)
