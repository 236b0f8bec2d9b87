"""Per-user folders, in one place: every other module asks here.

Each folder is read at call time, not import time, so tests (and users) can
redirect it with an environment variable after the program has started.
"""

from __future__ import annotations

import os
from pathlib import Path

import platformdirs

APP_NAME = "aladin"

LIBRARY_ENV = "ALADIN_LIBRARY"
LOG_ENV = "ALADIN_LOG_DIR"
CACHE_ENV = "ALADIN_CACHE_DIR"


def data_dir() -> Path:
    """Where the user's own data lives (the default library, pasted images)."""
    return Path(platformdirs.user_data_dir(APP_NAME))


def library_dir() -> Path:
    """``$ALADIN_LIBRARY``, else ``<data dir>/library``."""
    env = os.environ.get(LIBRARY_ENV)
    return Path(env) if env else data_dir() / "library"


def pasted_dir() -> Path:
    """Images pasted from the clipboard are kept here, named by content."""
    return data_dir() / "pasted"


def log_dir() -> Path:
    """``$ALADIN_LOG_DIR``, else the per-user log folder."""
    return Path(os.environ.get(LOG_ENV) or platformdirs.user_log_dir(APP_NAME))


def cache_dir() -> Path:
    """``$ALADIN_CACHE_DIR``, else the per-user cache folder: anything here can be deleted and rebuilt."""
    return Path(os.environ.get(CACHE_ENV) or platformdirs.user_cache_dir(APP_NAME))


def config_file() -> Path:
    """The settings file (an INI file, written by the GUI)."""
    return Path(platformdirs.user_config_dir(APP_NAME)) / "aladin.ini"
