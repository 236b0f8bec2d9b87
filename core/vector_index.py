"""In-memory vector indexes that answer "the k most similar unit vectors".

Two backends with one interface (``add``, ``remove``, ``labels``, ``query``,
``vectors``): :class:`ExactIndex` holds every vector in one matrix and answers
with a matrix-vector product; :class:`HnswIndex` walks an hnswlib graph
(cosine space, labels = image ids). Which one a library gets, and keeping it
on disk, is :mod:`core.index_cache`'s job.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable

import numpy as np

# Rows per matrix-vector product. Larger products make OpenBLAS wake its threads, which on
# a busy two-core machine costs 10-30 ms per query; 512-row slices stay single-threaded.
EXACT_SLICE = 512
# Graph parameters chosen with bench/search_latency.py on 100k real 896-D style codes:
# recall@10 against exact search was 0.999 for queries in styles the library lacks
# (1.0 for styles it holds) at ef 200, and 0.993 already at ef 50, so ef 200 keeps a 4x
# margin above 0.98 for harder collections at 0.7 ms a query. M 32 built faster than
# M 16 (71 s vs 88 s at 100k on two cores) at the same recall.
# Checked again on the shipped model's 320-D vectors of real images (bench/library_scale.py):
# at 100k ef_construction 100 would build in 16 s of CPU instead of 37 s at the same recall
# (1.0), but at 1M it falls to 0.95 for library images and 0.97 for outside ones, against
# 0.999 and 0.989 at 200, and no search ef makes up for it (0.96 at ef 800).
HNSW_M = 32
HNSW_EF_CONSTRUCTION = 200
HNSW_EF_SEARCH = 200
# A filter that keeps at most this many images is answered exactly from SQLite;
# a larger one walks the graph with hnswlib's filter. Reading vectors from SQLite costs
# about 9 us of CPU an image, the filtered walk about 0.25 ms / the share of the graph
# allowed, all at recall@10 1.0 (100k images, bench/library_scale.py); they cross near
# 2,000 images there. 5,000 cost 44 ms exactly against 6 ms through the graph.
FILTER_EXACT_MAX = 2_000


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
    """An hnswlib graph; deleted images are marked, not removed, until a rebuild.

    hnswlib keeps its deletion marks inside the graph but offers no way to list
    them, so this class records the labels it marks itself; a saved graph keeps
    that list beside it (see :func:`core.index_cache.save_graph`).

    Args:
        dim: vector length.
        capacity: room to reserve in a new graph; it grows as needed.
        graph: a loaded ``hnswlib.Index`` to wrap instead of a new one.
        deleted: the labels already marked deleted in ``graph``.
    """

    kind = "hnsw"

    def __init__(self, dim: int, capacity: int = 1024, graph=None, deleted: Iterable[int] = ()) -> None:
        import hnswlib

        self.dim = dim
        if graph is None:
            graph = hnswlib.Index(space="cosine", dim=dim)
            graph.init_index(max_elements=max(capacity, 1024), M=HNSW_M, ef_construction=HNSW_EF_CONSTRUCTION)
        self.graph = graph
        self.graph.set_ef(HNSW_EF_SEARCH)
        self._deleted: set[int] = set(int(i) for i in deleted)
        # The walk's breadth (ef) is the graph's, not the query's: a walk sets it and walks under this lock,
        # so a search never runs with the short breadth of a neighbour scan in another thread.
        self._walk = threading.Lock()

    def __len__(self) -> int:
        return self.graph.get_current_count() - len(self._deleted)

    @property
    def deleted(self) -> frozenset[int]:
        """Labels marked deleted: they still cost memory and search time until a rebuild."""
        return frozenset(self._deleted)

    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        if not len(ids):
            return
        need = self.graph.get_current_count() + len(ids)
        if need > self.graph.get_max_elements():
            self.graph.resize_index(int(need * 1.25) + 1024)
        self.graph.add_items(vectors.astype(np.float32), ids.astype(np.int64), num_threads=-1)
        self._deleted.difference_update(int(i) for i in ids)

    def remove(self, ids: np.ndarray) -> None:
        if not len(ids):
            return  # every catch-up calls this; listing a million labels for nothing costs a quarter second
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
        try:
            with self._walk:
                self.graph.set_ef(max(HNSW_EF_SEARCH, k))
                labels, dist = self.graph.knn_query(q[None, :], k=k, num_threads=1, filter=accept)
        except RuntimeError:
            # The graph could not reach k live (or allowed) points: answer exactly instead.
            ids = self.labels() if allowed is None else np.fromiter(allowed_set, np.int64, len(allowed_set))
            return top_k(ids, scores(self.vectors(ids), q), k)
        return labels[0].astype(np.int64), (1.0 - dist[0]).astype(np.float32)

    def neighbours(self, vectors: np.ndarray, k: int, ef: int) -> tuple[np.ndarray, np.ndarray]:
        """The ``k`` nearest labels of each of ``vectors`` with their cosines, by walks of breadth ``ef``:
        an image's very nearest neighbours (duplicates, CSLS's r(x)) need far shorter walks than a search.

        Raises:
            RuntimeError: the graph could not reach ``k`` live points (hnswlib's own error).
        """
        with self._walk:
            self.graph.set_ef(max(ef, k))
            labels, dist = self.graph.knn_query(vectors, k=k, num_threads=-1)
        return labels.astype(np.int64), (1.0 - dist).astype(np.float32)

    def vectors(self, ids: np.ndarray) -> np.ndarray:
        if not len(ids):
            return np.zeros((0, self.dim), np.float32)
        return self.graph.get_items(ids.astype(np.int64), return_type="numpy").astype(np.float32, copy=False)


VectorIndex = ExactIndex | HnswIndex


def top_k(ids: np.ndarray, scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` best (highest score) ids, best first; argpartition keeps it O(n)."""
    k = min(k, len(ids))
    if k == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.float32)
    part = np.argpartition(-scores, k - 1)[:k]
    order = part[np.argsort(-scores[part], kind="stable")]
    return ids[order], scores[order].astype(np.float32)
