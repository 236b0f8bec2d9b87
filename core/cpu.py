"""One CPU policy: how many decoding processes run beside the model, and how many threads torch gets.

Embedding a collection runs two kinds of CPU work at once: decoding (Pillow,
in worker processes) and, when there is no GPU, the network (torch's OpenMP
threads). Together they must not ask for more threads than there are cores:
OpenMP threads that wait for a descheduled sibling stall. On two busy cores,
one decoder plus two torch threads indexed 2.0 images/s, one decoder plus one
torch thread 3.5 (bench/index_throughput.py, with a 256 px model).

When the model runs on the CPU, the cores are split in proportion to the work:
decoders get the share of the cores that decoding takes of the time per image,
rounded up (on free cores a spare decoder only waits, a missing one leaves a core idle).
The embedder times its network once on one thread (:meth:`core.embedder.Embedder.network_seconds`)
and a photo decodes in about ``DECODE_S``. The bundled 64 px model takes about
5 ms an image against 7-50 ms of decoding, so on two cores both decode and torch
keeps one thread (one thread has no sibling to stall on, and the main process
mostly waits for pixels). Measured on a shared 2-core machine, phone-like 12 MP JPEG:
two decoders indexed 22.7 images/s against 17.2 for one while the other core had room,
but about 20 % fewer (11.5 against 14) while other processes kept both cores busy, when
the second decoder only splits the same share (runs alternated; bench/index_throughput.py
--kinds phone-jpeg --workers N measures the same). A 256 px model
(0.33 s an image) gets one decoder and every other core. Without a timing (the
trainer) decoders get ``CPU_DECODE_SHARE``. With a GPU the CPU only decodes:
every core but one (left to the process that feeds the model) decodes, up to 8;
on two cores one decoder beside it is still a win.

This module decides; :meth:`core.embedder.Embedder.embed_chunks` applies a
plan while it embeds, through :func:`torch_threads_for`.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

# Share of the per-image CPU work that is decoding when the model also runs on the CPU and its cost is not known.
CPU_DECODE_SHARE = 0.2
# Seconds one core takes to decode a typical photo to the model's input (JPEG in draft mode: 3 MP about
# 0.007 s, 12 MP 0.02-0.04 s; a 3 MP PNG 0.05 s), the decoding side of the split.
DECODE_S = 0.02
# More decoders than this outrun any GPU the app is likely to meet and only cost memory.
MAX_GPU_DECODERS = 8
OMP_ENV = "OMP_NUM_THREADS"


@dataclass(frozen=True)
class CpuPlan:
    """Decoding processes (0: decode in the calling process) and torch intra-op threads."""

    decoders: int
    torch_threads: int


def plan(cores: int | None = None, device: str | None = "cpu", decoders: int | None = None,
         network_s: float | None = None) -> CpuPlan:
    """Split ``cores`` (default: this machine's) between decoders and torch for a model on ``device``.

    Args:
        cores: CPU cores to share; ``None`` counts this machine's.
        device: where the model runs: ``"cpu"`` shares the cores with it; an accelerator
            such as ``"cuda"``, or ``None`` for decoding with no model, leaves them to decoding.
        decoders: an explicit number of decoding processes (the ``--workers`` option);
            torch then gets the cores they leave free.
        network_s: the model's seconds per image on one CPU thread; decoders then get
            decoding's share of the work (``DECODE_S`` against this), rounded up, at least one
            and at most every core. ``None``: ``CPU_DECODE_SHARE``, rounded.

    An explicit ``OMP_NUM_THREADS`` is the user's choice of torch threads and wins
    over the split; the decoder count still follows the policy.
    """
    cores = cores or os.cpu_count() or 2
    if decoders is None:
        if device == "cpu":
            if network_s is None:
                decoders = max(1, round(cores * CPU_DECODE_SHARE))
            else:
                share = DECODE_S / (DECODE_S + max(network_s, 0.0))
                decoders = min(cores, max(1, math.ceil(cores * share)))
        else:
            decoders = max(1, min(MAX_GPU_DECODERS, cores - 1))
    return CpuPlan(decoders, _omp_threads() or max(1, cores - decoders))


def _omp_threads() -> int | None:
    """The thread count in ``OMP_NUM_THREADS`` (its first level, if nested), or None when unset or invalid."""
    first = os.environ.get(OMP_ENV, "").split(",")[0].strip()
    return int(first) if first.isdigit() and int(first) > 0 else None


@contextmanager
def torch_threads_for(count: int) -> Iterator[None]:
    """Run the block with ``count`` torch intra-op threads, then restore the previous count.

    torch is imported here, not at the top: decoding workers import this module and need no torch.
    """
    import torch

    previous = torch.get_num_threads()
    if count == previous:
        yield
        return
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(previous)
