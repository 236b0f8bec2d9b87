"""Indexing in a child process, so the GUI process never shares its GIL with the indexer.

A thread in the GUI process would compete with the indexer for Python's GIL:
scanning, hashing and committing are pure Python, and a low-priority indexer
thread that holds the GIL while the OS runs other work stalls the event loop
(the probe in bench/gui_responsiveness.py measured 100-450 ms stalls). A child
process has its own interpreter; it runs ``core.indexer.index_folders`` at low
priority and sends each progress record back through a queue. The GUI side is
a plain generator, so the app's generic worker drives it like any core job.

This module imports no Qt: the child process loads only ``core``.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import queue
import time
from collections.abc import Generator
from pathlib import Path

from core.errors import AladinError
from core.lifetime import die_with_parent

log = logging.getLogger(__name__)

NICE = 10
POLL_S = 0.1
# How long quitting waits for an indexing process that has answered to finish tearing down.
EXIT_WAIT_S = 10.0


def child_main(library_dir: str, folders: list[str], model_spec: str, device: str, options: dict,
               cancel, out) -> None:
    """Runs in the child: open the library and model, index, report every step on ``out``.

    The child is not a daemon (the indexer starts its own decoding processes), so
    it dies with the app by itself (:func:`core.lifetime.die_with_parent`), and its
    decoders with it; every batch it committed stays.
    """
    die_with_parent()
    try:
        os.nice(NICE)
    except (AttributeError, OSError):  # Windows has no nice(); the child still works
        pass
    try:
        from core.library import Library
        from core.logs import setup_logging

        setup_logging()
        with Library.open(library_dir) as library:  # before torch loads: a bad library fails fast
            from core.embedder import Embedder
            from core.indexer import index_folders
            from core.modelfile import load_model

            embedder = Embedder(load_model(model_spec or None), device=device)
            summary = yield_all(index_folders(library, [Path(f) for f in folders], embedder,
                                              cancel=cancel.is_set, **options), out)
        out.put(("done", summary))
    except AladinError as exc:
        out.put(("error", type(exc).__name__, str(exc)))
    except BaseException as exc:  # a bug: keep the traceback in the child's log
        log.exception("indexing process failed")
        out.put(("bug", type(exc).__name__, str(exc)))


def yield_all(gen, out):
    """Forward each progress record; return the generator's result."""
    try:
        while True:
            out.put(("progress", next(gen)))
    except StopIteration as stop:
        return stop.value


def known_error(name: str, message: str) -> AladinError:
    """Rebuild a core error by class name when it takes a message, else a plain AladinError."""
    import core.errors as errors

    cls = getattr(errors, name, AladinError)
    try:
        return cls(message) if isinstance(cls, type) and issubclass(cls, AladinError) else AladinError(message)
    except TypeError:  # e.g. ImageError(path, reason)
        return AladinError(message)


def index_in_process(library_dir: str, folders: list[str], model_spec: str, device: str,
                     cancel_requested, options: dict | None = None) -> Generator:
    """GUI side: start the child, yield its progress records, return its ``IndexSummary``.

    ``cancel_requested()`` is polled between records; it makes the child stop
    after its batch in flight, committing what it has, like the in-process indexer.
    The child dies with the thread that runs this generator (on Linux, see
    :mod:`core.lifetime`), which is why the generator waits for it until it answers.

    Raises:
        AladinError: the child reported a known error, or died.
    """
    ctx = multiprocessing.get_context("spawn")
    cancel = ctx.Event()
    out = ctx.Queue()
    proc = ctx.Process(target=child_main, name="aladin-indexer",
                       args=(library_dir, folders, model_spec, device, options or {}, cancel, out))
    proc.start()
    answered = False
    try:
        while True:
            if cancel_requested() and not cancel.is_set():
                cancel.set()
            try:
                message = out.get(timeout=POLL_S)
            except queue.Empty:
                if not proc.is_alive():
                    raise AladinError(f"the indexing process stopped unexpectedly (exit code {proc.exitcode}); "
                                      "everything committed so far is kept") from None
                continue
            kind = message[0]
            answered = kind != "progress"
            if kind == "progress":
                yield message[1]
            elif kind == "done":
                return message[1]
            elif kind == "error":
                raise known_error(message[1], message[2])
            else:
                raise RuntimeError(f"indexing process failed: {message[1]}: {message[2]}")
    finally:
        if not answered:  # stopped early: let the child commit its batch and exit
            cancel.set()
            proc.join(timeout=30)
            if proc.is_alive():
                proc.terminate()
                proc.join(timeout=5)
        # A child that answered has closed the library and released its lock; it only has
        # its interpreter to tear down (seconds, with torch), so it is not waited for here:
        # should this thread end first, the kill that follows costs nothing.
        out.close()


def wait_for_children(timeout: float = EXIT_WAIT_S) -> bool:
    """Wait until the indexing processes this app started have exited (and reap them).

    A child that has answered is not waited for while the app runs (see :func:`index_in_process`);
    at quit it is, so the app leaves no process behind it, not even one still unloading torch.
    Returns False if one is still running after ``timeout`` (it dies with the app on Linux anyway).
    """
    deadline = time.monotonic() + timeout
    while multiprocessing.active_children():  # also joins the ones that have ended
        if time.monotonic() >= deadline:
            return False
        time.sleep(POLL_S)
    return True

