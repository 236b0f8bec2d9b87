"""What a search asks for and what it returns; shared by the store (moodboards) and the searcher."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class QueryItem:
    """One query image. Negative items pull the query away from their style ("less like these")."""

    path: str
    weight: float = 1.0
    negative: bool = False


@dataclass
class SearchFilters:
    """Where to look. ``roots`` and ``folder`` restrict results to those folders;
    ``exclude_query_folders`` drops results that sit next to a query image."""

    roots: list[str] | None = None
    folder: str | None = None
    exclude_query_folders: bool = False
    k: int = 20


@dataclass
class SearchResult:
    path: str
    score: float
    rank: int
    image_id: int
