"""Which style model the app uses: loading it, saying so, the Model menu and the settings that choose it.

The engine loads models in a worker; this part shows the outcome in the
status bar and, when the user has to act (no trained model installed, an
untrained baseline, a library made with another model), in the banner with
the buttons that resolve it.

The Model menu lists the bundled model and every model the user has taught
(:mod:`app.teach.store`); choosing one switches the library to it in the
background (:meth:`app.engine.Engine.switch_model`), searching with the
current model until the new vectors are all there, so a switch back is as safe.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QObject, Qt, Signal
from PySide6.QtWidgets import QFileDialog, QMenu, QToolButton, QWidget

from app import icons
from app.dialogs import SettingsDialog
from app.engine import Engine, ModelState
from app.mainwindow.actions import MainActions
from app.mainwindow.widgets import MainWidgets
from app.options import MODEL_BASELINE, MODEL_DEFAULT, Settings
from app.teach.dialog import TeachDialog
from app.teach.store import SavedModel, saved_models
from app.workers import run_in_thread
from core.errors import ModelMismatchError

SETTINGS_KEYS = ("device", "model", "thumb_size")


class ModelController(QObject):
    """Loads the chosen model, offers the Model menu and runs the Settings and Teach Styles dialogs.

    Attributes:
        missing: no model could be loaded; the library waits for one.
        saved: the user's taught models, from the latest look at the models folder.
        menu: the Model menu.
        teach_dialog: the open (or last) Teach Styles dialog.

    Signals:
        changed(): a model loaded or failed to; the window re-picks its page.
        tile_size_chosen(int): the settings chose this thumbnail edge.
        status(str): a short message for the status bar.
        error(str): something to show in the banner.
    """

    changed = Signal()
    tile_size_chosen = Signal(int)
    status = Signal(str)
    error = Signal(str)

    def __init__(self, engine: Engine, settings: Settings, ui: MainWidgets, act: MainActions, window: QWidget) -> None:
        super().__init__(window)
        self.engine = engine
        self.settings = settings
        self.ui = ui
        self.act = act
        self.window = window
        self.missing = False
        self.saved: list[SavedModel] = []
        self.teach_dialog: TeachDialog | None = None
        self.menu = QMenu(window)
        self.menu.aboutToShow.connect(self._menu_opening)
        engine.model_ready.connect(self._ready)
        engine.model_failed.connect(self._failed)
        engine.model_mismatch.connect(self._mismatch)
        engine.model_switched.connect(self._switched)

    def menu_button(self) -> QToolButton:
        """A toolbar button that opens the Model menu."""
        button = QToolButton()
        button.setText("Model")
        icons.bind(button, "image")
        button.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        button.setToolTip("The style model: the bundled one or one you taught; Teach Styles")
        button.setPopupMode(QToolButton.ToolButtonPopupMode.InstantPopup)
        button.setMenu(self.menu)
        return button

    def load(self) -> None:
        self.ui.model_label.setText("Loading model…")
        self.engine.load_model(self.settings.get("model"), self.settings.get("device"))

    # -- settings ------------------------------------------------------------------------------
    def settings_values(self) -> dict:
        return {k: self.settings.get(k) for k in SETTINGS_KEYS}

    def show_settings(self) -> None:
        dialog = SettingsDialog(self.settings_values(), parent=self.window)
        if dialog.exec():
            self.apply_settings(dialog.values())

    def apply_settings(self, values: dict) -> None:
        """Store ``values``; a new model or device loads at once."""
        old = self.settings_values()
        for key, value in values.items():
            self.settings.set(key, value)
        self.tile_size_chosen.emit(values.get("thumb_size", old["thumb_size"]))
        if (values.get("model"), values.get("device")) != (old["model"], old["device"]):
            self.load()

    def choose_model_file(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self.window, "Choose a model file", "",
                                              "ALADIN models (*.safetensors);;All files (*)")
        if path:
            self.apply_settings({"model": path})

    def use_baseline(self) -> None:
        self.apply_settings({"model": MODEL_BASELINE})

    # -- the Model menu -------------------------------------------------------------------------------
    def _menu_opening(self) -> None:
        """Show the models last seen at once; a fresh look at the folder refills the open menu."""
        self.fill_menu()
        run_in_thread(saved_models, pool=self.engine.pool, context=self, returned=self._saved_read)

    def _saved_read(self, saved: list[SavedModel]) -> None:
        if [m.path for m in saved] != [m.path for m in self.saved]:
            self.saved = saved
            if self.menu.isVisible():
                self.fill_menu()

    def choices(self) -> list[tuple[str, str]]:
        """``(label, model spec)`` of every model the menu offers: the bundled one, the taught ones,
        and the model chosen in Settings when it is another file."""
        found = [("Bundled model", MODEL_DEFAULT)]
        for model in self.saved:
            created = str(model.card.get("created", ""))[:10]
            found.append((f"{model.name}" + (f" (taught {created})" if created else ""), str(model.path)))
        current = self.settings.get("model")
        if current not in (MODEL_BASELINE, *(spec for _, spec in found)):
            found.append((Path(current).stem, current))
        return found

    def fill_menu(self) -> None:
        """Offer every model, the chosen one (or the one being switched to) checked, then Teach Styles."""
        menu = self.menu
        menu.clear()
        current = self.engine.switching_to or self.settings.get("model")
        free = not self.engine.indexing
        for label, spec in self.choices():
            action = menu.addAction(label, lambda s=spec: self.switch_to(s))
            action.setCheckable(True)
            action.setChecked(spec == current)
            action.setEnabled(free)
        if self.engine.switching_to is not None:
            menu.addAction("Re-embedding the library with the checked model…").setEnabled(False)
        elif not free:
            menu.addAction("Another model can be chosen when indexing has finished").setEnabled(False)
        menu.addSeparator()
        menu.addAction(self.act.teach)

    def switch_to(self, spec: str) -> None:
        """Use the model ``spec``: the library is re-embedded with it in the background first."""
        if spec == self.settings.get("model"):
            return
        if not self.engine.ready:  # nothing indexed with the current model can be open: just load this one
            self.apply_settings({"model": spec})
        elif self.engine.switch_model(spec):
            self.status.emit("Re-embedding the library with the chosen model; searches use the current one "
                             "until it is done.")
        else:
            self.error.emit("Another model can be chosen when indexing has finished.")

    def show_teach(self) -> None:
        """Open the Teach Styles dialog: the last one again while it runs or waits for a decision."""
        dialog = self.teach_dialog
        if dialog is None or (dialog.isHidden() and not dialog.controller.running
                              and dialog.controller.outcome is None):
            if dialog is not None:
                dialog.deleteLater()
            dialog = self.teach_dialog = TeachDialog(self.engine, self.window)
            dialog.controller.kept.connect(lambda path: self.status.emit(
                f"Saved the new model as {path}; re-embedding the library with it."))
        dialog.show()
        dialog.raise_()
        dialog.activateWindow()

    def shutdown(self) -> None:
        """Closing: a teaching run stops with the app, and a model not yet kept is discarded."""
        if self.teach_dialog is not None:
            self.teach_dialog.controller.shutdown()

    def _switched(self, spec: str) -> None:
        """The library now holds the new model's vectors: it becomes the chosen model, and loads."""
        self.settings.set("model", spec)
        self.ui.model_label.setText("Loading model…")

    # -- engine events ------------------------------------------------------------------------------
    def _ready(self, state: ModelState) -> None:
        self.missing = False
        banner, label = self.ui.banner, self.ui.model_label
        device = state.device_label or state.device
        if not state.trained:
            label.setText(f"⚠ untrained baseline · {device}")
            label.setToolTip("A random, untrained network: results do not reflect style. "
                             "Choose a trained model file in Settings.")
            banner.show_message(
                "Using the untrained baseline: a random network, so results barely reflect style. "
                "Choose a trained model file in Settings for real style search.", "warning",
                [("Settings…", self.show_settings)])
        else:
            label.setText(f"Model: {state.name} · {device}")
            label.setToolTip(state.spec or "bundled model")
            if banner.tone != "error":
                banner.hide()
        self.changed.emit()

    def _failed(self, message: str, no_trained: bool) -> None:
        self.missing = True
        self.ui.model_label.setText("No model")
        if no_trained:
            self.ui.banner.show_message(
                "No trained style model is installed, so images cannot be indexed or searched yet. "
                "Choose a model file in Settings, or try the untrained baseline (a random network, "
                "for testing only).", "warning",
                [("Choose Model File…", self.choose_model_file), ("Use Untrained Baseline", self.use_baseline)])
        else:
            self.ui.banner.show_message(f"The model could not be loaded: {message}", "error",
                                        [("Settings…", self.show_settings)])
        self.changed.emit()

    def _mismatch(self, exc: ModelMismatchError) -> None:
        if exc.updated:  # an update of the bundled default lands here with nothing chosen by the user
            work = ("it keeps the library's stored vectors, which the new version only re-weights, and takes "
                    "seconds" if exc.keeps_vectors else "every image is re-embedded in the background")
            text = ("The selected model has changed since this library was indexed (a new version of the "
                    "bundled default model, or its file was replaced), so the library's vectors no longer "
                    f"match it. Re-index to use the new version: {work}.")
        else:
            text = ("This library was indexed with a different model than the one selected, so it cannot be "
                    "searched with it. Index it again with the selected model (every image is re-embedded), "
                    "or switch back to the library's model in Settings.")
        self.ui.banner.show_message(text, "warning",
            [("Re-index With This Model", lambda: self.engine.index(None, switch_model=True)),
             ("Settings…", self.show_settings)])
