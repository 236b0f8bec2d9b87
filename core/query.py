"""What a search asks for and what it returns; shared by the store (moodboards) and the searcher."""

from __future__ import annotations

from dataclasses import dataclass

from core.calibration import CSLS_DEFAULT
from core.expansion import EXPAND_DEFAULT


@dataclass
class QueryItem:
    """One query image. Negative items pull the query away from their style ("less like these")."""

    path: str
    weight: float = 1.0
    negative: bool = False


@dataclass
class SearchFilters:
    """Where to look and what to keep. ``roots`` and ``folder`` restrict results to those folders;
    ``exclude_query_folders`` drops results that sit next to a query image; ``min_score`` drops
    results whose calibrated score (0-100, :mod:`core.calibration`) is below it, so fewer than
    ``k`` may come back; ``csls`` ranks by the hubness-corrected score instead of the cosine;
    ``expand`` ranks the results after the first five by the query and those five together
    (:mod:`core.expansion`; not for a moodboard of several positive images)."""

    roots: list[str] | None = None
    folder: str | None = None
    exclude_query_folders: bool = False
    k: int = 20
    min_score: float | None = None
    csls: bool = CSLS_DEFAULT
    expand: bool = EXPAND_DEFAULT


@dataclass
class SearchResult:
    """One found image.

    ``score`` is the raw cosine similarity to the query (-1 to 1), comparable only within one
    library and model. ``percentile`` is the calibrated score: the percentile (0-100) of that
    cosine among the cosines between this library's images and their ten nearest neighbours,
    so 90 means closer than nine in ten of the library's own near neighbours. ``label`` puts it
    in words ("very close", "close", "related", "weak"). Both are None where no calibration
    applies (a cluster listing, a library of one image).
    """

    path: str
    score: float
    rank: int
    image_id: int
    percentile: float | None = None
    label: str | None = None
