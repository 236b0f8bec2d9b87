"""The ``aladin`` command line: one sub-module per command group, each with ``register``.

``core`` never imports the GUI: the console script's entry point lives above both
layers (:mod:`app.launcher`) and hands the GUI in as a plain callable, so the
``gui`` command (and ``aladin`` with no command, or with only paths) exists only when
a GUI was given. Commands that belong to the app (registering it with the desktop)
come the same way, as ``register`` functions the launcher passes in.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import sys
from collections.abc import Callable, Sequence

from core import __version__
from core.cli import embed, library
from core.cli.runner import run_command
from core.logs import setup_logging

# Starts the desktop app from the parsed arguments (``args.library`` and ``args.images`` may be absent).
GuiStarter = Callable[[argparse.Namespace], int]
# Adds one or more commands to the ``aladin`` parser, like the command modules' ``register``.
Registrar = Callable[[argparse._SubParsersAction], None]

COMMAND_MODULES = (embed, library)


def build_parser(gui: GuiStarter | None = None, extra_commands: Sequence[Registrar] = ()) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="aladin", description="Find artwork by visual style.")
    parser.add_argument("--version", action="version", version=f"aladin {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="print debug messages on stderr")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=gui is None)
    if gui is not None:
        parser.set_defaults(func=gui)
        start = sub.add_parser("gui", help="start the desktop app (also: aladin with no command, aladin IMAGE...)")
        start.add_argument("--library", default=None, metavar="DIR",
                           help="library folder (default: the user data folder)")
        start.add_argument("images", nargs="*", metavar="IMAGE", help="images to put on the moodboard")
        start.set_defaults(func=gui)
    for register in (*(module.register for module in COMMAND_MODULES), *extra_commands):
        register(sub)
    return parser


def _with_gui_command(argv: Sequence[str], commands: Sequence[str]) -> list[str]:
    """``aladin IMAGE...`` means ``aladin gui IMAGE...``: a file manager's "Open with" runs exactly that.

    The first argument that is not an option counts as a path when it is not a command and
    names something that exists, or is absolute (a file manager passes absolute paths, and
    one deleted meanwhile still deserves the app's message rather than "invalid choice").
    """
    argv = list(argv)
    first = next((i for i, arg in enumerate(argv) if not arg.startswith("-")), None)
    if first is not None and argv[first] not in commands and (
            os.path.isabs(argv[first]) or os.path.exists(argv[first])):
        argv.insert(first, "gui")
    return argv


def _command_names(parser: argparse.ArgumentParser) -> list[str]:
    return [name for action in parser._actions if isinstance(action, argparse._SubParsersAction)
            for name in action.choices]


def main(argv: Sequence[str] | None = None, gui: GuiStarter | None = None,
         extra_commands: Sequence[Registrar] = ()) -> int:
    """Run one ``aladin`` command; ``gui`` starts the desktop app when no command is given.

    Args:
        argv: the arguments (default: the process's).
        gui: starts the desktop app; without it there is no ``gui`` command.
        extra_commands: ``register`` functions of commands from the layer above (the app's own).
    """
    # A frozen (PyInstaller) build must let decoder and indexer child processes start here.
    multiprocessing.freeze_support()
    parser = build_parser(gui, extra_commands)
    argv = sys.argv[1:] if argv is None else argv
    if gui is not None:
        argv = _with_gui_command(argv, _command_names(parser))
    args = parser.parse_args(argv)
    setup_logging(args.verbose)
    return run_command("aladin", lambda: args.func(args))
