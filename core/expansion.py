"""Average query expansion: a query's first matches help rank the rest of its list.

One query image shows a style through one subject. Its first few matches show the same style
through other subjects, so the mean direction of the query and those matches (average query
expansion, Chum et al. 2007, "Total recall") points more at the style and less at the query's
own picture. The search ranks the candidates after its first ``TOP`` results by that direction;
those first results stay where the plain ranking put them, so P@1 and P@5 cannot change.

Measured with the default model through the app's ranking (CSLS, ``core.calibration``), every
image of a gallery a query against the rest (``python -m trainer eval --split all --ranking
search`` against ``--ranking csls``; the figures are in MODEL.md, "Query expansion"): mAP and the
share of the first ten results in the query's style rise on every set; the share of queries with
at least one result in their style among the first ten falls by about two points (when the first
results are wrong, the rest follow them). ``TOP`` was chosen on the 17 unseen game-art validation
sources and their JPEG variant only (scratch: 3 to 8 within 0.2 points of each other on the mean
of P@1 and mAP; 5 kept, which also keeps P@5); the independent benchmark was scored afterwards.

A moodboard of several positive images is not expanded (``core.search``): its first matches tend
to share one of its styles, and expanding by them crowded out the others (scratch, boards of two
images of different groups: both groups among the first 20 results for 69 % of boards without
expansion and 49 % with it on the validation sources, 85 % and 68 % on the icons; as many results
of either group in all).
"""

from __future__ import annotations

import numpy as np

from core.calibration import csls

# Matches averaged with the query (the query counts once, each match once).
TOP = 5
# Searches expand unless they ask not to (``SearchFilters.expand``).
EXPAND_DEFAULT = True


def expanded_order(query: np.ndarray, vectors: np.ndarray, hubness: np.ndarray | None = None,
                   top: int = TOP) -> np.ndarray:
    """Positions of the candidate ``vectors`` (unit rows, best first) in expanded order.

    The first ``top`` candidates keep their places; the others are ranked by their cosine to
    the re-normalised sum of ``query`` and those ``top``, corrected for hubness
    (``2 cos - r(x)``) where ``hubness`` gives r(x) per candidate, as the first ranking was.
    Ties keep the first ranking's order.
    """
    n = len(vectors)
    if n <= top + 1 or top < 1:
        return np.arange(n)
    direction = np.asarray(query, np.float32) + vectors[:top].sum(0, dtype=np.float32)
    norm = float(np.linalg.norm(direction))
    if not np.isfinite(norm) or norm == 0.0:
        return np.arange(n)
    scores = vectors[top:] @ (direction / norm)
    if hubness is not None:
        scores = csls(scores, np.asarray(hubness)[top:])
    return np.concatenate([np.arange(top), top + np.argsort(-scores, kind="stable")])
