"""Named moodboards: save, load, rename and delete them in the library; edit a card from its menu.

The entries live in :class:`app.moodboard_model.MoodboardModel`; this part
owns the board's name and the list of saved names. Every library call runs in
the engine's worker and answers by signal, so the Moodboards menu and the
"replace it?" question use the names last read, never a query of their own.
"""

from __future__ import annotations

import os

from PySide6.QtCore import QObject, QPoint, Signal
from PySide6.QtWidgets import QInputDialog, QMenu, QMessageBox, QWidget

from app import icons
from app.engine import Engine
from app.mainwindow.actions import MainActions
from app.mainwindow.desktop import Desktop
from app.moodboard_model import MoodboardEntry, MoodboardModel
from app.roles import NegativeRole, PathRole, WeightRole
from app.views import MoodboardStrip

CARD_WEIGHTS = (0.25, 0.5, 1.0, 2.0, 3.0, 5.0)


class MoodboardController(QObject):
    """The current board's name and the library's saved boards.

    Attributes:
        name: the saved board the moodboard came from (None: an unsaved board).
        saved: the names of the library's saved boards, as last read.

    Signals:
        changed(): the name changed or a saved board was loaded; the window updates title and actions.
        status(str, int): a status-bar message and how long it shows, in ms.
        warning(str): something to show in the banner (images of a loaded board are missing).
    """

    changed = Signal()
    status = Signal(str, int)
    warning = Signal(str)

    def __init__(self, engine: Engine, model: MoodboardModel, act: MainActions, menu: QMenu,
                 strip: MoodboardStrip, desktop: Desktop, window: QWidget) -> None:
        super().__init__(window)
        self.engine = engine
        self.model = model
        self.act = act
        self.menu = menu
        self.strip = strip
        self.desktop = desktop
        self.window = window
        self.name: str | None = None
        self.saved: list[str] = []
        menu.aboutToShow.connect(self._menu_opening)
        engine.library_ready.connect(self.refresh)
        engine.moodboards_read.connect(self._names_read)
        engine.moodboard_saved.connect(self._saved)
        engine.moodboard_loaded.connect(self._loaded)
        engine.moodboard_renamed.connect(self._renamed)
        engine.moodboard_deleted.connect(self._deleted)

    # -- the board in the window ---------------------------------------------------------
    def clear(self) -> None:
        self.name = None
        self.model.clear()
        self.changed.emit()

    def start(self, entries: list[MoodboardEntry]) -> None:
        """A new, unsaved board of ``entries`` ("more like this")."""
        self.name = None
        self.model.set_entries(entries)

    # -- the library's saved boards -------------------------------------------------------------
    def refresh(self) -> None:
        """Ask for the saved boards' names; they arrive by signal."""
        self.engine.read_moodboards()

    def save(self, name: str) -> None:
        name = name.strip()
        if name:
            self.engine.save_moodboard(name, self.model.entries())

    def load(self, name: str) -> None:
        self.engine.load_moodboard(name)

    def rename(self, old: str, new: str) -> None:
        self.engine.rename_moodboard(old, new)

    def delete(self, name: str) -> None:
        self.engine.delete_moodboard(name)

    def _names_read(self, names: list[str]) -> None:
        if names != self.saved:
            self.saved = names
            if self.menu.isVisible():
                self.fill_menu()

    def _saved(self, name: str) -> None:
        self.name = name
        self.status.emit(f"Moodboard “{name}” saved.", 4000)
        self.changed.emit()

    def _loaded(self, name: str, entries: list[MoodboardEntry], missing: list[str]) -> None:
        self.name = name
        self.model.set_entries(entries)
        if missing:
            self.warning.emit(f"{len(missing)} image(s) of “{name}” are missing: "
                              + ", ".join(os.path.basename(p) for p in missing[:3]))
        self.changed.emit()

    def _renamed(self, old: str, new: str) -> None:
        if self.name == old:
            self.name = new
        self.changed.emit()

    def _deleted(self, name: str) -> None:
        if self.name == name:
            self.name = None
        self.changed.emit()

    # -- menu and questions -------------------------------------------------------------------
    def _menu_opening(self) -> None:
        """Show the names last read at once; a fresh read (another process may have saved
        boards) refills the open menu when it brings changes."""
        self.fill_menu()
        self.refresh()

    def fill_menu(self) -> None:
        menu = self.menu
        menu.clear()
        menu.addAction(self.act.save)
        has_name = self.name is not None
        self.act.rename.setEnabled(has_name)
        self.act.delete.setEnabled(has_name)
        menu.addAction(self.act.rename)
        menu.addAction(self.act.delete)
        menu.addAction(self.act.clear)
        menu.addSeparator()
        if not self.saved:
            menu.addAction("No saved moodboards").setEnabled(False)
        for name in self.saved:
            act = menu.addAction(name)
            act.setCheckable(True)
            act.setChecked(name == self.name)
            act.triggered.connect(lambda _c=False, n=name: self.load(n))

    def prompt_save(self) -> None:
        name, ok = QInputDialog.getText(self.window, "Save Moodboard", "Name:", text=self.name or "")
        name = name.strip()
        if not ok or not name:
            return
        if name in self.saved and name != self.name:
            answer = QMessageBox.question(self.window, "Replace Moodboard",
                                          f"A moodboard named “{name}” exists. Replace it?")
            if answer != QMessageBox.StandardButton.Yes:
                return
        self.save(name)

    def prompt_rename(self) -> None:
        if self.name is None:
            return
        name, ok = QInputDialog.getText(self.window, "Rename Moodboard", "New name:", text=self.name)
        if ok and name.strip():
            self.rename(self.name, name)

    def prompt_delete(self) -> None:
        if self.name is None:
            return
        answer = QMessageBox.question(self.window, "Delete Moodboard", f"Delete the saved moodboard “{self.name}”? "
                                      "The images themselves are not touched.")
        if answer == QMessageBox.StandardButton.Yes:
            self.delete(self.name)

    def card_menu(self, pos: QPoint) -> None:
        """A card's context menu: flip its sign, weight it, open it, remove it."""
        index = self.strip.indexAt(pos)
        if not index.isValid():
            return
        menu = QMenu(self.window)
        negative = bool(index.data(NegativeRole))
        menu.addAction("More Like This (positive)" if negative else "Less Like This (negative)",
                       lambda: self.model.setData(index, not negative, NegativeRole))
        weights = menu.addMenu("Weight")
        for w in CARD_WEIGHTS:
            act = weights.addAction(f"×{w:g}", lambda w=w: self.model.setData(index, w, WeightRole))
            act.setCheckable(True)
            act.setChecked(abs(index.data(WeightRole) - w) < 1e-6)
        menu.addAction("Open", lambda: self.desktop.open_path(index.data(PathRole)))
        menu.addSeparator()
        menu.addAction(icons.icon("remove"), "Remove From Moodboard", lambda: self.model.remove(index.row()))
        menu.popup(self.strip.viewport().mapToGlobal(pos))
