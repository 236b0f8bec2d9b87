"""Retrieval metrics in the paper's sense (sec. 5.3).

P@k is the share of queries with at least one same-group result among the top
k (the query itself excluded), not the mean precision of the top k. mAP is
the mean over queries of average precision with every other member of the
query's group relevant. Queries whose group has no other member in the set
cannot be scored and are counted separately.
"""

from __future__ import annotations

import numpy as np

KS = (1, 5, 10)


def retrieval_metrics(vectors: np.ndarray, labels: np.ndarray, ks: tuple[int, ...] = KS,
                      chunk: int = 512) -> dict:
    """P@k and mAP for unit ``vectors`` ranked by cosine similarity, blockwise to bound memory."""
    vectors = np.asarray(vectors, np.float32)
    labels = np.asarray(labels)
    n = len(labels)
    _, inverse, counts = np.unique(labels, return_inverse=True, return_counts=True)
    scorable = counts[inverse] > 1
    hits = {k: 0 for k in ks}
    ap_sum = 0.0
    for start in range(0, n, chunk):
        rows = np.arange(start, min(n, start + chunk))
        rows = rows[scorable[rows]]
        if not len(rows):
            continue
        sims = vectors[rows] @ vectors.T
        sims[np.arange(len(rows)), rows] = -np.inf
        # Stable sort: ties keep collection order, so results are reproducible.
        order = np.argsort(-sims, axis=1, kind="stable")[:, :-1]
        relevant = labels[order] == labels[rows][:, None]
        for k in ks:
            hits[k] += int(relevant[:, :k].any(1).sum())
        ranks = np.arange(1, n)
        precision = np.cumsum(relevant, axis=1) / ranks
        ap_sum += float(((precision * relevant).sum(1) / relevant.sum(1)).sum())
    queries = int(scorable.sum())
    out = {f"P@{k}": hits[k] / queries if queries else 0.0 for k in ks}
    out["mAP"] = ap_sum / queries if queries else 0.0
    out["queries"] = queries
    out["unscorable_queries"] = int(n - queries)
    return out
