"""The ``aladin`` console script: the command line from ``core``, the desktop app from ``app``.

This is the one module that may import both layers, so it is where the entry point
lives. Both are plain import statements (import-linter and PyInstaller see them), made
inside the functions that need them: decoder and indexing processes are spawned, and a
spawned child re-imports the console script, so this module must cost nothing to import.
With ``core.cli`` imported at the top, every decoder process loaded torch (about 515 MB
each instead of 75 MB).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence


def start_gui(args: argparse.Namespace) -> int:
    """``aladin gui [--library DIR]`` and ``aladin`` with no command."""
    from app import main as gui

    library = getattr(args, "library", None)
    return gui.main(["--library", str(library)] if library else [])


def main(argv: Sequence[str] | None = None) -> int:
    from core import cli

    return cli.main(argv, gui=start_gui)


if __name__ == "__main__":
    sys.exit(main())
