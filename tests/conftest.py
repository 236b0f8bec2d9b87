"""Shared test setup: offscreen Qt, no user folders touched, small generated images."""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import numpy as np
import pytest
from PIL import Image


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


def make_image(path, size=(64, 48), seed=0, mode="RGB", fmt=None, **save_kwargs):
    """A small random-noise image in ``mode`` written to ``path``."""
    rng = np.random.default_rng(seed)
    arr = (rng.random((size[1], size[0], 3)) * 255).astype(np.uint8)
    img = Image.fromarray(arr, "RGB")
    if mode != "RGB":
        img = img.convert(mode)
    img.save(path, format=fmt, **save_kwargs)
    return path
