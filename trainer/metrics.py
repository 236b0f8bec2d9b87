"""Retrieval metrics in the paper's sense (sec. 5.3), and two diagnostics of our own.

P@k is the share of queries with at least one same-group result among the top
k (the query itself excluded), not the mean precision of the top k. mAP is
the mean over queries of average precision with every other member of the
query's group relevant. Queries whose group has no other member in the set
cannot be scored and are counted separately.

Every figure comes from one ranking per query (:func:`score_queries`), so the
per-source breakdown and the content trap are subsets of the same numbers as
the headline metrics, never a second ranking that could disagree with it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from core.calibration import CSLS_POOL, LibraryScores, csls
from core.expansion import expanded_order
from core.query import SearchFilters
from core.vector_index import ExactIndex

KS = (1, 5, 10)
# Results a search asks for unless told otherwise: where the app re-ranks, ``app_ranking`` re-ranks too.
DEFAULT_K = SearchFilters().k


def rank_others(vectors: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Every other item for each query row, best first by cosine score, and the scores in that order.

    Stable sort: ties keep collection order, so results are reproducible and the
    gallery shows exactly the ranking that the metrics score.
    """
    sims = vectors[rows] @ vectors.T
    sims[np.arange(len(rows)), rows] = -np.inf
    order = np.argsort(-sims, axis=1, kind="stable")[:, :-1]
    return order, np.take_along_axis(sims, order, axis=1)


Ranker = Callable[[np.ndarray, np.ndarray], np.ndarray]
# The rankings ``app_ranking`` can reproduce, as ``trainer eval --ranking`` names them.
RANKINGS = ("cosine", "csls", "expand", "search")


def app_ranking(vectors: np.ndarray, ranking: str, k: int = DEFAULT_K) -> Ranker | None:
    """A ranker that orders a gallery as the app's search orders a library of it (:mod:`core.search`).

    As the app does, it re-ranks only the first ``k + CSLS_POOL`` items by cosine: by CSLS with
    r(x) measured by the app's own :class:`core.calibration.LibraryScores` ("csls"), by the
    expanded query (:mod:`core.expansion`; "expand"), or both, the app's default ("search"); the
    rest stay in cosine order. "cosine" is the plain ranking (None: :func:`rank_others`).
    """
    if ranking not in RANKINGS:
        raise ValueError(f"unknown ranking {ranking!r}; choose from {', '.join(RANKINGS)}")
    if ranking == "cosine":
        return None
    hubness = None
    if ranking in ("csls", "search"):
        index = ExactIndex(vectors.shape[1])
        index.add(np.arange(len(vectors)), vectors)
        hubness = LibraryScores().hubness(index, np.arange(len(vectors)))
    expand = ranking in ("expand", "search")
    pool = k + CSLS_POOL

    def rank(vectors: np.ndarray, rows: np.ndarray) -> np.ndarray:
        order, cosines = rank_others(vectors, rows)
        for n, row in enumerate(rows):
            head = order[n, :pool]
            if hubness is not None:
                head = head[np.argsort(-csls(cosines[n, :pool], hubness[head]), kind="stable")]
            if expand:
                head = head[expanded_order(vectors[row], vectors[head],
                                           hubness[head] if hubness is not None else None)]
            order[n, :pool] = head
        return order

    return rank


@dataclass
class QueryResults:
    """Outcome of every query, so any subset of queries can be summarised without ranking again.

    ``hits[k]``, ``ap`` and ``top1`` are meaningful only where ``scorable`` is true.
    """

    scorable: np.ndarray
    hits: dict[int, np.ndarray]
    ap: np.ndarray
    top1: np.ndarray


def score_queries(vectors: np.ndarray, labels: np.ndarray, ks: tuple[int, ...] = KS,
                  chunk: int = 512, rank: Ranker | None = None) -> QueryResults:
    """Rank the set against each scorable item, blockwise to bound memory.

    ``rank(vectors, rows)`` gives every other item's position for each query row, best first
    (default: by cosine, :func:`rank_others`; :func:`app_ranking` ranks as the app's search does).
    """
    vectors = np.asarray(vectors, np.float32)
    labels = np.asarray(labels)
    n = len(labels)
    _, inverse, counts = np.unique(labels, return_inverse=True, return_counts=True)
    scorable = counts[inverse] > 1
    hits = {k: np.zeros(n, bool) for k in ks}
    ap = np.zeros(n, np.float64)
    top1 = np.full(n, -1, np.int64)
    ranks = np.arange(1, n)
    for start in range(0, n, chunk):
        rows = np.arange(start, min(n, start + chunk))
        rows = rows[scorable[rows]]
        if not len(rows):
            continue
        order = rank_others(vectors, rows)[0] if rank is None else rank(vectors, rows)
        relevant = labels[order] == labels[rows][:, None]
        for k in ks:
            hits[k][rows] = relevant[:, :k].any(1)
        precision = np.cumsum(relevant, axis=1) / ranks
        ap[rows] = (precision * relevant).sum(1) / relevant.sum(1)
        top1[rows] = order[:, 0]
    return QueryResults(scorable=scorable, hits=hits, ap=ap, top1=top1)


def summarise(results: QueryResults, mask: np.ndarray | None = None) -> dict:
    """P@k, mAP and query counts over all items, or over the items where ``mask`` is true."""
    within = np.ones(len(results.scorable), bool) if mask is None else np.asarray(mask, bool)
    chosen = results.scorable & within
    queries = int(chosen.sum())
    out = {f"P@{k}": float(hit[chosen].sum()) / queries if queries else 0.0 for k, hit in results.hits.items()}
    out["mAP"] = float(results.ap[chosen].sum()) / queries if queries else 0.0
    out["queries"] = queries
    out["unscorable_queries"] = int(within.sum()) - queries
    return out


def retrieval_metrics(vectors: np.ndarray, labels: np.ndarray, ks: tuple[int, ...] = KS,
                      chunk: int = 512) -> dict:
    """P@k and mAP for unit ``vectors`` ranked by cosine similarity."""
    return summarise(score_queries(vectors, labels, ks, chunk))


def by_source(results: QueryResults, sources: np.ndarray, labels: np.ndarray | None = None,
              contents: np.ndarray | None = None) -> dict[str, dict]:
    """The metrics of the queries from each source, still ranked against the whole set.

    A pooled P@1 hides a source the model cannot handle behind a large easy one;
    the gallery a query searches is the whole set, as in the app. With
    ``labels`` and ``contents`` each source also gets its content trap.
    """
    sources = np.asarray(sources)
    out = {}
    for s in sorted(set(sources.tolist())):
        out[str(s)] = summarise(results, sources == s)
        if labels is not None and contents is not None:
            out[str(s)]["content_trap"] = content_trap(results, labels, contents, sources == s)
    return out


def mean_over(rows: list[dict]) -> dict:
    """Unweighted mean of per-source (or per-fold) figures, so a small source counts as much as a large one.

    Rows without a scorable query carry no figure and are left out; the content
    trap share is averaged over the rows where it could be measured (``None``
    when none could).
    """
    scored = [r for r in rows if r["queries"]]
    keys = [k for k in rows[0] if k.startswith("P@") or k == "mAP"] if rows else []
    out: dict = {k: float(np.mean([r[k] for r in scored])) if scored else 0.0 for k in keys}
    shares = [r["content_trap"]["share"] for r in scored
              if r.get("content_trap") and r["content_trap"]["share"] is not None]
    out["content_trap"] = float(np.mean(shares)) if shares else None
    out["count"] = len(scored)
    return out


def confusions(results: QueryResults, labels: np.ndarray, most: int = 10) -> list[dict]:
    """The pairs of groups that wrong first results most often join, either way round, most first.

    Where a model's misses go says whether it confuses styles that are kin (a theme and its fork) or
    ones that only share subjects; ``most`` pairs are kept, ties in name order.
    """
    labels = np.asarray(labels)
    rows = np.flatnonzero(results.scorable & (labels[results.top1] != labels))
    counts: dict[tuple[str, str], int] = {}
    for query, top in zip(labels[rows], labels[results.top1[rows]]):
        pair = tuple(sorted((str(query), str(top))))
        counts[pair] = counts.get(pair, 0) + 1
    ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0]))[:most]
    return [{"groups": list(pair), "queries": n} for pair, n in ranked]


def content_trap(results: QueryResults, labels: np.ndarray, contents: np.ndarray,
                 mask: np.ndarray | None = None) -> dict:
    """How often the top result is the same picture in another style rather than the query's style.

    Measurable queries are the scorable ones whose content id is shared by an
    image of another group; for them a content-driven model can be fooled. The
    share is of those queries (``None`` when there are none), so it reads the
    same on a set with few stylised images as on one with many. ``mask``
    restricts the queries (e.g. to one source); their results still come from
    the whole set.
    """
    labels = np.asarray(labels)
    contents = np.asarray(contents, dtype=object)
    groups_of: dict[str, set] = {}
    for content, group in zip(contents, labels):
        if content:
            groups_of.setdefault(content, set()).add(group)
    shared = np.array([bool(c) and len(groups_of[c]) > 1 for c in contents], bool)
    measurable = results.scorable & shared
    if mask is not None:
        measurable &= np.asarray(mask, bool)
    rows = np.flatnonzero(measurable)
    top = results.top1[rows]
    trapped = int(((contents[top] == contents[rows]) & (labels[top] != labels[rows])).sum())
    return {"share": trapped / len(rows) if len(rows) else None, "trapped": trapped, "measurable": int(len(rows))}
