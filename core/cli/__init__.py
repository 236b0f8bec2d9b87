"""The ``aladin`` command line: one sub-module per command group, each with ``register``.

Known errors (:class:`core.errors.AladinError`) become a single line on stderr
and exit status 2; anything else is a bug and keeps its traceback in the log.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import multiprocessing
import sys
from collections.abc import Sequence

from core import __version__
from core.errors import AladinError
from core.logs import setup_logging

log = logging.getLogger("aladin")

# Each module defines ``register(subparsers)`` and sets ``func`` on its parsers.
COMMAND_MODULES = ("core.cli.embed", "core.cli.library")


def add_model_options(parser: argparse.ArgumentParser) -> None:
    """``--model`` and ``--device``, shared by every command that runs the network."""
    parser.add_argument("--model", default=None, metavar="PATH|NAME",
                        help="model file, or a built-in name (untrained-s, untrained-l); default: the bundled model")
    parser.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"),
                        help="where to run the network (default: auto = CUDA if available)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="aladin", description="Find artwork by visual style.")
    parser.add_argument("--version", action="version", version=f"aladin {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="print debug messages on stderr")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    gui = sub.add_parser("gui", help="start the desktop app (also: aladin with no command)")
    gui.add_argument("--library", default=None, metavar="DIR", help="library folder (default: the user data folder)")
    gui.set_defaults(func=run_gui)
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def run_gui(args: argparse.Namespace) -> int:
    """The GUI lives in ``app``; it is loaded by name so that ``core`` never imports Qt."""
    try:
        gui = importlib.import_module("app.main")
    except ImportError as exc:
        raise AladinError(f"the desktop app is not available ({exc}); is PySide6 installed?") from exc
    library = getattr(args, "library", None)
    return gui.main(["--library", str(library)] if library else [])


def main(argv: Sequence[str] | None = None) -> int:
    # A frozen (PyInstaller) build must let decoder and indexer child processes start here.
    multiprocessing.freeze_support()
    args = build_parser().parse_args(argv)
    setup_logging(args.verbose)
    func = getattr(args, "func", run_gui)
    try:
        return int(func(args) or 0)
    except AladinError as exc:
        log.debug("known error", exc_info=True)
        print(f"aladin: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("aladin: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
