"""The main window: moodboard strip on top, filters, the results grid (or the library), indexing status.

It only presents, and is made of parts (the shape of Picard's ``ui/mainwindow``):

- :mod:`.actions`: every action with its text, icon and shortcut;
- :mod:`.widgets`: the layout and the widgets it holds;
- :mod:`.search_controller`: when to search and which answer to show;
- :mod:`.moodboard_controller`: named moodboards and the cards' menu;
- :mod:`.library_controller`: folders, counts, indexing and unreadable files;
- :mod:`.library_browser`: the library page (every image, by folder) shown while the moodboard is empty;
- :mod:`.model_controller`: the style model in use, the Model menu, Settings and Teach Styles;
- :mod:`.result_actions`: a result's (or library image's) menu, "more like this", the preview;
- :mod:`.desktop`: opening, revealing and copying files;
- pages beside Browse: :class:`app.styles_page.StylesPage` (the library grouped by style) and
  :class:`app.duplicates_page.DuplicatesPage` (copies of the same picture, to trash).

This class composes them, wires their signals, picks the page to show, and
takes drops, pastes and files named on the command line. Every action is a call
on :class:`app.engine.Engine` (which runs ``core`` in worker threads) or on a model;
results come back as signals, so the GUI thread never waits on the disk, the model
or the index.
"""

from __future__ import annotations

from collections.abc import Sequence

from PySide6.QtCore import QMimeData, Qt
from PySide6.QtGui import QCloseEvent, QDragEnterEvent, QDropEvent, QGuiApplication
from PySide6.QtWidgets import QMainWindow, QToolBar

from app import icons
from app.dropping import DropContent, read_mime, read_paths, save_pasted
from app.engine import Engine
from app.library_model import LibraryModel
from app.mainwindow.actions import create_actions
from app.mainwindow.desktop import Desktop
from app.mainwindow.library_browser import LibraryBrowser
from app.mainwindow.library_controller import LibraryController
from app.mainwindow.model_controller import ModelController
from app.mainwindow.moodboard_controller import MoodboardController
from app.mainwindow.result_actions import ResultActions
from app.mainwindow.search_controller import SearchController
from app.mainwindow.widgets import MainWidgets
from app.moodboard_model import MoodboardEntry, MoodboardModel
from app.options import THUMB_MAX, THUMB_MIN, Settings
from app.results_model import ResultsModel
from app.duplicates_page import ICON_EDGE, DuplicatesPage
from app.roles import PathRole
from app.styles_page import StylesPage
from app.thumbnails import ThumbnailProvider, prune_cache
from app.workers import run_in_thread

__all__ = ["MainWindow"]

BOARD_THUMB_EDGE = 112
TILE_STEP = 24


class MainWindow(QMainWindow):
    """The app's window.

    Args:
        settings: the user's options (default: the per-user settings file).
        engine: the engine to present (default: a new one owned by the window).
        library_dir: the library folder (default: ``$ALADIN_LIBRARY`` or the per-user one).
        start: open the library and load the model at once; tests and tools may wait.
    """

    def __init__(self, settings: Settings | None = None, engine: Engine | None = None,
                 library_dir: str | None = None, start: bool = True) -> None:
        super().__init__()
        self.settings = settings or Settings()
        self.engine = engine or Engine(self)
        self.library_dir = library_dir
        self.setWindowTitle("ALADIN Style Browser")
        self.setWindowIcon(icons.app_icon())
        self.setAcceptDrops(True)

        edge = min(THUMB_MAX, max(THUMB_MIN, self.settings.get("thumb_size")))
        self.thumbs = ThumbnailProvider(edge, self)
        self.board_thumbs = ThumbnailProvider(BOARD_THUMB_EDGE, self)
        self.results = ResultsModel(self.thumbs, self)
        self.library_model = LibraryModel(self.thumbs, self)
        self.moodboard = MoodboardModel(self.board_thumbs, self)
        self.act = create_actions(self)
        self.ui = MainWidgets(self, self.act, self.moodboard, self.results, self.library_model)
        self.desktop = Desktop(self.engine.pool, self)
        self.models = ModelController(self.engine, self.settings, self.ui, self.act, self)
        self.findChild(QToolBar, "mainToolbar").insertWidget(self.act.settings, self.models.menu_button())
        self.library = LibraryController(self.engine, self.settings, self.ui, self.act, self.desktop, self)
        self.search = SearchController(self.engine, self.moodboard, self.results, self.ui.filters, self)
        self.boards = MoodboardController(self.engine, self.moodboard, self.act, self.ui.boards_menu,
                                          self.ui.query.strip, self.desktop, self)
        self.result_actions = ResultActions(self.ui.view, self.results, self.boards, self.desktop,
                                            self.engine.pool, self)
        self.browser = LibraryBrowser(self.engine, self.ui.library_pane, self.library_model, self)
        self.library_actions = ResultActions(self.ui.library_pane.view, self.library_model, self.boards,
                                             self.desktop, self.engine.pool, self)
        self.styles = StylesPage(self.engine, self.thumbs)
        self.ui.add_page(self.styles, "Styles", "moodboard")
        self.duplicates = DuplicatesPage(self.engine, ThumbnailProvider(ICON_EDGE, self), self.desktop)
        self.ui.add_page(self.duplicates, "Duplicates", "image")

        self._connect()
        for view in self.grids():
            view.set_tile_size(edge)
        self._restore()
        self.update_state()
        if start:
            self.start_engine()

    def _connect(self) -> None:
        act, ui, e = self.act, self.ui, self.engine
        for trigger, slot in ((act.add.triggered, self.library.choose_folder),
                              (act.rescan.triggered, self.library.rescan),
                              (act.failures.triggered, self.library.show_failures),
                              (act.paste.triggered, self.paste),
                              (act.clear.triggered, self.boards.clear),
                              (act.save.triggered, self.boards.prompt_save),
                              (act.rename.triggered, self.boards.prompt_rename),
                              (act.delete.triggered, self.boards.prompt_delete),
                              (act.settings.triggered, self.models.show_settings),
                              (act.teach.triggered, self.models.show_teach),
                              (act.bigger.triggered, lambda: self.set_tile_size(self.thumbs.edge + TILE_STEP)),
                              (act.smaller.triggered, lambda: self.set_tile_size(self.thumbs.edge - TILE_STEP)),
                              (act.quit.triggered, self.close),
                              (act.show_scores.toggled, self._show_scores),
                              (self.styles.add_to_moodboard, self.add_paths),
                              (self.styles.more_like_this, self.more_like_path),
                              (ui.empty_add.clicked, self.library.choose_folder)):
            trigger.connect(slot)
        for part in (self.models, self.library, self.boards):
            part.changed.connect(self.update_state)
        for status in (self.boards.status, self.desktop.status, self.models.status):
            status.connect(self.statusBar().showMessage)
        for error in (self.library.error, self.desktop.error, self.models.error, e.failed):
            error.connect(self.show_error)
        self.boards.warning.connect(lambda message: ui.banner.show_message(message, "warning"))
        self.models.tile_size_chosen.connect(self.set_tile_size)
        self.search.answered.connect(self._show_results)
        self.search.state_changed.connect(self.update_state)
        # Whatever changes what a search would find searches again.
        for changed in (e.library_ready, e.model_ready, e.index_finished, e.library_changed):
            changed.connect(self.search.schedule)
        e.index_progress.connect(self.search.refill_while_indexing)
        ui.filters.changed.connect(self._filters_changed)
        self.moodboard.changed.connect(self._moodboard_changed)
        for model_changed in (self.moodboard.rowsInserted, self.moodboard.rowsRemoved, self.moodboard.modelReset,
                              self.results.modelReset):
            model_changed.connect(self.update_state)
        ui.tile_slider.valueChanged.connect(self.set_tile_size)
        ui.library_pane.sort_combo.currentIndexChanged.connect(
            lambda: self.settings.set("library_sort", ui.library_pane.query()[1]))
        ui.query.strip.customContextMenuRequested.connect(self.boards.card_menu)

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
        self.ui.filters.restore(s)
        self.act.show_scores.setChecked(s.get("show_scores"))
        self.results.set_show_scores(s.get("show_scores"))
        self.ui.library_pane.set_sort(s.get("library_sort"))
        self.ui.tile_slider.blockSignals(True)
        self.ui.tile_slider.setValue(self.thumbs.edge)
        self.ui.tile_slider.blockSignals(False)
        self.moodboard.blockSignals(True)
        self.moodboard.set_entries([MoodboardEntry.from_dict(d) for d in s.moodboard()])
        self.moodboard.blockSignals(False)
        self.boards.name = s.get("moodboard_name") or None

    def start_engine(self) -> None:
        self.engine.open_library(self.library_dir)
        self.models.load()
        run_in_thread(prune_cache, pool=self.thumbs.pool)

    def _show_scores(self, on: bool) -> None:
        self.results.set_show_scores(on)
        self.settings.set("show_scores", on)

    def add_paths(self, paths: list[str]) -> None:
        """Add images of another page (a style) to the moodboard and go back to Browse to see the results."""
        ids = self.library_model.image_ids(paths)
        self.moodboard.add([MoodboardEntry(p, image_id=ids.get(p)) for p in paths])
        self.ui.pages.setCurrentIndex(0)

    def more_like_path(self, path: str) -> None:
        """Search with this one image, from any page, and show the results."""
        self.boards.start([MoodboardEntry(path, image_id=self.library_model.image_ids([path]).get(path))])
        self.ui.pages.setCurrentIndex(0)

    def grids(self) -> tuple:
        """The image grids: the results, and the library shown while the moodboard is empty."""
        return self.ui.view, self.ui.library_pane.view

    # -- state -----------------------------------------------------------------------------
    def update_state(self) -> None:
        """Show the page that fits: the results, the library while the moodboard is empty, or help."""
        ui, e = self.ui, self.engine
        count = self.moodboard.rowCount()
        has_board = count > 0
        ui.query.show_board(f"Moodboard: {self.boards.name or 'Untitled'}"
                            + (f"  ({count} image{'s' * (count != 1)})" if count else ""), has_board)
        self.act.clear.setEnabled(has_board)
        self.act.save.setEnabled(has_board)
        has_roots = bool(self.library.roots)
        self.act.rescan.setEnabled(e.library_open and e.has_model and not e.indexing and has_roots)
        self.act.add.setEnabled(e.has_model)
        self.act.teach.setEnabled(e.ready)
        ui.empty_add.setEnabled(e.has_model)
        first_run = e.library_open and not has_roots and not e.indexing and not has_board
        ui.query.setVisible(not first_run)
        ui.filters.setVisible(has_board)  # they narrow a search; the library page has its own folders and sort
        if self.results.rowCount() > 0:
            ui.stack.setCurrentWidget(ui.view)
            return
        if e.library_open and (has_roots or e.indexing) and not has_board:
            ui.stack.setCurrentWidget(ui.library_pane)
            return
        ui.stack.setCurrentWidget(ui.empty)
        empty = ui.empty
        if not e.library_open and self.library.open_error:
            empty.set_content("warning", "The library cannot be opened", self.library.open_error)
        elif self.models.missing:
            empty.set_content("warning", "No style model",
                              "Images can be indexed and searched once a model is chosen: use the "
                              "buttons above, or Settings.")
        elif not e.library_open:
            empty.set_content("image", "Opening the library…", "")
        elif not has_roots and not e.indexing:
            empty.set_content("folder-add", "Add your art folders",
                              "Add a folder (or drop one onto this window). Every image in it is indexed "
                              "in the background; you can search while it runs.", [ui.empty_add])
        elif self.search.busy:
            empty.set_content("search", "Searching…", "")
        elif self.search.last_error:
            empty.set_content("warning", "No results", self.search.last_error)
        else:
            empty.set_content("search", "No results",
                              "Nothing matches these filters yet. Widen the filters, or wait for indexing "
                              "to finish." if e.indexing else "Nothing matches these filters.")

    def show_error(self, message: str) -> None:
        self.ui.banner.show_message(message, "error")

    def _show_results(self, results: list) -> None:
        """Show an answer, keeping the current result current when it is still there."""
        view = self.ui.view
        selected = view.currentIndex().data(PathRole)
        self.results.set_results(results)
        if selected:
            rows = [i for i, r in enumerate(results) if r.path == selected]
            if rows:
                view.setCurrentIndex(self.results.index(rows[0]))
        if results:
            self.statusBar().showMessage(f"{len(results):,} results", 4000)
        self.update_state()

    def _filters_changed(self) -> None:
        self.ui.filters.save(self.settings)
        self.search.schedule()

    def _moodboard_changed(self) -> None:
        self.settings.set_moodboard([e.to_dict() for e in self.moodboard.entries()])
        if self.moodboard.rowCount() == 0:
            self.search.search_now()  # an empty board empties the grid at once
        else:
            self.search.schedule()

    def set_tile_size(self, edge: int) -> None:
        edge = min(THUMB_MAX, max(THUMB_MIN, int(edge)))
        self.thumbs.set_edge(edge)
        for view in self.grids():
            view.set_tile_size(edge)
        self.ui.tile_slider.blockSignals(True)
        self.ui.tile_slider.setValue(edge)
        self.ui.tile_slider.blockSignals(False)
        self.settings.set("thumb_size", edge)

    # -- drops and paste -------------------------------------------------------------------
    def _drag_ok(self, event) -> bool:
        source = event.source()
        query = self.ui.query
        if any(source is view or source is view.viewport() for view in self.grids()):
            # Results or library images dragged back in add to the moodboard only when dropped on it.
            return query.geometry().contains(query.parentWidget().mapFrom(self, event.position().toPoint()))
        mime = event.mimeData()
        return mime.hasUrls() or mime.hasImage()

    def dragEnterEvent(self, event: QDragEnterEvent) -> None:
        if event.mimeData().hasUrls() or event.mimeData().hasImage():
            event.acceptProposedAction()
            self.ui.query.set_dropping(True)

    def dragMoveEvent(self, event) -> None:
        if self._drag_ok(event):
            event.acceptProposedAction()
        else:
            event.ignore()

    def dragLeaveEvent(self, event) -> None:
        self.ui.query.set_dropping(False)

    def dropEvent(self, event: QDropEvent) -> None:
        self.ui.query.set_dropping(False)
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
        return self._accept(read_mime(mime))

    def open_files(self, paths: Sequence[str]) -> DropContent:
        """Files named by ``aladin IMAGE...``: a file manager's "Open with", or a later launch.

        The window comes to the front (a later launch handed them over instead of opening
        a second window) and takes them as if they were dropped on it.
        """
        self.setWindowState(self.windowState() & ~Qt.WindowState.WindowMinimized)
        self.show()
        self.raise_()
        self.activateWindow()
        return self._accept(read_paths(paths))

    def _accept(self, content: DropContent) -> DropContent:
        message = content.message()
        if message:
            self.ui.banner.show_message(message, "warning" if content.empty else "info")
        if content.folders:
            self.library.add_folders(content.folders)
        if content.files or content.images:
            self.ui.pages.setCurrentWidget(self.ui.browse_page)  # dropped on another page: the search shows
        if content.files:
            ids = {**self.library_model.image_ids(content.files), **self.results.image_ids(content.files)}
            self.moodboard.add([MoodboardEntry(p, image_id=ids.get(p)) for p in content.files])
        for image in content.images:
            run_in_thread(save_pasted, image, pool=self.engine.pool, context=self,
                          returned=lambda path: self.moodboard.add([MoodboardEntry(path)]),
                          errored=lambda exc: self.show_error(f"The pasted image could not be saved: {exc}"))
        return content

    # -- palette and closing -----------------------------------------------------------------------
    def changeEvent(self, event) -> None:
        """Follow the system's light/dark switch: icons are re-tinted, delegates read the new palette."""
        super().changeEvent(event)
        if event.type() == event.Type.PaletteChange:
            icons.retint()
            self.ui.retint_pages()
            self.update_state()

    def closeEvent(self, event: QCloseEvent) -> None:
        s = self.settings
        s.set("window/geometry", self.saveGeometry())
        s.set("window/state", self.saveState())
        s.set_moodboard([e.to_dict() for e in self.moodboard.entries()])
        s.set("moodboard_name", self.boards.name or "")
        s.sync()
        self.hide()  # an indexing run finishes its batch before the app exits; no frozen window meanwhile
        self.library.shutdown()
        self.models.shutdown()
        self.engine.shutdown()
        self.thumbs.wait_idle(5000)
        self.board_thumbs.wait_idle(5000)
        super().closeEvent(event)
