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

# The hidden command that runs the trainer (see :func:`run_trainer`); the app's teach pipeline names it too.
TRAINER_COMMAND = "trainer"


def start_gui(args: argparse.Namespace) -> int:
    """``aladin gui [--library DIR] [IMAGE...]``, ``aladin IMAGE...`` and ``aladin`` with no command."""
    from app import main as gui

    library = getattr(args, "library", None)
    images = getattr(args, "images", [])
    return gui.main((["--library", str(library)] if library else []) + (["--", *images] if images else []))


def run_trainer(argv: Sequence[str]) -> int:
    """``aladin trainer COMMAND ...``, a hidden pass-through to ``python -m trainer COMMAND ...``.

    The app fine-tunes in a child process (see :mod:`app.teach.pipeline`); a PyInstaller
    bundle has no ``python -m``, so it runs its own executable with this command instead.
    """
    try:
        from trainer.cli import main as trainer_main
    except ModuleNotFoundError as exc:
        if exc.name != "trainer":
            raise
        print("trainer: error: this build of aladin leaves the trainer out, so it cannot teach styles",
              file=sys.stderr)
        return 2
    return trainer_main(argv)


def main(argv: Sequence[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == [TRAINER_COMMAND]:
        return run_trainer(argv[1:])
    from app import desktop_entry
    from core import cli

    return cli.main(argv, gui=start_gui, extra_commands=(desktop_entry.register,))


if __name__ == "__main__":
    sys.exit(main())
