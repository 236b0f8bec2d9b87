"""``python -m trainer``: train, finetune, eval, gallery, export, and data preparation.

``main(argv)`` takes an argument list so tests run whole commands in-process.
Known problems (:class:`core.errors.AladinError`) become one line on stderr and
exit status 2, as in the ``aladin`` command.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence

from core.errors import AladinError
from core.logs import setup_logging

log = logging.getLogger("trainer")

COMMAND_MODULES = ("trainer.train", "trainer.evaluate", "trainer.export", "trainer.prepare",
                   "trainer.gallery")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m trainer",
                                     description="Train, fine-tune, evaluate and export ALADIN style models.")
    parser.add_argument("-v", "--verbose", action="store_true", help="print info messages on stderr")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    return build_parser().parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    setup_logging(args.verbose)
    try:
        return int(args.func(args) or 0)
    except AladinError as exc:
        log.debug("known error", exc_info=True)
        print(f"trainer: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("trainer: interrupted (resume with --resume)", file=sys.stderr)
        return 130
