"""Style search: one image, or a moodboard of several, against a library.

A moodboard is queried by the re-normalised mean of its images' unit vectors
(the paper's multi-image query, sec. 5.7), with optional per-image weights.
Negative images are averaged the same way and subtracted at
``NEGATIVE_STRENGTH``, which turns the query away from their style without
letting a single "less like this" outweigh the whole board.

Results are ranked by CSLS, a hubness correction, unless the filters ask for the
plain cosine; after the first five, by the query and those five together
(:mod:`core.expansion`), unless the filters ask otherwise or the query is a moodboard
of several positive images. Every result carries the
calibrated score of its own cosine to the query (:mod:`core.calibration`, which also
holds the measurements behind CSLS and the scores).
"""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

import numpy as np

from core.calibration import CSLS_POOL, Calibration, LibraryScores, csls, label_for
from core.embedder import Embedder, l2_normalise
from core.errors import LibraryError, ModelMismatchError, QueryError
from core.expansion import expanded_order
from core.files import content_hash
from core.index_cache import IndexCache, fingerprint
from core.library import Library
from core.modelfile import distinct_names
from core.query import QueryItem, SearchFilters, SearchResult
from core.vector_index import FILTER_EXACT_MAX, ExactIndex

__all__ = ["NEGATIVE_STRENGTH", "QueryItem", "SearchFilters", "SearchResult", "Searcher"]

NEGATIVE_STRENGTH = 0.5


class Searcher:
    """Answers queries for one library with the library's own model.

    Raises:
        LibraryError: the library holds no vectors yet; from any search, its database cannot be
            read (:class:`core.errors.LibraryDamagedError`, :class:`core.errors.LibraryBusyError`).
        ModelMismatchError: ``embedder`` runs another model than the one the library was built with;
            from any search, the library has switched to another model since (open a new searcher).
    """

    def __init__(self, library: Library, embedder: Embedder) -> None:
        _check_model(library, embedder)
        self.library = library
        self.embedder = embedder
        self.cache = IndexCache(library, embedder.finish, fingerprint(embedder), embedder.dim)
        # The ids the last folder filter allowed, by filter and library state: at 1M images, reading a
        # folder of 100k ids through the ORM took 90 of a filtered search's 107 ms (bench/library_scale.py).
        self._allowed_last: tuple[tuple, np.ndarray] | None = None
        self.scores = LibraryScores()

    def search(self, items: list[QueryItem], filters: SearchFilters | None = None) -> list[SearchResult]:
        """Images most like the positive items and least like the negative ones.

        The query images themselves, byte-identical copies of them, and (when
        asked) anything in the query images' folders are left out; the result
        list is still filled up to ``filters.k``.
        """
        filters = filters or SearchFilters()
        positives = [i for i in items if not i.negative]
        negatives = [i for i in items if i.negative]
        if not positives:
            raise QueryError("a search needs at least one (positive) query image")
        if any(not np.isfinite(i.weight) or i.weight <= 0 for i in items):
            raise QueryError("image weights must be positive numbers")
        vectors, exclude = self._query_vectors([i.path for i in items])
        weights = np.array([i.weight for i in items], dtype=np.float32)[:, None]
        neg_mask = np.array([i.negative for i in items])
        q = _mean_direction(vectors[~neg_mask], weights[~neg_mask])
        if negatives:
            q = l2_normalise(q - NEGATIVE_STRENGTH * _mean_direction(vectors[neg_mask], weights[neg_mask]))
        folders = {str(Path(i.path).resolve().parent) for i in items} if filters.exclude_query_folders else set()
        if len(positives) > 1:
            # A moodboard already asks for several images' styles; expanding it by its first matches pulled the
            # rest of the list towards whichever one style those shared (core.expansion).
            filters = replace(filters, expand=False)
        return self._run(q, exclude, folders, filters)

    def more_like(self, image_id: int, filters: SearchFilters | None = None) -> list[SearchResult]:
        """"More like this" for a library image: its stored vector, no decoding."""
        filters = filters or SearchFilters()
        raw = self.library.raw_vectors([image_id])
        if image_id not in raw:
            raise QueryError(f"image {image_id} is not in the library (or has no vector)")
        q = self.embedder.finish(raw[image_id][None, :])[0]
        paths = self.library.image_paths([image_id])
        exclude = {image_id}
        digest = self.library.content_hashes([image_id]).get(image_id)
        if digest:
            exclude |= self.library.ids_with_hashes([digest])
        folders = {str(Path(paths[image_id]).parent)} if filters.exclude_query_folders and image_id in paths else set()
        return self._run(q, exclude, folders, filters)

    # -- internals ---------------------------------------------------------------
    def _query_vectors(self, paths: list[str]) -> tuple[np.ndarray, set[int]]:
        """Unit vectors for the query images, and the library ids they must not find.

        An unchanged library image reuses its stored vector; anything else is decoded
        and embedded with the library's model.
        """
        vectors = np.zeros((len(paths), self.embedder.dim), np.float32)
        exclude: set[int] = set()
        digests = []
        to_embed: list[int] = []
        for n, path in enumerate(paths):
            if not Path(path).is_file():
                raise QueryError(f"{path}: no such image file")
            found = self.library.find_image(path)
            st = os.stat(path)
            if found is not None:
                exclude.add(found[0])
                if (found[1], found[2]) == (st.st_size, st.st_mtime_ns):
                    raw = self.library.raw_vectors([found[0]])
                    if found[0] in raw:
                        vectors[n] = self.embedder.finish(raw[found[0]][None, :])[0]
                        if found[3]:
                            digests.append(found[3])
                        continue
            to_embed.append(n)
            digests.append(content_hash(path))
        if to_embed:
            out, errors = self.embedder.embed_paths([paths[n] for n in to_embed], batch_size=len(to_embed), workers=0)
            if errors:
                bad, reason = next(iter(errors.items()))
                raise QueryError(f"cannot use query image {bad}: {reason}")
            vectors[to_embed] = out
        exclude |= self.library.ids_with_hashes(digests)
        return vectors, exclude

    def _allowed(self, filters: SearchFilters) -> np.ndarray | None:
        """Ids under the filter folders, or None for no filter.

        Raises:
            QueryError: a filter folder is outside the library; it would silently match nothing.
        """
        if not filters.roots and not filters.folder:
            return None
        key = (tuple(filters.roots or ()), filters.folder, self.library.state())
        last = self._allowed_last
        if last is not None and last[0] == key:
            return last[1]
        roots = [r.path for r in self.library.roots()]
        for folder in [*(filters.roots or []), *([filters.folder] if filters.folder else [])]:
            if not any(Path(folder).resolve().is_relative_to(root) for root in roots):
                raise QueryError(f"{folder} is not in the library; its folders are: {', '.join(roots)}")
        allowed = None
        if filters.roots:
            allowed = self.library.ids_under(filters.roots)
        if filters.folder:
            inside = self.library.ids_under([filters.folder])
            allowed = inside if allowed is None else allowed & inside
        ids = np.fromiter(allowed, np.int64, len(allowed))
        self._allowed_last = (key, ids)
        return ids

    def _run(self, q: np.ndarray, exclude: set[int], folders: set[str], filters: SearchFilters) -> list[SearchResult]:
        if filters.k < 1:
            raise QueryError("k must be at least 1")
        allowed = self._allowed(filters)
        index = library_index = self.cache.current()
        # After the index was brought up to date: a model switch committed before that shows here,
        # so vectors of another model are never ranked (or finished) as this model's.
        _check_model(self.library, self.embedder)
        if allowed is not None and len(allowed) <= FILTER_EXACT_MAX and index.kind == "hnsw":
            # A small sub-folder: its vectors straight from SQLite beat any walk through the graph.
            raw = self.library.raw_vectors(allowed.tolist())
            exact = ExactIndex(self.embedder.dim)
            if raw:
                ids = np.fromiter(raw, np.int64, len(raw))
                exact.add(ids, self.embedder.finish(np.stack([raw[int(i)] for i in ids])))
            index, allowed = exact, None
        limit = len(index) if allowed is None else len(allowed)
        calibration = self.scores.calibration(library_index)
        floor = calibration.cosine_at(filters.min_score) if filters.min_score else float("-inf")
        fetch = min(limit, filters.k + len(exclude) + (CSLS_POOL if filters.csls or filters.expand else 0))
        while True:
            ids, cosines = index.query(q, fetch, allowed)
            # Cosines come best first: once one is under the floor, asking for more finds nothing.
            more = len(ids) == fetch and (not len(ids) or cosines[-1] >= floor)
            keep = cosines >= floor
            ids, cosines = ids[keep], cosines[keep]
            # r(x) is measured against the whole library, also when a sub-folder is searched.
            hubness = self.scores.hubness(library_index, ids) if filters.csls and len(ids) else None
            if hubness is not None:
                order = np.argsort(-csls(cosines, hubness), kind="stable")
                ids, cosines, hubness = ids[order], cosines[order], hubness[order]
            paths = self.library.image_paths([int(i) for i in ids])
            found = np.array([n for n, i in enumerate(ids.tolist()) if (path := paths.get(i)) is not None
                              and i not in exclude and not (folders and str(Path(path).parent) in folders)], np.int64)
            if filters.expand and len(found):
                # Expanded among the candidates the query may find, never towards an excluded copy of itself.
                found = found[expanded_order(q, index.vectors(ids[found]),
                                             hubness[found] if hubness is not None else None)]
            results = [SearchResult(path=paths[int(ids[n])], score=float(cosines[n]), rank=rank,
                                    image_id=int(ids[n])) for rank, n in enumerate(found[:filters.k], 1)]
            if len(results) == filters.k or fetch >= limit or not more:
                return _calibrated(results, calibration)
            # Exclusions ate into the top k: ask again for more rather than return a short list.
            fetch = min(limit, fetch * 4)


def _calibrated(results: list[SearchResult], calibration: Calibration) -> list[SearchResult]:
    percentiles = calibration.percentile(np.array([r.score for r in results], np.float32))
    for result, p in zip(results, percentiles.tolist()):
        result.percentile = p if np.isfinite(p) else None
        result.label = label_for(result.percentile)
    return results


def _check_model(library: Library, embedder: Embedder) -> None:
    """Refuse to search the library with another model than the one that made its vectors.

    Raises:
        LibraryError: the library holds no vectors yet.
        ModelMismatchError: the library's vectors come from another model (it may just have switched).
    """
    record = library.model_record()
    if record is None:
        raise LibraryError(f"the library {library.folder} is empty; index a folder first (aladin index FOLDER)")
    if record.checksum != embedder.model.checksum or record.which != embedder.which:
        old, new = distinct_names((record.name, record.checksum),
                                  (embedder.model.info.name, embedder.model.checksum))
        keeps = embedder.makes_vectors_of(record.checksum, record.which)
        raise ModelMismatchError(
            f"the library was indexed with model {old} ({record.which}, {record.source}); "
            f"searching it with {new} ({embedder.which}) would compare "
            "incompatible vectors. Search with the library's model, or re-index with --switch-model"
            + (" (which keeps the stored vectors: the new model only re-weights them)" if keeps else ""),
            updated=record.name == embedder.model.info.name, keeps_vectors=keeps)


def _mean_direction(vectors: np.ndarray, weights: np.ndarray) -> np.ndarray:
    return l2_normalise((vectors * weights).sum(0) / weights.sum())
