"""Every user option, declared once with its default (the idea of Picard's options.py).

Values live in an INI file in the user's config folder (:func:`core.paths.config_file`,
so ``XDG_CONFIG_HOME`` moves it, which the tests rely on). Reading an option that
was never written, or that holds garbage from an older version, gives the
declared default rather than an exception.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PySide6.QtCore import QByteArray, QSettings

from core.expansion import EXPAND_DEFAULT
from core.paths import config_file

DEVICES = ("auto", "cpu")  # plus "cuda:N" for each detected GPU
MODEL_DEFAULT = ""  # empty: the bundled default model
MODEL_BASELINE = "untrained-s"
THUMB_MIN, THUMB_MAX = 72, 320


@dataclass(frozen=True)
class Option:
    key: str
    default: Any
    doc: str


OPTIONS: dict[str, Option] = {o.key: o for o in (
    Option("model", MODEL_DEFAULT, "model file path, or a built-in name; empty means the bundled default"),
    Option("device", "auto", "auto, cpu, or cuda:N"),
    Option("thumb_size", 160, "tile edge in the results grid, in pixels"),
    Option("results_k", 200, "how many results a search returns"),
    Option("exclude_query_folders", False, "hide results from the folders the query images are in"),
    Option("filter_root", "", "restrict results to this library root; empty means all"),
    Option("filter_folder", "", "restrict results to this folder; empty means anywhere"),
    Option("strong_only", False, "show only strong matches (calibrated score 75 or more, core.calibration.STRONG)"),
    Option("expand_results", EXPAND_DEFAULT, "rank results after the first five by the query and those five together "
                                   "(core.expansion: the list follows the query's style through other subjects)"),
    Option("show_scores", True, "show each result's calibrated score as a badge on its tile"),
    Option("watch_paused", False, "stop picking up changes in the library folders until resumed"),
    Option("rescan_on_start", True, "rescan the watched folders once at start, for what changed while closed"),
    Option("library_sort", "name", "the library view's order: name, modified or size (core.library.BROWSE_SORTS)"),
    Option("moodboard", "[]", "the last moodboard, JSON: [{path, weight, negative}]"),
    Option("moodboard_name", "", "the saved name of the last moodboard, if it had one"),
    Option("window/geometry", QByteArray(), "main window geometry (Qt's saveGeometry)"),
    Option("window/state", QByteArray(), "main window dock and toolbar state (Qt's saveState)"),
    Option("window/splitter", QByteArray(), "moodboard/results splitter state"),
)}


class Settings:
    """Typed access to :data:`OPTIONS` over one QSettings file."""

    def __init__(self, path: str | Path | None = None) -> None:
        self.path = Path(path) if path is not None else config_file()
        self._qs = QSettings(str(self.path), QSettings.Format.IniFormat)

    def get(self, key: str) -> Any:
        option = OPTIONS[key]
        raw = self._qs.value(key, None)
        if raw is None:
            return option.default
        default = option.default
        try:
            if isinstance(default, bool):
                return raw if isinstance(raw, bool) else str(raw).lower() in ("1", "true", "yes")
            if isinstance(default, int):
                return int(raw)
            if isinstance(default, QByteArray):
                return raw if isinstance(raw, QByteArray) else QByteArray(raw)
            return str(raw)
        except (TypeError, ValueError):
            return default

    def set(self, key: str, value: Any) -> None:
        if key not in OPTIONS:
            raise KeyError(key)
        self._qs.setValue(key, value)

    def sync(self) -> None:
        self._qs.sync()

    # The moodboard is a list of plain dicts; JSON keeps the INI file readable.
    def moodboard(self) -> list[dict]:
        try:
            items = json.loads(self.get("moodboard"))
        except (TypeError, ValueError):
            return []
        return [i for i in items if isinstance(i, dict) and isinstance(i.get("path"), str)] \
            if isinstance(items, list) else []

    def set_moodboard(self, items: list[dict]) -> None:
        self.set("moodboard", json.dumps(items))
