"""Parallel image decoding that runs ahead of the model.

Decoding (JPEG, PNG, resize) is CPU work in Pillow that holds the GIL for long
stretches, so it runs in worker processes. Workers receive a chunk of paths and
return uint8 arrays; at most ``prefetch`` chunks are in flight so memory stays
bounded however large the collection is, while the main process runs the model
on the previous chunk. Workers die with the process that started them
(:mod:`core.lifetime`), so a crashed or killed indexer leaves none behind.
"""

from __future__ import annotations

import multiprocessing
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


@dataclass
class Decoded:
    """One input's outcome: pixels and original size, or the reason it failed."""

    path: str
    pixels: np.ndarray | None = None
    size: tuple[int, int] | None = None
    error: str | None = None


def decode_chunk(paths: list[str], size: int) -> list[Decoded]:
    """Worker body: decode each path; a bad file becomes an error record, never an exception."""
    out = []
    for path in paths:
        try:
            pixels, original = load_array(path, size)
            out.append(Decoded(path, pixels, original))
        except ImageError as exc:
            out.append(Decoded(path, error=exc.reason))
    return out


def start_worker() -> None:
    """A worker's initializer: it dies with its parent and leaves Ctrl-C to it.

    The parent handles Ctrl-C by stopping after the current batch and shutting the
    pool down; workers that also raised KeyboardInterrupt would only print tracebacks.
    """
    die_with_parent()
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def iter_decoded(paths: Iterable[str], size: int, chunk: int = 16, workers: int | None = None,
                 prefetch: int | None = None) -> Iterator[list[Decoded]]:
    """Yield decoded chunks in input order.

    ``workers=0`` decodes in this process (tests, tiny jobs); ``None`` takes the
    decode-only choice of :func:`core.cpu.plan`. Worker processes are started with
    ``spawn``: safe next to torch's and Qt's threads, and cheap because workers
    import only Pillow and numpy.
    """
    workers = plan(device=None).decoders if workers is None else workers
    it = iter(paths)
    chunks = iter(lambda: list(islice(it, chunk)), [])
    if workers == 0:
        for part in chunks:
            yield decode_chunk(part, size)
        return
    prefetch = prefetch or workers * 2
    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=workers, mp_context=ctx, initializer=start_worker) as pool:
        pending: deque[Future] = deque()
        try:
            for part in chunks:
                pending.append(pool.submit(decode_chunk, part, size))
                if len(pending) >= prefetch:
                    yield pending.popleft().result()
            while pending:
                yield pending.popleft().result()
        finally:
            for fut in pending:
                fut.cancel()
