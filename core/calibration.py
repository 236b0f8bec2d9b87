"""Scores a user can read, and the hubness correction, both measured against one library.

A raw cosine means different things in different libraries: in a set of playing-card decks an
image's ten nearest neighbours lie at a median cosine of 0.98, in a set of icon themes at 0.77
(the default model on ``data/ood``). So every result also gets a **calibrated score**: the
percentile (0-100) of its cosine among the cosines between the library's own images and their
``NEIGHBOURS`` nearest neighbours, measured on a seeded sample of ``SAMPLE`` images. 50 means
"as close to the query as a typical one of an image's ten nearest neighbours in this library";
90 means closer than nine in ten such neighbours. It rises with the cosine and says how good a
cosine is *here*; it ranks nothing (under CSLS, below, and the query expansion of
:mod:`core.expansion`, a result may rank above one with a higher score).

The labels cut the percentile at ``LABELS``. On the out-of-domain benchmark
(``bench/score_calibration.py``: icon themes and card decks in one library, the default model)
the share of a query's top-20 results that were in the query's style was 1.00 for "very close"
(90 and up), 0.98 for "close" (75-90), 0.79 for "related" (40-75) and 0.29 for "weak" (the default
retrained without icon fonts, and the 8x8x8 default before it; the first default gave 1.00 / 0.85 /
0.61 / 0.20; the whitened default of 2026-11-30 gives 1.00 / 1.00 / 0.86 / 0.32, with silhouettes
1.00 / 0.99 / 0.89 / 0.35, with the granulometry too 1.00 / 0.99 / 0.87 / 0.35, and with contrast
patterns and 1,024 directions 1.00 / 0.99 / 0.87 / 0.36, and with the network's share halved 1.00 / 0.99 /
0.89 / 0.36; on the benchmark rebuilt with soft edges kept, data/ood-v2, 1.00 / 0.99 / 0.87 / 0.38, and with
co-occurring patterns 1.00 / 0.99 / 0.90 / 0.40). In the icons alone, where the model is weak (P@1 0.65-0.68),
even "very close" results were in style only 0.74-0.87 of the time: the score says how close a result is in
this library, not that the model is right.
``STRONG`` ("strong matches only") keeps "close" and better.

CSLS (cross-domain similarity local scaling, Conneau et al. 2018, "Word translation without
parallel data") corrects hubs, images that are everybody's nearest neighbour: a result ``x`` is
ranked by ``2 cos(q, x) - r(x)``, where ``r(x)`` is the mean cosine of ``x`` to its
``NEIGHBOURS`` nearest library images. The query's own ``r(q)`` is the same for every result of
one query, so it drops out of the ranking. ``CSLS_DEFAULT`` records what the benchmark showed.
"""

from __future__ import annotations

import threading

import numpy as np

from core.errors import QueryError
from core.vector_index import ExactIndex

# Neighbours per image, for the calibration's distribution and for CSLS's r(x): the value
# Conneau et al. use, fixed before measuring (bench/score_calibration.py also prints 5, 20, 50).
NEIGHBOURS = 10
# Images whose neighbours make the calibration: 5,000 cosines give percentiles to about one
# point. Measured on two cores shared with other work (load 10), synthetic 320-D vectors: 0.2 s
# for a 5,000-vector exact index, 4.5 s for a 100k graph (about 9 ms a neighbour query there,
# against 0.7 ms on quiet cores), paid by the first search and after each DRIFT. r(x) for 300 new
# result candidates then took 0.14 s and 3.1 s; remembered, 0.1 ms.
SAMPLE = 500
# The calibration is kept until the library's size changes by more than this share: a
# distribution estimated from a sample does not move when a few images come or go.
DRIFT = 0.1
# Calibrated score at which each label starts, best first (see the module docstring).
LABELS: tuple[tuple[str, float], ...] = (("very close", 90.0), ("close", 75.0), ("related", 40.0), ("weak", 0.0))
# "Strong matches only": close or better.
STRONG = 75.0
# Ranked by CSLS unless a search asks otherwise. On data/ood with the first default model
# (bench/score_calibration.py), CSLS at k = 10 raised mAP on icons (0.1234 to 0.1278), cards
# (0.4423 to 0.4444) and both in one library (0.2999 to 0.3074), each gain outside its 95 %
# bootstrap interval over queries; P@1 moved within noise (+0.006, 0, +0.005); the skewness of
# N_10 fell from 1.25 to 0.62 (icons). Small gains, but no measured loss. With the 8x8x8 default
# it raised mAP again (icons 0.191 to 0.198, cards 0.571 to 0.574, both 0.397 to 0.410, each
# outside its interval) and P@1 on icons (0.564 to 0.592, interval +0.009 to +0.048) and both
# (+0.011); cards P@1 -0.003 (interval -0.007 to 0). With the retrained network (2026-11-29) mAP
# rose again (icons 0.184 to 0.193, cards 0.564 to 0.567, both 0.390 to 0.405, each outside its
# interval); icons P@1 +0.016 (interval -0.005 to +0.037), cards P@1 unchanged. The whitened default
# (2026-11-30) has more hubs (icons: skewness of N_10 2.5, one image among 69 others' ten nearest); CSLS
# cuts them (0.82, at most 24) and raises icons mAP (0.211 to 0.215, interval +0.000 to +0.007) while P@1
# moves within noise (icons -0.009, interval -0.030 to +0.010; cards -0.001; both -0.005). With silhouettes
# (later that day) the same: icons skewness 2.25 to 0.81, mAP 0.239 to 0.243 (interval +0.000 to +0.007),
# P@1 -0.006 (interval -0.024 to +0.012); cards and both within noise. With the granulometry too: icons
# skewness 2.34 to 0.72, mAP 0.240 to 0.244 (interval -0.000 to +0.007), P@1 -0.007 (interval -0.027 to
# +0.010); cards and both within noise. With contrast patterns and 1,024 directions: icons skewness 2.33 to
# 0.73, mAP 0.246 to 0.249 (interval -0.001 to +0.006), P@1 -0.006 (interval -0.025 to +0.013); with the
# network's share halved, skewness 2.32 to 0.63, mAP 0.249 to 0.252 (interval -0.001 to +0.005), P@1 -0.003
# (interval -0.021 to +0.015). On the benchmark rebuilt with soft edges kept (data/ood-v2, the same model)
# it costs icons P@1 0.674 to 0.652 (interval -0.042 to -0.003; mAP -0.001, skewness 2.59 to 0.99) and
# raises cards mAP 0.710 to 0.717 and both 0.520 to 0.529; on the 17 game-art validation sources, each set one
# library, it raises per-source P@1 / mAP 0.728 / 0.359 to 0.740 / 0.368 (their JPEG variant 0.694 / 0.307 to
# 0.705 / 0.314; scratch e65). Kept: validation decides, and fewer images turn up in every search. With
# co-occurring patterns: icons P@1 0.682 to 0.670 (interval -0.031 to +0.009), mAP -0.004, skewness 2.63 to
# 0.95; cards mAP 0.737 to 0.744 and both 0.542 to 0.552 (each outside its interval).
CSLS_DEFAULT = True
# Extra cosine candidates that CSLS may re-rank beyond the k asked for. On data/ood the full
# CSLS top 10 lay inside the cosine top 110 for 98-100 % of queries.
CSLS_POOL = 100
# Breadth of the graph walks that find an image's nearest neighbours for r(x) and the calibration: a
# search walks 200 wide for its top k, an image's ten nearest need far less.
NEIGHBOUR_EF = 48
# Images per matrix product when an exact index measures neighbours.
EXACT_BLOCK = 256


def label_for(percentile: float | None) -> str | None:
    """The word for a calibrated score; None where there is no score."""
    if percentile is None:
        return None
    return next(name for name, start in LABELS if percentile >= start)


def parse_min_score(text: str) -> float:
    """A ``--min-score`` value: a calibrated score from 0 to 100, or a label name (its lower bound).

    Raises:
        QueryError: neither a number in range nor a label.
    """
    starts = {name: start for name, start in LABELS}
    word = text.strip().lower().replace("-", " ").replace("_", " ")
    if word in starts:
        return starts[word]
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not 0.0 <= value <= 100.0:
        raise QueryError(f"--min-score must be a calibrated score from 0 to 100 or one of "
                         f"{', '.join(repr(n) for n in starts)}; got {text!r}")
    return value


def neighbour_scores(index, ids: np.ndarray, k: int = NEIGHBOURS) -> np.ndarray:
    """Cosines of each of ``ids`` to its ``k`` nearest other images in ``index``, best first.

    Rows are padded with NaN where the library holds fewer than ``k`` other images.
    """
    ids = np.asarray(ids, np.int64)
    out = np.full((len(ids), k), np.nan, np.float32)
    vectors = index.vectors(ids)
    if isinstance(index, ExactIndex):
        # One product per block instead of a query per image: 500 images of a 5,000-vector library
        # took 0.2 s against 0.35-0.45 s (measured under load, see SAMPLE).
        others = min(k, len(index) - 1)
        for start in range(0, len(ids) if others > 0 else 0, EXACT_BLOCK):
            block = slice(start, start + EXACT_BLOCK)
            sims = vectors[block] @ index.matrix.T
            sims[ids[block, None] == index.ids[None, :]] = -np.inf
            best = -np.partition(-sims, others - 1, axis=1)[:, :others]
            out[block, :others] = -np.sort(-best, axis=1)
        return out
    try:
        found, scores = index.neighbours(vectors, min(k + 1, len(index)), NEIGHBOUR_EF)
    except RuntimeError:  # too few live points for the walks: one search each, which can answer exactly
        found, scores = zip(*(index.query(v, k + 1) for v in vectors)) if len(ids) else ((), ())
    for row, i in enumerate(ids):
        others = scores[row][found[row] != i][:k]
        out[row, :len(others)] = others
    return out


def csls(cosines: np.ndarray, hubness: np.ndarray) -> np.ndarray:
    """The CSLS ranking score without the per-query constant: ``2 cos(q, x) - r(x)``."""
    return 2.0 * np.asarray(cosines, np.float32) - np.asarray(hubness, np.float32)


class Calibration:
    """The library's distribution of neighbour cosines, and percentiles against it.

    Args:
        neighbour_cosines: cosines between sampled images and their nearest neighbours (any shape;
            NaN entries are ignored).
    """

    def __init__(self, neighbour_cosines: np.ndarray) -> None:
        values = np.asarray(neighbour_cosines, np.float32).ravel()
        self.sorted = np.sort(values[np.isfinite(values)])

    def __bool__(self) -> bool:
        return len(self.sorted) > 0

    def percentile(self, cosines: np.ndarray) -> np.ndarray:
        """Share (0-100) of the library's neighbour cosines at or below each cosine; NaN without data."""
        cosines = np.asarray(cosines, np.float32)
        if not self:
            return np.full(cosines.shape, np.nan, np.float32)
        return (100.0 * np.searchsorted(self.sorted, cosines, side="right") / len(self.sorted)).astype(np.float32)

    def cosine_at(self, percentile: float) -> float:
        """The lowest cosine whose percentile is at least ``percentile`` (-inf for 0 or without data)."""
        if not self or percentile <= 0:
            return float("-inf")
        rank = int(np.ceil(percentile / 100.0 * len(self.sorted)))
        return float(self.sorted[min(rank, len(self.sorted)) - 1])


class LibraryScores:
    """Calibration and r(x) for one library's index, computed when first needed and then kept.

    Both are rebuilt when the index object is replaced (a rebuild) or the number of vectors
    drifts by more than ``DRIFT``; between those a search costs a lookup, plus r(x) for
    result candidates never seen before (one neighbour query each, then remembered).
    Thread-safe: searches may run in several workers.
    """

    def __init__(self, sample: int = SAMPLE, k: int = NEIGHBOURS, seed: int = 0) -> None:
        self.sample, self.k, self.seed = sample, k, seed
        self._index = None
        self._count = 0
        self._calibration = Calibration(np.zeros(0))
        self._hubness: dict[int, float] = {}
        self._lock = threading.Lock()

    def calibration(self, index) -> Calibration:
        with self._lock:
            self._refresh(index)
            return self._calibration

    def hubness(self, index, ids: np.ndarray) -> np.ndarray:
        """r(x) for each of ``ids``: the mean cosine to its nearest library images."""
        ids = np.asarray(ids, np.int64)
        with self._lock:
            self._refresh(index)
            missing = np.array([i for i in dict.fromkeys(ids.tolist()) if i not in self._hubness], np.int64)
            if len(missing):
                self._remember(missing, neighbour_scores(index, missing, self.k))
            return np.array([self._hubness[int(i)] for i in ids], np.float32)

    def _refresh(self, index) -> None:
        count = len(index)
        if index is self._index and abs(count - self._count) <= DRIFT * max(self._count, 1):
            return
        self._index, self._count, self._hubness = index, count, {}
        labels = index.labels()
        rng = np.random.default_rng(self.seed)
        chosen = rng.choice(labels, min(self.sample, len(labels)), replace=False) if len(labels) else labels
        near = neighbour_scores(index, chosen, self.k)
        self._calibration = Calibration(near)
        self._remember(chosen, near)

    def _remember(self, ids: np.ndarray, near: np.ndarray) -> None:
        valid = np.isfinite(near)
        counts = valid.sum(1)
        means = np.divide(np.where(valid, near, 0.0).sum(1), counts, out=np.zeros(len(ids), np.float64),
                          where=counts > 0)
        self._hubness.update(zip(ids.tolist(), means.tolist()))
