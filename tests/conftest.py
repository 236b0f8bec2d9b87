"""Shared test setup: offscreen Qt, no user folders touched, small generated images."""

from __future__ import annotations

import os
import sys
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

# bench/ holds developer tools that are not installed with the package; their tests import ``bench.*``.
ROOT = str(Path(__file__).resolve().parent.parent)
if ROOT not in sys.path:
    sys.path.append(ROOT)

import contextlib

import numpy as np
import pytest
import torch
from PIL import Image


@pytest.fixture(scope="session", autouse=True)
def _session_user_dirs(tmp_path_factory):
    """Module- and session-scoped fixtures run before the per-test isolation below, so the whole session
    points the per-user folders at a temp folder too (a module fixture that trains writes a pixel cache)."""
    base = tmp_path_factory.mktemp("session-userdirs")
    with pytest.MonkeyPatch.context() as patch:
        for name, sub in (("ALADIN_LOG_DIR", "log"), ("ALADIN_LIBRARY", "library"), ("ALADIN_CACHE_DIR", "cache")):
            patch.setenv(name, str(base / sub))
        yield


@pytest.fixture(autouse=True)
def _isolated_user_dirs(tmp_path_factory, monkeypatch):
    """Logs, caches and the default library go to a temp folder, never the real home."""
    base = tmp_path_factory.mktemp("userdirs")
    monkeypatch.setenv("ALADIN_LOG_DIR", str(base / "log"))
    monkeypatch.setenv("ALADIN_LIBRARY", str(base / "library"))
    monkeypatch.setenv("ALADIN_CACHE_DIR", str(base / "cache"))
    monkeypatch.setenv("XDG_DATA_HOME", str(base / "data"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(base / "cache"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(base / "config"))
    monkeypatch.setenv("XDG_STATE_HOME", str(base / "state"))


@pytest.fixture(scope="session", autouse=True)
def _qt_exits_cleanly():
    """pytest-qt's QApplication lives until the interpreter exits, and never emits aboutToQuit: hand the
    clipboard's Python-made data to Qt as the app does on quit, or Qt's exit handlers crash PySide."""
    yield
    # Only a session that imported Qt has an application to close (the GPU machine has no PySide6 at all).
    widgets = sys.modules.get("PySide6.QtWidgets")
    if widgets is not None and widgets.QApplication.instance() is not None:
        from app.mainwindow.desktop import release_clipboard

        release_clipboard()


@pytest.fixture(autouse=True)
def _restore_torch_threads():
    """Code under test may set torch's thread count (the embedder does); the next test must not inherit it."""
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


@contextlib.contextmanager
def deterministic_torch(threads: int = 1, seed: int = 0):
    """One thread count and seed for a block that trains: float sums depend on how work is split across
    threads, and 40 steps amplify that (P@1 0.381 with 1 thread, 0.438 with 2), so a training test fixes both."""
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    torch.manual_seed(seed)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@pytest.fixture
def training_torch():
    """A test that trains runs with one torch thread and a fixed global seed, whatever ran before it."""
    with deterministic_torch():
        yield


def make_image(path, size=(64, 48), seed=0, mode="RGB", fmt=None, **save_kwargs):
    """A small random-noise image in ``mode`` written to ``path``."""
    rng = np.random.default_rng(seed)
    arr = (rng.random((size[1], size[0], 3)) * 255).astype(np.uint8)
    img = Image.fromarray(arr, "RGB")
    if mode != "RGB":
        img = img.convert(mode)
    img.save(path, format=fmt, **save_kwargs)
    return path
