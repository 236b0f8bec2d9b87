"""Printing a command's results: standard output that cannot take them is a known error, not a traceback."""

from __future__ import annotations

import sys
from collections.abc import Iterable

from core.errors import AladinError


def print_lines(lines: Iterable[str]) -> None:
    """Print ``lines`` on standard output and flush it, so a failed write is reported here, once.

    Raises:
        AladinError: standard output cannot be written (``> /dev/full``, a full disk).
    """
    try:
        for line in lines:
            print(line)
        sys.stdout.flush()
    except OSError as exc:
        raise AladinError(f"cannot write the results to standard output: {exc.strerror}") from exc
