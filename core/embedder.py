"""Turning images into search vectors with a loaded model.

The pipeline has two halves on purpose. ``raw`` vectors come straight from the
network (the style code f, or the projection h(f)); the library stores those.
``finish`` applies the model's post-processing and L2 normalisation; it is
cheap and can be refitted on a user's collection without re-embedding.
"""

from __future__ import annotations

import logging
import os
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import nullcontext
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from core.colour import colour_histogram, hellinger
from core.cooccurrence import cooccurrence_histograms
from core.cpu import plan, torch_threads_for
from core.decode import Decoded, iter_decoded
from core.errors import DeviceError
from core.granulometry import granulometry_histograms
from core.model import PROJECTION_DIM
from core.modelfile import LoadedModel, ModelInfo, PostProcess, cue_dims, makes_raw_vectors_of, vector_layout
from core.silhouette import silhouette_histograms
from core.texture import (contrast_histograms, pattern_histograms, patterns_from_contrast, texture_histograms,
                          texture_vector)
from core.whitening import Whitening

log = logging.getLogger(__name__)

NON_FINITE = "the model gave NaN or infinite values for this image"
# Blank images the network is timed on, after one to warm it up (see Embedder.network_seconds).
PROBE_BATCH = 4


def resolve_device(name: str = "auto") -> torch.device:
    """``auto`` picks CUDA when present, else the CPU; asking for CUDA without it is an error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise DeviceError("CUDA was requested but no CUDA GPU is available; use --device cpu or auto")
    if name != "cpu" and not name.startswith("cuda"):
        raise DeviceError(f"unknown device {name!r}; expected auto, cpu or cuda")
    return torch.device(name)


def l2_normalise(x: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(x, axis=-1, keepdims=True)
    return (x / np.maximum(norms, 1e-12)).astype(np.float32)


@dataclass(frozen=True)
class Cue:
    """A descriptor fused beside the network: raw histograms from pixels (stored), unit vectors from those."""

    name: str
    weight: float
    dim: int
    raw: Callable[[np.ndarray], np.ndarray]
    unit: Callable[[np.ndarray], np.ndarray]
    # Whether ``raw`` reads the opacity channel too (RGBA pixels) rather than the colours alone.
    alpha: bool = False
    # Another cue whose raw histograms hold this one's, and how to read them out: when both are fused,
    # the pixels are described once (the plain patterns are the contrast patterns summed over contrast).
    derived_from: tuple[str, Callable[[np.ndarray], np.ndarray]] | None = None


def fused_cues(info: ModelInfo) -> list[Cue]:
    """The descriptors ``info`` fuses (weight above zero), in the order of their parts in a vector."""
    bins = info.colour_bins
    kinds = {"colour": (lambda pixels: colour_histogram(pixels, bins), hellinger),
             "texture": (texture_histograms, texture_vector),
             "pattern": (pattern_histograms, hellinger, False, ("contrast", patterns_from_contrast)),
             "silhouette": (silhouette_histograms, hellinger, True),
             "granulometry": (granulometry_histograms, hellinger),
             "contrast": (contrast_histograms, hellinger),
             "cooccurrence": (cooccurrence_histograms, hellinger)}
    return [Cue(name, float(getattr(info, f"{name}_weight")), dim, *kinds[name])
            for name, dim in cue_dims(info).items()]


# Chunks in the network at once on the CPU (see Embedder.embed_chunks).
NETWORK_LANES = 2

@dataclass
class EmbeddedChunk:
    """Raw vectors for the decodable inputs of a chunk, plus the ones that failed.

    ``digests`` holds the content hash of each of ``paths`` when they were asked for (None
    otherwise, or where a file could not be read); a failed record carries its own.
    """

    paths: list[str]
    positions: list[int]
    raw: np.ndarray
    sizes: list[tuple[int, int]]
    failed: list[Decoded]
    digests: list[str | None]


@dataclass
class _Embedded:
    """One decoded chunk through the network, before it knows its place in the input."""

    decoded: list[Decoded]
    good: list[int]
    raw: np.ndarray

    @property
    def count(self) -> int:
        return len(self.decoded)

    def at(self, start: int) -> EmbeddedChunk:
        decoded, good = self.decoded, self.good
        return EmbeddedChunk(paths=[decoded[i].path for i in good], positions=[start + i for i in good],
                             raw=self.raw, sizes=[decoded[i].size for i in good],
                             failed=[d for d in decoded if d.error is not None],
                             digests=[decoded[i].digest for i in good])


class Embedder:
    """A model placed on a device, embedding batches of decoded pixels.

    ``which`` overrides the model file's recorded choice of vector: "style" (f)
    or "projection" (h(f)).
    """

    def __init__(self, model: LoadedModel, device: str = "auto", which: str | None = None) -> None:
        self.model = model
        self.device = resolve_device(device)
        self.which = which or model.info.embedding
        if self.which not in ("style", "projection"):
            raise ValueError(f"which must be 'style' or 'projection', got {self.which!r}")
        self.net = model.net.to(self.device).eval()
        config = model.net.config
        self.net_size = config.input_size
        # Decoded pixels are the larger size; the network gets them scaled down to its own.
        self.size = max(self.net_size, model.info.cue_size)
        self._mean = torch.tensor(config.mean, device=self.device).view(1, 3, 1, 1)
        self._std = torch.tensor(config.std, device=self.device).view(1, 3, 1, 1)
        self._network_s: float | None = None

    @property
    def post(self) -> PostProcess | None:
        """Post-processing applies to style codes only; projections are already unit vectors."""
        return self.model.post if self.which == "style" else None

    @property
    def whitening(self) -> Whitening | None:
        """The model's whitening, where this embedder makes the vectors it was fitted on.

        None for the file's other embedding, or for a model whose fusion or input size was changed
        after loading (``trainer eval --colour-weight``, ``bench/fusion_search.py``).
        """
        whitening = self.model.whitening
        if whitening is None or self.which != self.model.info.embedding:
            return None
        return whitening if whitening.fitted_for == vector_layout(self.model.info) else None

    def makes_vectors_of(self, checksum: str, which: str) -> bool:
        """Whether the raw vectors that the model file with ``checksum`` made as ``which`` vectors are this
        embedder's too, so a library of them can switch to it without re-embedding."""
        return which == self.which and makes_raw_vectors_of(self.model, checksum)

    @property
    def net_dim(self) -> int:
        return self.net.config.style_dim if self.which == "style" else PROJECTION_DIM

    @property
    def cues(self) -> list[Cue]:
        return fused_cues(self.model.info)

    @property
    def reads_alpha(self) -> bool:
        """Whether pixels must be decoded with their opacity (:func:`core.decode.iter_decoded`'s ``alpha``)."""
        return self.model.info.reads_alpha

    @property
    def raw_dim(self) -> int:
        """Length of raw vectors (what a library stores): the network part plus the fused descriptors' parts."""
        return self.net_dim + sum(cue.dim for cue in self.cues)

    @property
    def dim(self) -> int:
        """Length of finished vectors (what search compares): shorter than raw ones under a whitening that keeps
        only its strongest directions."""
        whitening = self.whitening
        return whitening.out_dim if whitening is not None else self.raw_dim

    def _autocast(self):
        if self.device.type == "cuda":
            return torch.autocast("cuda", dtype=torch.float16)
        return nullcontext()

    def raw_from_pixels(self, pixels: np.ndarray) -> np.ndarray:
        """(N, H, W, 3) uint8 RGB, or RGBA for a model that reads opacity (:attr:`reads_alpha`; given RGB, it
        reads the pictures as having no transparency, see :mod:`core.silhouette`), to (N, D) float32 raw vectors."""
        rgb = pixels[..., :3]
        with torch.inference_mode():
            x = torch.from_numpy(rgb).to(self.device, non_blocking=True)
            x = x.permute(0, 3, 1, 2).float().div_(255.0)
            x = (x - self._mean) / self._std
            if max(x.shape[-2:]) > self.net_size:  # decoded at the descriptors' larger size
                x = F.interpolate(x, size=(self.net_size, self.net_size), mode="bilinear", antialias=True,
                                  align_corners=False)
            with self._autocast():
                style = self.net.style_code(x)
            out = (self.net.head(style.float()) if self.which == "projection" else style).cpu().numpy().astype(np.float32)
        cues = self.cues
        if not cues:
            return out
        raws: dict[str, np.ndarray] = {}
        fused = {cue.name for cue in cues}
        for cue in sorted(cues, key=lambda c: c.derived_from is not None and c.derived_from[0] in fused):
            source = cue.derived_from
            raws[cue.name] = (source[1](raws[source[0]]) if source is not None and source[0] in raws
                              else cue.raw(pixels if cue.alpha else rgb))
        return np.concatenate([out, *(raws[cue.name] for cue in cues)], axis=1)

    def network_seconds(self) -> float:
        """CPU seconds per image the network takes on one thread; timed once, on blank pixels.

        Thread CPU time rather than wall time: a machine busy with other work must not make
        the model look slower than it is and so starve decoding of cores (:func:`core.cpu.plan`).
        """
        if self._network_s is None:
            pixels = np.zeros((PROBE_BATCH, self.size, self.size, 3), np.uint8)
            with torch_threads_for(1):
                self.raw_from_pixels(pixels[:1])
                start = time.thread_time()
                self.raw_from_pixels(pixels)
                self._network_s = (time.thread_time() - start) / PROBE_BATCH
        return self._network_s

    def finish(self, raw: np.ndarray, post: PostProcess | None = None) -> np.ndarray:
        """Raw vectors to unit search vectors, with ``post`` overriding the model's own statistics.

        The model's whitening, fitted on vectors made with its own statistics, applies only without
        an override.
        """
        whitening = self.whitening if post is None else None
        post = post if post is not None else self.post
        raw = np.asarray(raw, dtype=np.float32)
        net = raw[:, : self.net_dim]
        net = l2_normalise(post.apply(net) if post is not None else net)
        cues = self.cues
        if cues:
            # Concatenating weighted unit vectors makes the cosine score the weighted sum of
            # the parts' similarities, and keeps the fused vector unit length.
            parts = [np.sqrt(1 - sum(cue.weight for cue in cues)) * net]
            start = self.net_dim
            for cue in cues:
                parts.append(np.sqrt(cue.weight) * cue.unit(raw[:, start:start + cue.dim]))
                start += cue.dim
            net = np.concatenate(parts, axis=1).astype(np.float32)
        return whitening.apply(net) if whitening is not None else net

    def _finite_rows(self, raw: np.ndarray) -> np.ndarray:
        """Which rows are finite both raw (as the library stores them) and finished (as search compares them).

        A model that passed its load-time probe can still overflow on one image, under float16
        autocast on a GPU for instance; such a row must never reach a library or an output file.
        """
        with np.errstate(invalid="ignore", over="ignore"):
            return np.isfinite(raw).all(1) & np.isfinite(self.finish(raw)).all(1)

    def embed_chunks(self, paths: Iterable[str], batch_size: int = 16, workers: int | None = None,
                     digests: bool = False) -> Iterator[EmbeddedChunk]:
        """Decode ahead in worker processes and embed batch by batch, in input order.

        An image the model turns into NaN or infinite values is among the chunk's ``failed``,
        with that reason, like one that cannot be decoded. With ``digests`` the decoders also
        hash each file from the bytes they decode (the indexer records them to recognise moves).

        ``workers`` decoding processes (default: :func:`core.cpu.plan`'s choice for this
        device and this model's measured cost) run beside the model, which meanwhile gets
        the threads the plan leaves it. Without decoders nothing competes for the cores, so
        torch's thread count is left alone: a search embedding its query in-process never
        changes it under an indexer.
        """
        start = 0
        network_s = self.network_seconds() if workers is None and self.device.type == "cpu" else None
        cpu = plan(device=self.device.type, decoders=workers, network_s=network_s)
        threads = torch_threads_for(cpu.torch_threads) if cpu.decoders else nullcontext()
        # On the CPU two chunks go through the network at once, each on its own thread: torch releases
        # the GIL, so a cheap-to-decode collection gets a second core for the model when the decoders
        # leave it idle, and a costly one simply has the second lane waiting for pixels.
        lanes = NETWORK_LANES if self.device.type == "cpu" and cpu.decoders and (os.cpu_count() or 1) > 1 else 1
        with threads, ThreadPoolExecutor(lanes, thread_name_prefix="aladin-network") as pool:
            running: deque = deque()
            for decoded in iter_decoded(paths, self.size, chunk=batch_size, workers=cpu.decoders, digests=digests,
                                        alpha=self.reads_alpha):
                running.append(pool.submit(self._embed_decoded, decoded))
                if len(running) >= lanes:
                    chunk = running.popleft().result()
                    yield chunk.at(start)
                    start += chunk.count
            while running:
                chunk = running.popleft().result()
                yield chunk.at(start)
                start += chunk.count

    def _embed_decoded(self, decoded: list[Decoded]) -> "_Embedded":
        good = [i for i, d in enumerate(decoded) if d.error is None]
        raw = (self.raw_from_pixels(np.stack([decoded[i].pixels for i in good])) if good
               else np.zeros((0, self.raw_dim), np.float32))
        usable = self._finite_rows(raw)
        for i in np.flatnonzero(~usable):
            decoded[good[i]].error = NON_FINITE
        return _Embedded(decoded, [i for i, ok in zip(good, usable) if ok], raw[usable])

    def embed_paths(self, paths: list[str], batch_size: int = 16, workers: int | None = None,
                    progress: Callable[[int], None] | None = None) -> tuple[np.ndarray, dict[str, str]]:
        """Unit vectors for ``paths`` in order; failed rows are zero, reasons returned by path."""
        out = np.zeros((len(paths), self.dim), np.float32)
        errors: dict[str, str] = {}
        for chunk in self.embed_chunks(paths, batch_size, workers):
            if chunk.paths:
                out[chunk.positions] = self.finish(chunk.raw)
            errors.update({d.path: d.error for d in chunk.failed})
            if progress is not None:
                progress(len(chunk.paths) + len(chunk.failed))
        return out, errors
