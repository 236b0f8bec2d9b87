"""Options that several ``aladin`` commands share."""

from __future__ import annotations

import argparse


def add_model_options(parser: argparse.ArgumentParser) -> None:
    """``--model`` and ``--device``, shared by every command that runs the network."""
    parser.add_argument("--model", default=None, metavar="PATH|NAME",
                        help="model file, or a built-in name (untrained-s, untrained-l); default: the bundled model")
    parser.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"),
                        help="where to run the network (default: auto = CUDA if available)")
