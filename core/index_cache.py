"""The search index cache: an in-memory index kept in step with SQLite, and its file on disk.

Small libraries are searched exactly with one matrix product; above
``EXACT_LIMIT`` vectors an hnswlib graph (:mod:`core.vector_index`) is kept on
disk. The file is only a cache: it carries a stamp (library generation, model
fingerprint, checksum), and whenever it is missing, stale or damaged it is
patched or rebuilt from the vectors in SQLite.

Writes have a single commit point: the graph goes to a new file named by
generation, then the stamp is replaced to point at it, then the old graph is
deleted, all under one lock. A process killed anywhere in between leaves
either the old or the new pair, never a mix.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from core.files import TEMP_SUFFIX, FileLock, atomic_path, content_hash, write_text_atomic
from core.vector_index import HNSW_EF_CONSTRUCTION, HNSW_M, ExactIndex, HnswIndex, VectorIndex

log = logging.getLogger(__name__)

STAMP = "index.json"
LOCK = "index.lock"
FORMAT = 1
# Below this many vectors a brute-force product is exact, needs no build and answers in
# about a millisecond; above it the graph is faster (bench/search_latency.py).
EXACT_LIMIT = 5_000
# Deleted points still cost memory and search time; past this share the graph is rebuilt.
MAX_DELETED_SHARE = 0.25
# Another process may be writing its temp file right now; only one this old is a killed process's litter.
STALE_TEMP_AGE = 3600

Finisher = Callable[[np.ndarray], np.ndarray]


class IndexCache:
    """Keeps an in-memory index in step with a library's vectors for one model.

    Args:
        library: the :class:`core.library.Library`.
        finish: raw vectors to unit vectors (``Embedder.finish``).
        fingerprint: identifies the model and its post-processing; a stamp with
            another fingerprint is never used.
        dim: vector length.
    """

    def __init__(self, library, finish: Finisher, fingerprint: str, dim: int) -> None:
        self.library = library
        self.folder = Path(library.folder)
        self.finish = finish
        self.fingerprint = fingerprint
        self.dim = dim
        self.index: VectorIndex | None = None
        self.generation = -1
        self._saved = -1
        self._lock = threading.RLock()

    def current(self) -> VectorIndex:
        """The index, brought up to the library's current generation first."""
        with self._lock:
            generation = self.library.generation()
            if self.index is None:
                self._load_or_build(generation)
            elif generation != self.generation:
                self._patch(generation)
            return self.index

    def save(self) -> None:
        """Bring the file on disk up to date, for the next process to load quickly.

        The indexer calls this when it finishes; readers only patch their memory copy,
        so a search during indexing never writes a whole graph.
        """
        with self._lock:
            generation = self.library.generation()
            if self.index is None:
                try:
                    stamp = read_stamp(self.folder)
                except CacheInvalid:
                    stamp = None
                if stamp and stamp.get("generation") == generation and stamp.get("fingerprint") == self.fingerprint \
                        and (self.folder / str(stamp.get("file"))).is_file():
                    return
            self.current()
            if self._saved != self.generation:
                self._save_if_graph()

    def rebuild(self) -> VectorIndex:
        """Build from SQLite, ignoring any file; saved when it is a graph."""
        with self._lock:
            self._build(self.library.generation())
            return self.index

    # -- internals ---------------------------------------------------------------
    def _load_or_build(self, generation: int) -> None:
        loaded = self._load()
        if loaded is None:
            self._build(generation)
            return
        self.index, self.generation = loaded
        if self.generation != generation:
            self._patch(generation)

    def _build(self, generation: int) -> None:
        count = len(self.library.vector_ids())
        index: VectorIndex = ExactIndex(self.dim) if count < EXACT_LIMIT else HnswIndex(self.dim, count)
        for ids, raw, _ in self.library.iter_vectors(0):
            index.add(ids, self.finish(raw))
        self.index, self.generation = index, generation
        log.info("built %s index of %d vectors at generation %d", index.kind, len(index), generation)
        self._save_if_graph()

    def _patch(self, generation: int) -> None:
        """Add what was written since our generation and drop what was deleted."""
        index = self.index
        for ids, raw, _ in self.library.iter_vectors(self.generation):
            index.add(ids, self.finish(raw))
        gone = np.setdiff1d(index.labels(), self.library.vector_ids())
        index.remove(gone)
        self.generation = generation
        if isinstance(index, ExactIndex) and len(index) >= EXACT_LIMIT * 1.1:
            self._build(generation)
        elif isinstance(index, HnswIndex) and (len(index.deleted) > MAX_DELETED_SHARE * max(len(index), 1)
                                               or len(index) < EXACT_LIMIT * 0.9):
            self._build(generation)

    def _save_if_graph(self) -> None:
        self._saved = self.generation
        if isinstance(self.index, HnswIndex):
            try:
                save_graph(self.folder, self.index, self.generation, self.fingerprint)
            except OSError as exc:
                log.warning("could not save the search index cache (%s); it will be rebuilt next time", exc)
        else:
            remove_cache(self.folder)

    def _load(self) -> tuple[HnswIndex, int] | None:
        try:
            return load_graph(self.folder, self.fingerprint, self.dim)
        except CacheInvalid as exc:
            log.info("search index cache not used: %s", exc)
            return None


class CacheInvalid(Exception):
    """The cache file cannot be used (missing, for another model, or damaged); rebuild it."""


def _lock(folder: Path, exclusive: bool) -> FileLock:
    """Stamp and graph are read and replaced as a pair under this lock."""
    return FileLock(folder / LOCK, exclusive=exclusive)


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return time.time()


def read_stamp(folder: Path) -> dict | None:
    try:
        return json.loads((Path(folder) / STAMP).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise CacheInvalid(f"unreadable stamp ({exc})") from exc


def save_graph(folder: Path, index: HnswIndex, generation: int, fingerprint: str) -> None:
    """Write the graph, then commit it by replacing the stamp; old graphs are deleted.

    The graph (the slow part) is written and checksummed outside the lock, so a
    reader is not held up meanwhile; the lock covers moving it into place, the
    stamp and the clean-up.
    """
    folder = Path(folder)
    name = f"index.{generation}.{os.getpid()}.hnsw"
    with contextlib.ExitStack() as locked:
        with atomic_path(folder / name) as tmp:
            index.graph.save_index(str(tmp))
            stamp = {"format": FORMAT, "generation": generation, "fingerprint": fingerprint, "file": name,
                     "sha256": content_hash(tmp), "count": len(index), "deleted": sorted(index.deleted),
                     "dim": index.dim, "M": HNSW_M, "ef_construction": HNSW_EF_CONSTRUCTION}
            # Taken last in this block and held past the rename that ends it, until the stamp is written.
            locked.enter_context(_lock(folder, exclusive=True))
        write_text_atomic(folder / STAMP, json.dumps(stamp))
        now = time.time()
        for old in [*folder.glob("index.*.hnsw"), *folder.glob(f".index.*{TEMP_SUFFIX}")]:
            litter = old.suffix == ".hnsw" or now - _mtime(old) > STALE_TEMP_AGE
            if old.name != name and litter:
                with contextlib.suppress(OSError):
                    old.unlink()


def remove_cache(folder: Path) -> None:
    """Small libraries are searched exactly; an old graph file would only go stale."""
    folder = Path(folder)
    with _lock(folder, exclusive=True):
        for path in [folder / STAMP, *folder.glob("index.*.hnsw")]:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()


def load_graph(folder: Path, fingerprint: str, dim: int) -> tuple[HnswIndex, int]:
    """Load the cached graph after checking its stamp and checksum.

    A damaged file must never reach hnswlib's loader, which trusts its input.

    Raises:
        CacheInvalid: missing, for another model, or damaged.
    """
    import hnswlib

    folder = Path(folder)
    with _lock(folder, exclusive=False):
        stamp = read_stamp(folder)
        if stamp is None:
            raise CacheInvalid("no cache file")
        try:
            if stamp["format"] != FORMAT or stamp["fingerprint"] != fingerprint or stamp["dim"] != dim:
                raise CacheInvalid("made for another model or format")
            path = folder / stamp["file"]
            if content_hash(path) != stamp["sha256"]:
                raise CacheInvalid(f"{path.name} is damaged (checksum mismatch)")
            graph = hnswlib.Index(space="cosine", dim=dim)
            graph.load_index(str(path))
        except CacheInvalid:
            raise
        except (KeyError, TypeError, OSError, RuntimeError) as exc:
            raise CacheInvalid(f"cannot load ({exc})") from exc
    return HnswIndex(dim, graph=graph, deleted=stamp.get("deleted", [])), int(stamp["generation"])


def index_health(folder: Path, generation: int, model, count: int | None = None) -> dict:
    """A short description of the cache for ``aladin status``; never raises."""
    if count is not None and count < EXACT_LIMIT:
        return {"state": "exact", "detail": f"{count} vectors: searched exactly, no cache file needed"}
    try:
        stamp = read_stamp(Path(folder))
    except CacheInvalid as exc:
        return {"state": "damaged", "detail": str(exc)}
    if stamp is None:
        return {"state": "missing", "detail": "no index file; it is built on the next search"}
    path = Path(folder) / str(stamp.get("file"))
    if not path.is_file():
        return {"state": "damaged", "detail": f"{path.name} is missing; rebuilt on the next search"}
    if model is not None and not str(stamp.get("fingerprint", "")).startswith(model.checksum):
        return {"state": "stale", "detail": "made for another model; rebuilt on the next search"}
    if stamp.get("generation") != generation:
        return {"state": "stale", "detail": f"generation {stamp.get('generation')} < {generation}; "
                                            "patched on the next search"}
    return {"state": "fresh", "detail": f"{stamp.get('count')} vectors, generation {generation}"}


def fingerprint(embedder) -> str:
    """Model checksum, vector kind and post-processing: what a cached unit vector depends on."""
    post = embedder.post
    digest = hashlib.sha256()
    if post is not None:
        digest.update(np.ascontiguousarray(post.mean, np.float32).tobytes())
        digest.update(np.ascontiguousarray(post.scale, np.float32).tobytes())
    return f"{embedder.model.checksum}:{embedder.which}:{digest.hexdigest()[:16]}"
