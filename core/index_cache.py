"""The search index cache: an in-memory index kept in step with SQLite, and its file on disk.

Small libraries are searched exactly with one matrix product; above
``EXACT_LIMIT`` vectors an hnswlib graph (:mod:`core.vector_index`) is kept on
disk. The file is only a cache. Its stamp names the exact database state it was
built from (:class:`core.library.LibraryState`: the library's id, a generation
and that generation's random token), the model fingerprint and a checksum. It is
patched forward only from a state the database vouches for
(:meth:`core.library.Library.knows`); a cache of another library, or of a state
the database no longer has (a database restored from a backup counts its
generations again with new tokens, and may give old image ids to new files), is
rebuilt from the vectors in SQLite, as is a missing or damaged one. A read-only
library is searched from memory and nothing is written.

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
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np

from core.files import TEMP_SUFFIX, FileLock, atomic_path, content_hash, write_text_atomic
from core.library import LibraryState
from core.vector_index import HNSW_EF_CONSTRUCTION, HNSW_M, ExactIndex, HnswIndex, VectorIndex

log = logging.getLogger(__name__)

STAMP = "index.json"
LOCK = "index.lock"
GRAPHS = "index.*.hnsw"
# Every file this module keeps in a library folder.
CACHE_FILES = (STAMP, LOCK, GRAPHS)
# 2: the stamp names the library state (library id, generation, token) instead of a bare generation.
FORMAT = 2
# Below this many vectors a brute-force product is exact, needs no build and answers in
# about a millisecond; above it the graph is faster (bench/search_latency.py).
EXACT_LIMIT = 5_000
# Deleted points still cost memory and search time; past this share the graph is rebuilt.
MAX_DELETED_SHARE = 0.25
# Another process may be writing its temp file right now; only one this old is a killed process's litter.
STALE_TEMP_AGE = 3600

Finisher = Callable[[np.ndarray], np.ndarray]
# Whether the library's database went through a state (``Library.knows``).
Vouch = Callable[[LibraryState], bool]


class IndexCache:
    """Keeps an in-memory index in step with a library's vectors for one model.

    Args:
        library: the :class:`core.library.Library`.
        finish: raw vectors to unit vectors (``Embedder.finish``).
        fingerprint: identifies the model and its post-processing; a stamp with
            another fingerprint is never used.
        dim: vector length.

    Raises:
        LibraryError: from every method, when the library's database cannot be read.
    """

    def __init__(self, library, finish: Finisher, fingerprint: str, dim: int) -> None:
        self.library = library
        self.folder = Path(library.folder)
        self.finish = finish
        self.fingerprint = fingerprint
        self.dim = dim
        self.index: VectorIndex | None = None
        self.state: LibraryState | None = None
        self._saved: LibraryState | None = None
        self._lock = threading.RLock()

    def current(self) -> VectorIndex:
        """The index, brought up to the library's current state first."""
        with self._lock:
            state = self.library.state()
            if self.index is None:
                self._load_or_build(state)
            elif state != self.state:
                self._catch_up(state)
            return self.index

    def save(self) -> None:
        """Bring the file on disk up to date, for the next process to load quickly.

        The indexer calls this when it finishes; readers only patch their memory copy,
        so a search during indexing never writes a whole graph.
        """
        with self._lock:
            if self.index is None and self._stamp_names(self.library.state()):
                return
            self.current()
            if self._saved != self.state:
                self._save_if_graph()

    def rebuild(self) -> VectorIndex:
        """Build from SQLite, ignoring any file; saved when it is a graph."""
        with self._lock:
            self._build(self.library.state())
            return self.index

    # -- internals ---------------------------------------------------------------
    def _load_or_build(self, state: LibraryState) -> None:
        try:
            self.index, self.state = load_graph(self.folder, self.fingerprint, self.dim, self.library.knows)
        except CacheInvalid as exc:
            log.info("search index cache not used: %s", exc)
            self._build(state)
            return
        if self.state != state:
            self._patch(state)

    def _catch_up(self, state: LibraryState) -> None:
        """Patch forward from a state the database went through; rebuild when it was replaced under us."""
        if self.library.knows(self.state):
            self._patch(state)
        else:
            log.info("the library database no longer holds the state the search index was built from; rebuilding")
            self._build(state)

    def _build(self, state: LibraryState) -> None:
        count = self.library.vector_count()
        index: VectorIndex = ExactIndex(self.dim) if count < EXACT_LIMIT else HnswIndex(self.dim, count)
        for ids, raw, _ in self.library.iter_vectors(0):
            index.add(ids, self.finish(raw))
        self.index, self.state = index, state
        log.info("built %s index of %d vectors at generation %d", index.kind, len(index), state.generation)
        self._save_if_graph()

    def _patch(self, state: LibraryState) -> None:
        """Add what was written since our generation and drop what was deleted.

        Every vector the database holds is in the index once the newer ones are added (a
        rewritten vector gets a new ``seq``), so equal counts mean nothing was deleted, and
        the list of every id, a second at a million images, is read only when something was.
        A write landing meanwhile moves the generation past ``state``: the next call patches again.
        """
        index = self.index
        for ids, raw, _ in self.library.iter_vectors(self.state.generation):
            index.add(ids, self.finish(raw))
        if len(index) != self.library.vector_count():
            index.remove(np.setdiff1d(index.labels(), self.library.vector_ids()))
        self.state = state
        if isinstance(index, ExactIndex) and len(index) >= EXACT_LIMIT * 1.1:
            self._build(state)
        elif isinstance(index, HnswIndex) and (len(index.deleted) > MAX_DELETED_SHARE * max(len(index), 1)
                                               or len(index) < EXACT_LIMIT * 0.9):
            self._build(state)

    def _save_if_graph(self) -> None:
        self._saved = self.state
        if self.library.read_only:
            return  # searched from memory; a read-only library's files stay as they are
        if isinstance(self.index, HnswIndex):
            try:
                save_graph(self.folder, self.index, self.state, self.fingerprint)
            except OSError as exc:
                log.warning("could not save the search index cache (%s); it will be rebuilt next time", exc)
        else:
            remove_cache(self.folder)

    def _stamp_names(self, state: LibraryState) -> bool:
        """Whether the file on disk is already this model's graph of exactly ``state``."""
        try:
            stamp = read_stamp(self.folder)
            return (stamp is not None and stamp.get("fingerprint") == self.fingerprint
                    and _stamp_state(stamp) == state and (self.folder / str(stamp.get("file"))).is_file())
        except (CacheInvalid, KeyError, TypeError, ValueError):
            return False


class CacheInvalid(Exception):
    """The cache file cannot be used (missing, for another model or library state, or damaged); rebuild it."""


def _lock(folder: Path, exclusive: bool) -> FileLock:
    """Stamp and graph are read and replaced as a pair under this lock."""
    return FileLock(folder / LOCK, exclusive=exclusive)


@contextlib.contextmanager
def _read_lock(folder: Path) -> Iterator[None]:
    """The shared lock, where it can be taken.

    A read-only folder cannot hold a lock file. Reading without it is still safe:
    a stamp and graph replaced meanwhile fail the checksum or are gone, and are rebuilt.
    """
    with contextlib.ExitStack() as stack:
        with contextlib.suppress(OSError):
            stack.enter_context(_lock(folder, exclusive=False))
        yield


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return time.time()


def _stamp_state(stamp: dict) -> LibraryState:
    """The library state a stamp names.

    Raises:
        KeyError, TypeError, ValueError: the stamp is damaged or of an older format.
    """
    return LibraryState(str(stamp["library_id"]), int(stamp["generation"]), str(stamp["token"]))


def read_stamp(folder: Path) -> dict | None:
    try:
        return json.loads((Path(folder) / STAMP).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise CacheInvalid(f"unreadable stamp ({exc})") from exc


def save_graph(folder: Path, index: HnswIndex, state: LibraryState, fingerprint: str) -> None:
    """Write the graph of library ``state``, then commit it by replacing the stamp; old graphs are deleted.

    The graph (the slow part) is written and checksummed outside the lock, so a
    reader is not held up meanwhile; the lock covers moving it into place, the
    stamp and the clean-up.
    """
    folder = Path(folder)
    name = f"index.{state.generation}.{os.getpid()}.hnsw"
    with contextlib.ExitStack() as locked:
        with atomic_path(folder / name) as tmp:
            index.graph.save_index(str(tmp))
            stamp = {"format": FORMAT, "library_id": state.library_id, "generation": state.generation,
                     "token": state.token, "fingerprint": fingerprint, "file": name, "sha256": content_hash(tmp),
                     "count": len(index), "deleted": sorted(index.deleted), "dim": index.dim, "M": HNSW_M,
                     "ef_construction": HNSW_EF_CONSTRUCTION}
            # Taken last in this block and held past the rename that ends it, until the stamp is written.
            locked.enter_context(_lock(folder, exclusive=True))
        write_text_atomic(folder / STAMP, json.dumps(stamp))
        now = time.time()
        for old in [*folder.glob(GRAPHS), *folder.glob(f".index.*{TEMP_SUFFIX}")]:
            litter = old.suffix == ".hnsw" or now - _mtime(old) > STALE_TEMP_AGE
            if old.name != name and litter:
                with contextlib.suppress(OSError):
                    old.unlink()


def remove_cache(folder: Path) -> None:
    """Small libraries are searched exactly; an old graph file would only go stale."""
    folder = Path(folder)
    with _lock(folder, exclusive=True):
        for path in [folder / STAMP, *folder.glob(GRAPHS)]:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()


def load_graph(folder: Path, fingerprint: str, dim: int, knows: Vouch) -> tuple[HnswIndex, LibraryState]:
    """Load the cached graph after checking its stamp and checksum.

    A damaged file must never reach hnswlib's loader, which trusts its input, and a
    graph of a state the database does not vouch for must not be patched: its labels
    may name other images.

    Args:
        folder: the library folder.
        fingerprint: the model's; a graph made with another is not used.
        dim: vector length.
        knows: whether the database went through a library state (``Library.knows``).

    Returns:
        The graph and the library state it was built from (the database went through it).

    Raises:
        CacheInvalid: missing, damaged, or made for another model, another library, or
            a database state this one does not have (restored from a backup).
    """
    import hnswlib

    folder = Path(folder)
    with _read_lock(folder):
        stamp = read_stamp(folder)
        if stamp is None:
            raise CacheInvalid("no cache file")
        try:
            if stamp["format"] != FORMAT or stamp["fingerprint"] != fingerprint or stamp["dim"] != dim:
                raise CacheInvalid("made for another model or format")
            state = _stamp_state(stamp)
            if not knows(state):
                raise CacheInvalid("made for another library, or from a database state it no longer has "
                                   "(restored from a backup?)")
            path = folder / stamp["file"]
            if content_hash(path) != stamp["sha256"]:
                raise CacheInvalid(f"{path.name} is damaged (checksum mismatch)")
            graph = hnswlib.Index(space="cosine", dim=dim)
            graph.load_index(str(path))
        except CacheInvalid:
            raise
        except (KeyError, TypeError, ValueError, OSError, RuntimeError) as exc:
            raise CacheInvalid(f"cannot load ({exc})") from exc
    return HnswIndex(dim, graph=graph, deleted=stamp.get("deleted", [])), state


def index_health(folder: Path, state: LibraryState, knows: Vouch, model, count: int | None = None) -> dict:
    """A short description of the cache for ``aladin status``.

    Raises:
        LibraryError: only from ``knows``, when the database cannot be read.
    """
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
    try:
        built = _stamp_state(stamp) if stamp.get("format") == FORMAT else None
    except (KeyError, TypeError, ValueError):
        built = None
    if built is None:
        return {"state": "stale", "detail": "an older or damaged stamp; rebuilt on the next search"}
    if built.library_id != state.library_id:
        return {"state": "stale", "detail": "made for another library; rebuilt on the next search"}
    if built == state:
        return {"state": "fresh", "detail": f"{stamp.get('count')} vectors, generation {state.generation}"}
    if not knows(built):
        return {"state": "stale", "detail": f"built from generation {built.generation} of a database state this "
                                            "library no longer has (restored from a backup?); rebuilt on the "
                                            "next search"}
    return {"state": "stale", "detail": f"generation {built.generation} < {state.generation}; "
                                        "patched on the next search"}


def fingerprint(embedder) -> str:
    """Model checksum, vector kind and post-processing: what a cached unit vector depends on."""
    post = embedder.post
    digest = hashlib.sha256()
    if post is not None:
        digest.update(np.ascontiguousarray(post.mean, np.float32).tobytes())
        digest.update(np.ascontiguousarray(post.scale, np.float32).tobytes())
    return f"{embedder.model.checksum}:{embedder.which}:{digest.hexdigest()[:16]}"
