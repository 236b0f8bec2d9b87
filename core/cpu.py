"""One CPU policy: how many decoding processes run beside the model, and how many threads torch gets.

Embedding a collection runs two kinds of CPU work at once: decoding (Pillow,
in worker processes) and, when there is no GPU, the network (torch's OpenMP
threads). Together they must not ask for more threads than there are cores:
OpenMP threads that wait for a descheduled sibling stall. On two busy cores,
one decoder plus two torch threads indexed 2.0 images/s, one decoder plus one
torch thread 3.5; with the bundled model, 20.2 images/s rose to about 24
(96 % of the one-decoder bound) once torch stopped taking the decoder's core
(bench/index_throughput.py).

When the model runs on the CPU, decoding is about a fifth of the work per image
(0.07-0.09 s decode against 0.33-0.35 s model at 256 px), so about a fifth of
the cores decode and torch gets the rest. With a GPU the CPU only decodes: every
core but one (left to the process that feeds the model) decodes, up to 8; on two
cores one decoder beside it is still a win.

This module decides; :meth:`core.embedder.Embedder.embed_chunks` applies a
plan while it embeds, through :func:`torch_threads_for`.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

# Share of the per-image CPU work that is decoding when the model also runs on the CPU.
CPU_DECODE_SHARE = 0.2
# More decoders than this outrun any GPU the app is likely to meet and only cost memory.
MAX_GPU_DECODERS = 8
OMP_ENV = "OMP_NUM_THREADS"


@dataclass(frozen=True)
class CpuPlan:
    """Decoding processes (0: decode in the calling process) and torch intra-op threads."""

    decoders: int
    torch_threads: int


def plan(cores: int | None = None, device: str | None = "cpu", decoders: int | None = None) -> CpuPlan:
    """Split ``cores`` (default: this machine's) between decoders and torch for a model on ``device``.

    Args:
        cores: CPU cores to share; ``None`` counts this machine's.
        device: where the model runs: ``"cpu"`` shares the cores with it; an accelerator
            such as ``"cuda"``, or ``None`` for decoding with no model, leaves them to decoding.
        decoders: an explicit number of decoding processes (the ``--workers`` option);
            torch then gets the cores they leave free.

    An explicit ``OMP_NUM_THREADS`` is the user's choice of torch threads and wins
    over the split; the decoder count still follows the policy.
    """
    cores = cores or os.cpu_count() or 2
    if decoders is None:
        if device == "cpu":
            decoders = max(1, round(cores * CPU_DECODE_SHARE))
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
