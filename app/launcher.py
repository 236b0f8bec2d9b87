"""The ``aladin`` console script: the command line from ``core``, the desktop app from ``app``.

This is the one module that may import both layers, so it is where the entry point
lives: the command modules are imported statically (tools such as import-linter and
PyInstaller see them), and Qt is imported only when the GUI actually starts.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from core import cli


def start_gui(args: argparse.Namespace) -> int:
    """``aladin gui [--library DIR]`` and ``aladin`` with no command."""
    from app import main as gui

    library = getattr(args, "library", None)
    return gui.main(["--library", str(library)] if library else [])


def main(argv: Sequence[str] | None = None) -> int:
    return cli.main(argv, gui=start_gui)


if __name__ == "__main__":
    sys.exit(main())
