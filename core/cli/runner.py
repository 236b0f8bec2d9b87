"""The one place where a command-line tool turns known errors into exit codes.

``aladin``, ``python -m trainer`` and ``python -m trainer.corpora`` all run their
command through :func:`run_command`: a known problem
(:class:`core.errors.AladinError`: bad input, a busy library, a missing file) is one
line on stderr and exit status 2; Ctrl-C is exit status 130; anything else is a bug
and keeps its traceback (in the log, and on stderr from Python itself).
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable

from core.errors import AladinError

log = logging.getLogger("aladin")

EXIT_KNOWN_ERROR = 2
EXIT_INTERRUPTED = 130


def run_command(prog: str, command: Callable[[], int | None], interrupted: str = "interrupted") -> int:
    """Run ``command`` and return its exit status.

    Args:
        prog: the tool's name as the user typed it, the prefix of every message.
        command: the work; its return value (``None`` meaning 0) is the exit status.
        interrupted: what to tell the user after Ctrl-C (for example how to resume).
    """
    try:
        return int(command() or 0)
    except AladinError as exc:
        log.debug("known error", exc_info=True)
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return EXIT_KNOWN_ERROR
    except KeyboardInterrupt:
        print(f"{prog}: {interrupted}", file=sys.stderr)
        return EXIT_INTERRUPTED
