"""The search index: a cache of unit vectors, rebuilt or patched from SQLite.

Small libraries are searched exactly with one matrix product; above
``EXACT_LIMIT`` vectors an hnswlib graph (cosine space, labels = image ids) is
kept on disk. The file is only a cache: it carries a stamp (library generation,
model fingerprint, checksum), and whenever it is missing, stale or damaged it
is patched or rebuilt from the vectors in SQLite.

Writes are atomic with a single commit point: the graph goes to a new file
named by generation, then the stamp is replaced (temp file + rename) to point
at it, then the old graph is deleted. A process killed anywhere in between
leaves either the old or the new pair, never a mix.
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

log = logging.getLogger(__name__)

STAMP = "index.json"
LOCK = "index.lock"
FORMAT = 1
# Below this many vectors a brute-force product is exact, needs no build and answers in
# about a millisecond; above it the graph is faster (bench/search_latency.py).
EXACT_LIMIT = 5_000
# Rows per matrix-vector product. Larger products make OpenBLAS wake its threads, which on
# a busy two-core machine costs 10-30 ms per query; 512-row slices stay single-threaded.
EXACT_SLICE = 512
# Graph parameters chosen with bench/search_latency.py on 100k real 896-D style codes:
# recall@10 against exact search was 0.999 for queries in styles the library lacks
# (1.0 for styles it holds) at ef 200, and 0.993 already at ef 50, so ef 200 keeps a 4x
# margin above 0.98 for harder collections at 0.7 ms a query. M 32 built faster than
# M 16 (71 s vs 88 s at 100k on two cores) at the same recall.
HNSW_M = 32
HNSW_EF_CONSTRUCTION = 200
HNSW_EF_SEARCH = 200
# A filter that keeps at most this many images is answered exactly from SQLite;
# a larger one walks the graph with hnswlib's filter.
FILTER_EXACT_MAX = 5_000
# Deleted points still cost memory and search time; past this share the graph is rebuilt.
MAX_DELETED_SHARE = 0.25

Finisher = Callable[[np.ndarray], np.ndarray]


class ExactIndex:
    """All unit vectors in one matrix; a query is one matrix-vector product."""

    kind = "exact"

    def __init__(self, dim: int) -> None:
        self.dim = dim
        self.ids = np.zeros(0, np.int64)
        self.matrix = np.zeros((0, dim), np.float32)

    def __len__(self) -> int:
        return len(self.ids)

    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        self.remove(ids)
        self.ids = np.concatenate([self.ids, ids.astype(np.int64)])
        self.matrix = np.concatenate([self.matrix, vectors.astype(np.float32)])

    def remove(self, ids: np.ndarray) -> None:
        if len(ids) and len(self.ids):
            keep = ~np.isin(self.ids, ids)
            self.ids, self.matrix = self.ids[keep], self.matrix[keep]

    def labels(self) -> np.ndarray:
        return self.ids

    def query(self, q: np.ndarray, k: int, allowed: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        ids, matrix = self.ids, self.matrix
        if allowed is not None:
            mask = np.isin(ids, allowed)
            ids, matrix = ids[mask], matrix[mask]
        return top_k(ids, scores(matrix, q), k)

    def vectors(self, ids: np.ndarray) -> np.ndarray:
        order = {int(i): n for n, i in enumerate(self.ids)}
        return self.matrix[[order[int(i)] for i in ids]]


def scores(matrix: np.ndarray, q: np.ndarray) -> np.ndarray:
    """``matrix @ q`` in slices small enough to stay on one BLAS thread."""
    out = np.empty(len(matrix), np.float32)
    for i in range(0, len(matrix), EXACT_SLICE):
        np.dot(matrix[i:i + EXACT_SLICE], q, out=out[i:i + EXACT_SLICE])
    return out


class HnswIndex:
    """An hnswlib graph; deleted images are marked, not removed, until a rebuild."""

    kind = "hnsw"

    def __init__(self, dim: int, capacity: int = 1024, graph=None) -> None:
        import hnswlib

        self.dim = dim
        if graph is None:
            graph = hnswlib.Index(space="cosine", dim=dim)
            graph.init_index(max_elements=max(capacity, 1024), M=HNSW_M, ef_construction=HNSW_EF_CONSTRUCTION)
        self.graph = graph
        self.graph.set_ef(HNSW_EF_SEARCH)
        self._deleted: set[int] = set()

    def __len__(self) -> int:
        return self.graph.get_current_count() - len(self._deleted)

    @property
    def deleted(self) -> int:
        return len(self._deleted)

    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        if not len(ids):
            return
        need = self.graph.get_current_count() + len(ids)
        if need > self.graph.get_max_elements():
            self.graph.resize_index(int(need * 1.25) + 1024)
        self.graph.add_items(vectors.astype(np.float32), ids.astype(np.int64), num_threads=-1)
        self._deleted.difference_update(int(i) for i in ids)

    def remove(self, ids: np.ndarray) -> None:
        present = set(int(i) for i in self.graph.get_ids_list())
        for i in ids:
            i = int(i)
            if i in present and i not in self._deleted:
                self.graph.mark_deleted(i)
                self._deleted.add(i)

    def labels(self) -> np.ndarray:
        ids = np.asarray(self.graph.get_ids_list(), dtype=np.int64)
        return ids[~np.isin(ids, np.fromiter(self._deleted, np.int64, len(self._deleted)))] if self._deleted else ids

    def query(self, q: np.ndarray, k: int, allowed: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        accept = None
        if allowed is not None:
            allowed_set = set(allowed.tolist()) - self._deleted
            k = min(k, len(allowed_set))
            accept = allowed_set.__contains__
        k = min(k, len(self))
        if k == 0:
            return np.zeros(0, np.int64), np.zeros(0, np.float32)
        self.graph.set_ef(max(HNSW_EF_SEARCH, k))
        try:
            labels, dist = self.graph.knn_query(q[None, :], k=k, num_threads=1, filter=accept)
        except RuntimeError:
            # The graph could not reach k live (or allowed) points: answer exactly instead.
            ids = self.labels() if allowed is None else np.fromiter(allowed_set, np.int64, len(allowed_set))
            return top_k(ids, scores(self.vectors(ids), q), k)
        return labels[0].astype(np.int64), (1.0 - dist[0]).astype(np.float32)

    def vectors(self, ids: np.ndarray) -> np.ndarray:
        if not len(ids):
            return np.zeros((0, self.dim), np.float32)
        return np.asarray(self.graph.get_items(ids.astype(np.int64)), dtype=np.float32)


def top_k(ids: np.ndarray, scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` best (highest score) ids, best first; argpartition keeps it O(n)."""
    k = min(k, len(ids))
    if k == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.float32)
    part = np.argpartition(-scores, k - 1)[:k]
    order = part[np.argsort(-scores[part], kind="stable")]
    return ids[order], scores[order].astype(np.float32)


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
        self.index: ExactIndex | HnswIndex | None = None
        self.generation = -1
        self._saved = -1
        self._lock = threading.RLock()

    def current(self) -> ExactIndex | HnswIndex:
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

    def rebuild(self) -> ExactIndex | HnswIndex:
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
        index: ExactIndex | HnswIndex = ExactIndex(self.dim) if count < EXACT_LIMIT else HnswIndex(self.dim, count)
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
        elif isinstance(index, HnswIndex) and (index.deleted > MAX_DELETED_SHARE * max(len(index), 1)
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


@contextlib.contextmanager
def _file_lock(folder: Path, exclusive: bool) -> Iterator[None]:
    """Stamp and graph are read and replaced as a pair under this lock."""
    try:
        import fcntl
    except ImportError:  # Windows: the single commit point alone keeps it consistent
        yield
        return
    with open(folder / LOCK, "a+b") as fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
        try:
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return time.time()


def _sha256(path: Path) -> str:
    with open(path, "rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


def read_stamp(folder: Path) -> dict | None:
    try:
        return json.loads((Path(folder) / STAMP).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise CacheInvalid(f"unreadable stamp ({exc})") from exc


def save_graph(folder: Path, index: HnswIndex, generation: int, fingerprint: str) -> None:
    folder = Path(folder)
    name = f"index.{generation}.{os.getpid()}.hnsw"
    tmp = folder / (name + ".tmp")
    index.graph.save_index(str(tmp))
    with open(tmp, "rb+") as fh:
        os.fsync(fh.fileno())
    stamp = {"format": FORMAT, "generation": generation, "fingerprint": fingerprint, "file": name,
             "sha256": _sha256(tmp), "count": len(index), "deleted": sorted(index._deleted),
             "dim": index.dim, "M": HNSW_M, "ef_construction": HNSW_EF_CONSTRUCTION}
    with _file_lock(folder, exclusive=True):
        os.replace(tmp, folder / name)
        stamp_tmp = folder / (STAMP + ".tmp")
        stamp_tmp.write_text(json.dumps(stamp), encoding="utf-8")
        os.replace(stamp_tmp, folder / STAMP)
        for old in folder.glob("index.*.hnsw*"):
            # Another process may be writing its own temp file right now; only an old one is litter.
            stale_tmp = old.suffix == ".tmp" and time.time() - _mtime(old) > 3600
            if old.name != name and (old.suffix == ".hnsw" or stale_tmp):
                with contextlib.suppress(OSError):
                    old.unlink()


def remove_cache(folder: Path) -> None:
    """Small libraries are searched exactly; an old graph file would only go stale."""
    folder = Path(folder)
    with _file_lock(folder, exclusive=True):
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
    with _file_lock(folder, exclusive=False):
        stamp = read_stamp(folder)
        if stamp is None:
            raise CacheInvalid("no cache file")
        try:
            if stamp["format"] != FORMAT or stamp["fingerprint"] != fingerprint or stamp["dim"] != dim:
                raise CacheInvalid("made for another model or format")
            path = folder / stamp["file"]
            if _sha256(path) != stamp["sha256"]:
                raise CacheInvalid(f"{path.name} is damaged (checksum mismatch)")
            graph = hnswlib.Index(space="cosine", dim=dim)
            graph.load_index(str(path))
        except CacheInvalid:
            raise
        except (KeyError, TypeError, OSError, RuntimeError) as exc:
            raise CacheInvalid(f"cannot load ({exc})") from exc
    index = HnswIndex(dim, graph=graph)
    index._deleted = set(int(i) for i in stamp.get("deleted", []))
    return index, int(stamp["generation"])


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
