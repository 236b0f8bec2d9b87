"""The ``aladin`` command line: one sub-module per command group, each with ``register``.

``core`` never imports the GUI: the console script's entry point lives above both
layers (:mod:`app.launcher`) and hands the GUI in as a plain callable, so the
``gui`` command (and ``aladin`` with no command) exists only when a GUI was given.
"""

from __future__ import annotations

import argparse
import multiprocessing
from collections.abc import Callable, Sequence

from core import __version__
from core.cli import embed, library
from core.cli.runner import run_command
from core.logs import setup_logging

# Starts the desktop app from the parsed arguments (``args.library`` may be None).
GuiStarter = Callable[[argparse.Namespace], int]

COMMAND_MODULES = (embed, library)


def build_parser(gui: GuiStarter | None = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="aladin", description="Find artwork by visual style.")
    parser.add_argument("--version", action="version", version=f"aladin {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="print debug messages on stderr")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=gui is None)
    if gui is not None:
        parser.set_defaults(func=gui)
        start = sub.add_parser("gui", help="start the desktop app (also: aladin with no command)")
        start.add_argument("--library", default=None, metavar="DIR",
                           help="library folder (default: the user data folder)")
        start.set_defaults(func=gui)
    for module in COMMAND_MODULES:
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None, gui: GuiStarter | None = None) -> int:
    """Run one ``aladin`` command; ``gui`` starts the desktop app when no command is given."""
    # A frozen (PyInstaller) build must let decoder and indexer child processes start here.
    multiprocessing.freeze_support()
    args = build_parser(gui).parse_args(argv)
    setup_logging(args.verbose)
    return run_command("aladin", lambda: args.func(args))
