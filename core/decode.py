"""Parallel image decoding that runs ahead of the model.

Decoding (JPEG, PNG, resize) is CPU work in Pillow that holds the GIL for long
stretches, so it runs in worker processes. Workers receive a few paths at a
time (``TASK`` or fewer, so the last images of a run are spread over every
worker) and return uint8 arrays; at most ``prefetch`` tasks are in flight so
memory stays bounded however large the collection is, while the main process
runs the model on the previous chunk. Workers die with the process that started
them (:mod:`core.lifetime`), so a crashed or killed indexer leaves none behind.

A worker that is asked for content hashes reads each file once and hashes and
decodes those same bytes: the indexer needs both, and a second read of a 4 MB
photo costs about a millisecond of the main process's time.
"""

from __future__ import annotations

import hashlib
import math
import multiprocessing
import os
import signal
from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass
from itertools import islice

import numpy as np

from core.cpu import plan
from core.errors import ImageError
from core.images import load_array
from core.lifetime import die_with_parent

# Paths per worker task: a task is the unit a worker takes, so a short run or the end of a long
# one keeps every worker busy; the caller still receives its own chunk size.
TASK = 8
# Files above this size are decoded from their path and hashed as a stream, not read whole.
READ_LIMIT = 64 * 1024 * 1024


@dataclass
class Decoded:
    """One input's outcome: pixels and original size, or the reason it failed; the content hash when asked for."""

    path: str
    pixels: np.ndarray | None = None
    size: tuple[int, int] | None = None
    error: str | None = None
    digest: str | None = None


def decode_chunk(paths: list[str], size: int, digests: bool = False, alpha: bool = False) -> list[Decoded]:
    """Worker body: decode each path; a bad file becomes an error record, never an exception.

    With ``digests`` each record carries the SHA-256 of the file (as :func:`core.files.content_hash`
    gives it), also for a file that does not decode; None when the file cannot be read. With ``alpha``
    the pixels carry a fourth channel, the opacity (:func:`core.images.load_array`).
    """
    out = []
    for path in paths:
        data = _read(path) if digests else None
        digest = _digest(path, data) if digests else None
        try:
            pixels, original = load_array(path, size, data, alpha)
            out.append(Decoded(path, pixels, original, digest=digest))
        except ImageError as exc:
            out.append(Decoded(path, error=exc.reason, digest=digest))
    return out


def _read(path: str) -> bytes | None:
    """The file's bytes; None when it is too large to hold or cannot be read (decoding from
    the path then says why, in the same words as for any other file)."""
    try:
        with open(path, "rb") as fh:
            if os.fstat(fh.fileno()).st_size > READ_LIMIT:
                return None
            return fh.read()
    except OSError:
        return None


def _digest(path: str, data: bytes | None) -> str | None:
    if data is not None:
        return hashlib.sha256(data).hexdigest()
    try:
        with open(path, "rb") as fh:
            return hashlib.file_digest(fh, "sha256").hexdigest()
    except OSError:
        return None


def start_worker() -> None:
    """A worker's initializer: it dies with its parent and leaves Ctrl-C to it.

    The parent handles Ctrl-C by stopping after the current batch and shutting the
    pool down; workers that also raised KeyboardInterrupt would only print tracebacks.
    """
    die_with_parent()
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def iter_decoded(paths: Iterable[str], size: int, chunk: int = 16, workers: int | None = None,
                 prefetch: int | None = None, digests: bool = False, alpha: bool = False) -> Iterator[list[Decoded]]:
    """Yield decoded chunks of ``chunk`` inputs (the last one shorter) in input order.

    ``workers=0`` decodes in this process (tests, tiny jobs); ``None`` takes the
    decode-only choice of :func:`core.cpu.plan`. Worker processes are started with
    ``spawn``: safe next to torch's and Qt's threads, and cheap because workers
    import only Pillow and numpy. ``prefetch`` bounds the tasks in flight (default:
    the next chunk plus two per worker); ``digests`` asks for content hashes
    and ``alpha`` for the opacity channel (see :func:`decode_chunk`).
    """
    workers = plan(device=None).decoders if workers is None else workers
    it = iter(paths)
    if workers == 0:
        for part in iter(lambda: list(islice(it, chunk)), []):
            yield decode_chunk(part, size, digests, alpha)
        return
    task = max(1, min(chunk, TASK))
    prefetch = prefetch or math.ceil(chunk / task) + 2 * workers
    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=workers, mp_context=ctx, initializer=start_worker) as pool:
        decoded = _in_order(pool, iter(lambda: list(islice(it, task)), []), size, digests, alpha, prefetch)
        try:
            yield from iter(lambda: list(islice(decoded, chunk)), [])
        finally:
            decoded.close()


def _in_order(pool: ProcessPoolExecutor, tasks: Iterator[list[str]], size: int, digests: bool, alpha: bool,
              prefetch: int) -> Iterator[Decoded]:
    """Each input's record in order, with at most ``prefetch`` tasks in flight; closing it cancels the rest."""
    pending: deque[Future] = deque()
    try:
        for part in tasks:
            pending.append(pool.submit(decode_chunk, part, size, digests, alpha))
            if len(pending) >= prefetch:
                yield from pending.popleft().result()
        while pending:
            yield from pending.popleft().result()
    finally:
        for fut in pending:
            fut.cancel()
