"""The main window's actions: text, icon, shortcut and tooltip, made in one place.

The actions are created unconnected; the window wires each to the part that
does the work. They are added to the window itself, so their shortcuts work
whether or not a toolbar or menu shows them.
"""

from __future__ import annotations

from dataclasses import dataclass

from PySide6.QtCore import Qt
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import QWidget

from app import icons


@dataclass(frozen=True)
class MainActions:
    add: QAction
    rescan: QAction
    failures: QAction
    watch_paused: QAction
    paste: QAction
    clear: QAction
    save: QAction
    rename: QAction
    delete: QAction
    settings: QAction
    teach: QAction
    bigger: QAction
    smaller: QAction
    show_scores: QAction
    quit: QAction


def _action(window: QWidget, text: str, icon: str | None = None, shortcut=None, tip: str | None = None,
            checkable: bool = False) -> QAction:
    action = QAction(text, window)
    action.setCheckable(checkable)
    if icon:
        icons.bind(action, icon)
    if shortcut is not None:
        action.setShortcut(shortcut)
    if tip:
        action.setToolTip(tip)
    window.addAction(action)
    return action


def create_actions(window: QWidget) -> MainActions:
    """Every action of the main window, owned by (and with shortcuts active in) ``window``."""
    keys = QKeySequence.StandardKey
    return MainActions(
        add=_action(window, "Add Folder…", "folder-add", keys.Open, "Add an art folder to the library and index it"),
        rescan=_action(window, "Rescan", "rescan", QKeySequence(Qt.Key.Key_F5),
                       "Look for new, changed and removed files in every library folder"),
        failures=_action(window, "Unreadable Files…", "warning", None,
                         "Files that could not be indexed, with the reason"),
        watch_paused=_action(window, "Pause Watching", None, None,
                             "Stop picking up new, changed and removed files by themselves until resumed",
                             checkable=True),
        paste=_action(window, "Paste Image", "paste", keys.Paste, "Add the image on the clipboard to the moodboard"),
        clear=_action(window, "Clear Moodboard", "clear", None, "Remove every image from the moodboard"),
        save=_action(window, "Save Moodboard…", "save", keys.Save, "Save the moodboard in the library under a name"),
        rename=_action(window, "Rename Moodboard…"),
        delete=_action(window, "Delete Moodboard…"),
        settings=_action(window, "Settings…", "settings", keys.Preferences, "Device, model file, thumbnail size"),
        teach=_action(window, "Teach Styles…", None, None,
                      "Fine-tune the model on groups of your own art, measured before and after"),
        bigger=_action(window, "Larger Tiles", None, keys.ZoomIn),
        smaller=_action(window, "Smaller Tiles", None, keys.ZoomOut),
        show_scores=_action(window, "Show Scores", None, None,
                            "Show each result's calibrated score on its tile (how close it is, in this library)",
                            checkable=True),
        quit=_action(window, "Quit", None, keys.Quit),
    )
