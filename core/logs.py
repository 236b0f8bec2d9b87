"""Logging to the user's log folder; the terminal only sees warnings and errors."""

from __future__ import annotations

import logging
import logging.handlers
from pathlib import Path

from core.paths import log_dir


def setup_logging(verbose: bool = False) -> Path | None:
    """Full detail to a rotating file; WARNING and up to stderr as one-line messages.

    Returns the log file, or None when the log folder cannot be written (a
    read-only home must not stop the program).
    """
    root = logging.getLogger()
    root.setLevel(logging.DEBUG)
    for handler in list(root.handlers):
        if getattr(handler, "_aladin", False):
            root.removeHandler(handler)
    console = logging.StreamHandler()
    console.setLevel(logging.DEBUG if verbose else logging.WARNING)
    console.setFormatter(logging.Formatter("aladin: %(levelname)s: %(message)s"))
    console._aladin = True
    root.addHandler(console)
    path = log_dir() / "aladin.log"
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handler = logging.handlers.RotatingFileHandler(path, maxBytes=2_000_000, backupCount=3, encoding="utf-8")
    except OSError:
        return None
    handler.setLevel(logging.DEBUG)
    handler.setFormatter(logging.Formatter("%(asctime)s %(process)d %(name)s %(levelname)s %(message)s"))
    handler._aladin = True
    root.addHandler(handler)
    return path
