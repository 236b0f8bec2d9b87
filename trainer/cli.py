"""``python -m trainer``: train, finetune, eval, crossval, gallery, export, and data preparation.

``main(argv)`` takes an argument list so tests run whole commands in-process.
Known problems (:class:`core.errors.AladinError`) become one line on stderr and
exit status 2, as in the ``aladin`` command.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from core.cli.runner import run_command
from core.logs import setup_logging
from trainer import crossval, evaluate, export, gallery, prepare, train

COMMAND_MODULES = (train, evaluate, crossval, export, prepare, gallery)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m trainer",
                                     description="Train, fine-tune, evaluate and export ALADIN style models.")
    parser.add_argument("-v", "--verbose", action="store_true", help="print info messages on stderr")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for module in COMMAND_MODULES:
        module.register(sub)
    return parser


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    return build_parser().parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    setup_logging(args.verbose)
    return run_command("trainer", lambda: args.func(args), interrupted="interrupted (resume with --resume)")
