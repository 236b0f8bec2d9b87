"""Options that several ``aladin`` commands share."""

from __future__ import annotations

import argparse

from core.errors import AladinError


def add_model_options(parser: argparse.ArgumentParser) -> None:
    """``--model`` and ``--device``, shared by every command that runs the network."""
    parser.add_argument("--model", default=None, metavar="PATH|NAME",
                        help="model file, or a built-in name (untrained-s, untrained-l); default: the bundled model")
    parser.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"),
                        help="where to run the network (default: auto = CUDA if available)")


def check_batch_options(args: argparse.Namespace) -> None:
    """``--batch-size`` and ``--workers``, shared by every command that embeds images.

    Raises:
        AladinError: a batch of fewer than one image, or a negative number of decoding processes.
    """
    if args.batch_size < 1:
        raise AladinError("--batch-size must be at least 1")
    if args.workers is not None and args.workers < 0:
        raise AladinError(f"--workers must be 0 or more (0 decodes in this process), got {args.workers}")
