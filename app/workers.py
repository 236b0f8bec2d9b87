"""One generic worker that runs a ``core`` job off the GUI thread (the superqt idea).

A job is a plain callable. If it returns a generator, each yielded value is
emitted as ``progress`` and the abort flag is checked between yields, so a long
``core`` job (indexing) is cancellable without knowing anything about Qt. The
generator's return value, or a plain callable's result, arrives as ``returned``.
Signals are queued across threads, so slots run on the GUI thread.
"""

from __future__ import annotations

import inspect
import logging
import threading
from collections.abc import Callable
from functools import partial
from typing import Any

import shiboken6
from PySide6.QtCore import QObject, QRunnable, QThreadPool, Signal

log = logging.getLogger(__name__)


class WorkerSignals(QObject):
    """Signals:
        progress(object): one value yielded by a generator job.
        returned(object): the job's result (a generator's return value).
        errored(object): the exception the job raised.
        aborted(): the job stopped early because :meth:`Worker.abort` was called.
        finished(): always last, whatever happened.
    """

    progress = Signal(object)
    returned = Signal(object)
    errored = Signal(object)
    aborted = Signal()
    finished = Signal()


class Worker(QRunnable):
    """Runs ``func(*args, **kwargs)`` on a thread pool and reports by signals.

    The worker keeps itself alive (``_live``) until the GUI thread has received its
    ``finished``: Python would otherwise collect a started runnable whose only
    reference was local. The release runs on the GUI thread, after every signal the
    job queued there: released in the pool thread instead, the last reference went
    as soon as ``run`` returned and deleted ``signals`` under the events still queued
    from it, and the GUI thread crashed delivering them (a segfault in about one
    full test run in three).
    """

    _live: dict[int, "Worker"] = {}
    _live_lock = threading.Lock()

    def __init__(self, func: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
        super().__init__()
        self.setAutoDelete(False)
        self.func, self.args, self.kwargs = func, args, kwargs
        self.signals = WorkerSignals()
        self._abort = threading.Event()
        self.done = threading.Event()

    def abort(self) -> None:
        """Ask the job to stop at its next yield; committed work stays committed."""
        self._abort.set()

    @property
    def abort_requested(self) -> bool:
        return self._abort.is_set()

    def start(self, pool: QThreadPool | None = None) -> "Worker":
        """Run the job; connect every slot before this, so the release below is the last slot called."""
        with Worker._live_lock:
            Worker._live[id(self)] = self
        # A partial of the key, not a bound method: no reference cycle keeps the worker past its release.
        self.signals.finished.connect(partial(_release, id(self)))
        (pool or QThreadPool.globalInstance()).start(self)
        return self

    def run(self) -> None:
        sig = self.signals
        try:
            result = self.func(*self.args, **self.kwargs)
            if inspect.isgenerator(result):
                result = self._drive(result)
            if self._abort.is_set():
                sig.aborted.emit()
            else:
                sig.returned.emit(result)
        except Exception as exc:  # reported to the GUI, which decides known vs bug
            log.debug("worker job %s failed", getattr(self.func, "__name__", self.func), exc_info=True)
            sig.errored.emit(exc)
        finally:
            self.done.set()
            sig.finished.emit()

    def _drive(self, gen) -> Any:
        try:
            while True:
                if self._abort.is_set():
                    gen.close()
                    return None
                value = next(gen)
                self.signals.progress.emit(value)
        except StopIteration as stop:
            return stop.value


def _release(key: int) -> None:
    """Drop the keep-alive reference of the worker ``key`` (on the GUI thread: see :class:`Worker`)."""
    with Worker._live_lock:
        Worker._live.pop(key, None)


def guarded(context: QObject | None, slot: Callable) -> Callable:
    """``slot``, skipped once ``context`` is destroyed.

    A result can arrive after the window or object that asked for it was closed;
    Qt's connect-with-context does this for C++ functors, this does it for lambdas.
    """
    if context is None:
        return slot

    def call(*args: Any) -> None:
        if shiboken6.isValid(context):
            slot(*args)

    return call


def run_in_thread(func: Callable[..., Any], *args: Any, pool: QThreadPool | None = None,
                  progress: Callable | None = None, returned: Callable | None = None,
                  errored: Callable | None = None, finished: Callable | None = None,
                  aborted: Callable | None = None, context: QObject | None = None, **kwargs: Any) -> Worker:
    """Start a :class:`Worker` with the given slots connected (guarded by ``context`` when given)."""
    worker = Worker(func, *args, **kwargs)
    for name, slot in (("progress", progress), ("returned", returned), ("errored", errored),
                       ("finished", finished), ("aborted", aborted)):
        if slot is not None:
            getattr(worker.signals, name).connect(guarded(context, slot))
    return worker.start(pool)
