"""Which style model the app uses: loading it, saying so, and the settings that choose it.

The engine loads models in a worker; this part shows the outcome in the
status bar and, when the user has to act (no trained model installed, an
untrained baseline, a library made with another model), in the banner with
the buttons that resolve it.
"""

from __future__ import annotations

from PySide6.QtCore import QObject, Signal
from PySide6.QtWidgets import QFileDialog, QWidget

from app.dialogs import SettingsDialog
from app.engine import Engine, ModelState
from app.mainwindow.widgets import MainWidgets
from app.options import MODEL_BASELINE, Settings

SETTINGS_KEYS = ("device", "model", "thumb_size")


class ModelController(QObject):
    """Loads the chosen model and runs the Settings dialog.

    Attributes:
        missing: no model could be loaded; the library waits for one.

    Signals:
        changed(): a model loaded or failed to; the window re-picks its page.
        tile_size_chosen(int): the settings chose this thumbnail edge.
    """

    changed = Signal()
    tile_size_chosen = Signal(int)

    def __init__(self, engine: Engine, settings: Settings, ui: MainWidgets, window: QWidget) -> None:
        super().__init__(window)
        self.engine = engine
        self.settings = settings
        self.ui = ui
        self.window = window
        self.missing = False
        engine.model_ready.connect(self._ready)
        engine.model_failed.connect(self._failed)
        engine.model_mismatch.connect(self._mismatch)

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

    def _mismatch(self, message: str) -> None:
        self.ui.banner.show_message(
            "This library was indexed with a different model than the one selected, so it cannot be "
            "searched with it. Index it again with the selected model (every image is re-embedded), "
            "or switch back to the library's model in Settings.", "warning",
            [("Re-index With This Model", lambda: self.engine.index(None, switch_model=True)),
             ("Settings…", self.show_settings)])
