"""Child processes that die with their parent, so a crash or ``kill -9`` leaves nothing running.

A decoding worker waits on its task queue, whose write end it holds itself, so
it never sees end-of-file when its parent dies; the multiprocessing resource
tracker exits only once every holder of its pipe has. Killed with ``kill -9``,
``aladin index`` used to leave both running under init, two more processes per
crash. Every child process this program starts calls :func:`die_with_parent` first.

On Linux the kernel kills the child when its parent ends (``PR_SET_PDEATHSIG``).
That signal follows the *thread* that started the child, so a child must be
started from a thread that outlives it: the main thread, or a worker thread that
waits for the child, as :mod:`app.index_process` does. Elsewhere a daemon thread
waits on the parent's multiprocessing sentinel, which wakes when the parent exits.
"""

from __future__ import annotations

import ctypes
import multiprocessing
import os
import signal
import sys
import threading
from multiprocessing.process import BaseProcess

PR_SET_PDEATHSIG = 1  # <linux/prctl.h>
ORPHANED_EXIT = 1


def die_with_parent() -> None:
    """End this process as soon as the process that started it ends.

    Call it first in a multiprocessing child (a pool initializer, a process target).
    Nothing a child does needs a clean exit: a decoder holds only pixels, and the
    indexer commits each batch in one transaction, so committed work stays.

    Raises:
        RuntimeError: called outside a multiprocessing child (a bug).
    """
    parent = multiprocessing.parent_process()
    if parent is None:
        raise RuntimeError("die_with_parent() runs only in a multiprocessing child")
    if _kill_me_with_parent():
        # The parent may have died before the signal was armed: then init already adopted us.
        if os.getppid() != parent.pid:
            os._exit(ORPHANED_EXIT)
        return
    threading.Thread(target=exit_when_gone, args=(parent,), name="parent-watch", daemon=True).start()


def exit_when_gone(parent: BaseProcess) -> None:
    """Block until ``parent`` has exited, then end this process at once (the watch thread's body)."""
    parent.join()
    os._exit(ORPHANED_EXIT)


def _kill_me_with_parent() -> bool:
    """Ask Linux for SIGKILL when the parent ends; False where the kernel offers no such signal."""
    if not sys.platform.startswith("linux"):
        return False
    libc = ctypes.CDLL(None, use_errno=True)
    return libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) == 0
