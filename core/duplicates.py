"""Copies of the same picture in a library: exact duplicates and near-duplicates, grouped.

Exact duplicates share their content hash (the indexer stores one per file). Near-duplicates
(re-saved, resized, re-encoded, slightly cropped or EXIF-rotated copies) are found in two steps:

1. Candidates: each image's nearest neighbours in the search index whose style vectors have a
   cosine of at least ``SIMILARITY``. A copy keeps its style, so it is among them; this is one
   batched k-NN query over the library, not a comparison of every pair.
2. Verification: a style vector cannot tell a copy from another picture in the same style (two
   works of one series score as high as a cropped copy), so each candidate pair is compared by
   its pixels: a 32 x 32 grey *thumbprint* of the upright image, compared at 16 x 16 by normalised
   correlation, the smaller picture matched against crops of up to ``MAX_CROP`` per side of the
   other. Pairs at ``MATCH`` or above are the same picture.

Confirmed pairs and content-hash groups are joined with union-find, so a chain of copies is one
group. Thumbprints are kept in ``CACHE_FILE`` beside the library, by content hash: the next run
reads only new candidates' files. A file that is gone or unreadable is skipped and reported.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from core.errors import ImageError
from core.files import atomic_write
from core.images import decode
from core.library import Failure, ImageFacts, Library
from core.vector_index import EXACT_SLICE, ExactIndex, HnswIndex, VectorIndex

log = logging.getLogger(__name__)

# Candidate gate on the style vectors' cosine. Edited copies of generated art scored 0.98 and more
# (bench/duplicates.py), distinct pictures of one style up to 0.99: the gate only narrows the search.
# The whitened default (2026-11-30) spreads near-identical vectors apart: at 0.95 it kept only 0.83 of
# the copies (JPEG, crop and EXIF-rotated ones fell below), at 0.9 all of them with 422 candidate pairs,
# at 0.85 all with 829 (the unwhitened model: 1,064 at 0.95, 1,201 at 0.85, recall 1.0 at both).
SIMILARITY = 0.85
# Neighbours asked of the index per image: more copies of one picture still join through chains.
NEIGHBOURS = 10
# Normalised correlation of two thumbprints at which they are the same picture (bench/duplicates.py).
MATCH = 0.9
# The largest crop, per side and in all per dimension, that a copy may have lost.
MAX_CROP = 0.125
CROP_STEP = 0.025
THUMBPRINT = 32
COMPARE = 16
CACHE_FILE = "duplicates.npz"
QUERY_BATCH = 2048
# The graph walk's breadth for the candidate search: at 100k clustered vectors with 1,000 planted copies,
# ef 48 and 64 missed one, 96 found all in the same 23 s (the search's own 200 took about half as long again).
DUPLICATE_EF = 96


@dataclass(frozen=True)
class DuplicateFile:
    image_id: int
    path: str
    size: int
    width: int | None
    height: int | None


@dataclass(frozen=True)
class DuplicateGroup:
    """Files showing one picture, the largest first (the one to keep, most likely); ``exact`` when all
    of them are byte-identical."""

    files: tuple[DuplicateFile, ...]
    exact: bool


@dataclass
class DuplicateReport:
    groups: list[DuplicateGroup]
    pairs_checked: int = 0
    skipped: list[Failure] = field(default_factory=list)
    seconds: float = 0.0


def find_duplicates(library: Library, index: VectorIndex | None, *, similarity: float = SIMILARITY,
                    match: float = MATCH, cancel: Callable[[], bool] | None = None) -> DuplicateReport | None:
    """Every group of two or more library images that show the same picture.

    Args:
        library: the library.
        index: its search index (``IndexCache.current()``); None finds exact duplicates only.
        similarity: the candidate gate on the style vectors' cosine.
        match: the thumbprint correlation at which a candidate pair is the same picture.
        cancel: asked between steps; when it says yes, the search stops and returns None.

    Raises:
        LibraryError: the library's database cannot be read.
    """
    start = time.perf_counter()
    cancelled = cancel or (lambda: False)
    groups = UnionFind()
    for ids in library.images_sharing_content():
        groups.join_all(ids)
    pairs = candidate_pairs(index, similarity) if index is not None else np.zeros((0, 2), np.int64)
    if cancelled():
        return None
    pairs = [(int(a), int(b)) for a, b in pairs if groups.find(int(a)) != groups.find(int(b))]
    facts = library.image_facts(sorted({i for pair in pairs for i in pair} | groups.members()))
    prints = ThumbprintCache(Path(library.folder), writable=not library.read_only)
    skipped: dict[str, str] = {}
    for n, (a, b) in enumerate(pairs):
        if n % 256 == 0 and cancelled():
            return None
        if a not in facts or b not in facts or groups.find(a) == groups.find(b):
            continue
        pa, pb = (prints.get(facts[i], skipped) for i in (a, b))
        if pa is not None and pb is not None and likeness(pa, pb) >= match:
            groups.join(a, b)
    prints.save()
    found = []
    for ids in groups.groups():
        files = [facts[i] for i in ids if i in facts and _exists(facts[i].path, skipped)]
        if len(files) < 2:
            continue
        files.sort(key=lambda f: (-(f.width or 0) * (f.height or 0), -f.size, f.path))
        exact = files[0].content_hash is not None and len({f.content_hash for f in files}) == 1
        found.append(DuplicateGroup(tuple(DuplicateFile(f.image_id, f.path, f.size, f.width, f.height) for f in files),
                                    exact))
    found.sort(key=lambda g: g.files[0].path)
    return DuplicateReport(found, len(pairs), [Failure(p, r) for p, r in sorted(skipped.items())],
                           time.perf_counter() - start)


def candidate_pairs(index: VectorIndex, similarity: float = SIMILARITY, neighbours: int = NEIGHBOURS) -> np.ndarray:
    """``(n, 2)`` image ids, smaller first, of each image and its nearest neighbours at ``similarity`` or more."""
    found = []
    if isinstance(index, ExactIndex):
        ids, matrix = index.ids, index.matrix
        for i in range(0, len(ids), EXACT_SLICE):
            block = matrix[i:i + EXACT_SLICE] @ matrix.T
            found.append(_close(ids[i:i + EXACT_SLICE], ids, block, similarity, neighbours))
    elif isinstance(index, HnswIndex):
        labels = index.labels()
        k = min(neighbours + 1, len(labels))
        # A copy is among an image's very nearest neighbours: a short walk finds it.
        for i in range(0, len(labels), QUERY_BATCH):
            part = labels[i:i + QUERY_BATCH]
            near, sims = index.neighbours(index.vectors(part), k, DUPLICATE_EF)
            found.append(_pairs(part, near, sims, similarity))
    pairs = np.concatenate(found) if found else np.zeros((0, 2), np.int64)
    return np.unique(pairs, axis=0) if len(pairs) else pairs


def _close(rows: np.ndarray, ids: np.ndarray, scores: np.ndarray, similarity: float, neighbours: int) -> np.ndarray:
    """The pairs of one block of an exact score matrix: each row's best ``neighbours`` at ``similarity``."""
    k = min(neighbours + 1, scores.shape[1])
    best = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    return _pairs(rows, ids[best], np.take_along_axis(scores, best, axis=1), similarity)


def _pairs(rows: np.ndarray, near: np.ndarray, scores: np.ndarray, similarity: float) -> np.ndarray:
    a = np.broadcast_to(rows[:, None], near.shape)
    keep = (scores >= similarity) & (near != a)
    pairs = np.stack([np.minimum(a, near)[keep], np.maximum(a, near)[keep]], axis=1)
    return pairs.astype(np.int64)


# -- pixels ------------------------------------------------------------------------------------------
def thumbprint(path: str | Path) -> np.ndarray:
    """A ``THUMBPRINT`` x ``THUMBPRINT`` grey uint8 view of the upright image (EXIF orientation applied).

    A JPEG is decoded at a small DCT scale (:func:`core.images.decode`), so this costs little.

    Raises:
        ImageError: the file is missing or unreadable.
    """
    img = decode(path, min_side=THUMBPRINT)[0].convert("L")
    return np.asarray(img.resize((THUMBPRINT, THUMBPRINT), Image.Resampling.BOX), dtype=np.uint8)


def _resampler(lo: float, hi: float) -> np.ndarray:
    """A ``COMPARE`` x ``THUMBPRINT`` matrix that samples the span ``[lo, hi]`` of a thumbprint's axis."""
    centres = lo + (np.arange(COMPARE) + 0.5) / COMPARE * (hi - lo)
    pos = np.clip(centres * THUMBPRINT - 0.5, 0, THUMBPRINT - 1)
    low = np.floor(pos).astype(int)
    high = np.minimum(low + 1, THUMBPRINT - 1)
    weight = (pos - low).astype(np.float32)
    out = np.zeros((COMPARE, THUMBPRINT), np.float32)
    np.add.at(out, (np.arange(COMPARE), low), 1 - weight)
    np.add.at(out, (np.arange(COMPARE), high), weight)
    return out


_STEPS = np.arange(0, MAX_CROP + 1e-9, CROP_STEP)
# Every span an axis may keep after a crop of up to MAX_CROP in all; the first keeps the whole axis.
_SPANS = np.stack([_resampler(lo, 1 - hi) for lo in _STEPS for hi in _STEPS if lo + hi <= MAX_CROP + 1e-9])


def _normalised(x: np.ndarray) -> np.ndarray:
    x = x - x.mean(axis=(-1, -2), keepdims=True)
    return x / np.maximum(np.sqrt((x * x).sum(axis=(-1, -2), keepdims=True)), 1e-6)


def likeness(a: np.ndarray, b: np.ndarray) -> float:
    """How alike two thumbprints are, from -1 to 1: the best correlation of either with a crop of the other.

    A copy that was only resized or re-encoded matches whole and answers after one comparison: any
    value of ``MATCH`` or more is returned as soon as it is seen, not searched further.
    """
    a, b = a.astype(np.float32), b.astype(np.float32)
    whole = _SPANS[0]
    views = [_normalised(whole @ x @ whole.T) for x in (a, b)]
    best = float((views[0] * views[1]).sum())
    if best >= MATCH:
        return best
    for x, y in ((a, views[1]), (b, views[0])):
        crops = np.matmul((_SPANS @ x)[:, None], _SPANS.transpose(0, 2, 1)[None])
        best = max(best, float((_normalised(crops) * y).sum(axis=(-1, -2)).max()))
    return best


class ThumbprintCache:
    """Thumbprints by content hash, kept in ``CACHE_FILE``; only this run's are saved, so it stays small."""

    def __init__(self, folder: Path, writable: bool = True) -> None:
        self.path = folder / CACHE_FILE
        self.writable = writable
        self._stored = self._load()
        self._used: dict[str, np.ndarray] = {}
        self._changed = False

    def _load(self) -> dict[str, np.ndarray]:
        try:
            with np.load(self.path, allow_pickle=False) as data:
                hashes, prints = data["hashes"], data["prints"]
            if prints.shape[1:] != (THUMBPRINT, THUMBPRINT) or len(hashes) != len(prints):
                raise ValueError(f"unexpected shape {prints.shape}")
            return {str(h): p for h, p in zip(hashes, prints)}
        except FileNotFoundError:
            return {}
        except (OSError, ValueError, KeyError, IndexError) as exc:
            log.info("duplicate search cache %s not used: %s", self.path, exc)
            return {}

    def get(self, image: ImageFacts, skipped: dict[str, str]) -> np.ndarray | None:
        """The image's thumbprint; None (and its reason in ``skipped``) when its file cannot be read.

        A file whose size is no longer the one indexed has changed since: its content hash is stale, so
        it is read again and not cached.
        """
        path, digest = image.path, image.content_hash
        if path in skipped:
            return None
        with contextlib.suppress(OSError):
            if os.stat(path).st_size != image.size:
                digest = None
        found = self._used.get(digest) if digest else None
        if found is None and digest:
            found = self._stored.get(digest)
        if found is None:
            try:
                found = thumbprint(path)
            except ImageError as exc:
                skipped[path] = exc.reason
                return None
            self._changed = True
        if digest:
            self._used[digest] = found
        return found

    def save(self) -> None:
        """Write this run's thumbprints, when any were new (never in a read-only library)."""
        if not self.writable or not (self._changed or len(self._used) != len(self._stored)):
            return
        hashes = np.array(sorted(self._used), dtype=str)
        prints = np.zeros((len(hashes), THUMBPRINT, THUMBPRINT), np.uint8)
        for n, digest in enumerate(hashes):
            prints[n] = self._used[digest]
        try:
            with atomic_write(self.path, "wb", fsync=False) as fh:
                np.savez(fh, hashes=hashes, prints=prints)
        except OSError as exc:
            log.warning("could not save the duplicate search cache %s: %s", self.path, exc)


def _exists(path: str, skipped: dict[str, str]) -> bool:
    """Whether a group member's file is still there; a gone one is reported, not listed."""
    if path in skipped:
        return False
    if os.path.isfile(path):
        return True
    skipped[path] = "file not found"
    return False


class UnionFind:
    """Disjoint sets of image ids, with path halving."""

    def __init__(self) -> None:
        self._parent: dict[int, int] = {}

    def find(self, x: int) -> int:
        parent = self._parent
        parent.setdefault(x, x)
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    def join(self, a: int, b: int) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self._parent[max(ra, rb)] = min(ra, rb)

    def join_all(self, ids: Iterable[int]) -> None:
        ids = list(ids)
        for other in ids[1:]:
            self.join(ids[0], other)

    def members(self) -> set[int]:
        return set(self._parent)

    def groups(self) -> list[list[int]]:
        """Every set of two or more ids, each sorted."""
        out: dict[int, list[int]] = {}
        for x in list(self._parent):
            out.setdefault(self.find(x), []).append(x)
        return [sorted(ids) for ids in out.values() if len(ids) > 1]
