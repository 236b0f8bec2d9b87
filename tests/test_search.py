"""Search: near-duplicates first, moodboards, negatives, filters and exclusions, the CLI's JSON."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from core.calibration import STRONG, label_for
from core.cli import main
from core.errors import QueryError
from core.indexer import index_folders
from core.library import Library
from core.query import QueryItem, SearchFilters
from core.search import Searcher
from library_fixtures import make_tree, near_duplicate, style_image, tiny_embedder, tiny_model_file

STYLES, PER_STYLE = 6, 3


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """A small indexed library shared by the read-only tests below."""
    tmp = tmp_path_factory.mktemp("search")
    paths = make_tree(tmp / "art", STYLES, PER_STYLE)
    near_duplicate(paths[0], tmp / "art" / "style00" / "near.jpg")
    shutil.copy(paths[3], tmp / "art" / "copy_of_style01_v0.png")
    embedder = tiny_embedder(tmp)
    lib = Library.open(tmp / "lib")
    list(index_folders(lib, [tmp / "art"], embedder, workers=0))
    yield tmp, paths, lib, Searcher(lib, embedder)
    lib.close()


def style_of(path: str) -> str:
    return Path(path).parent.name


def test_near_duplicates_and_siblings_come_first(world):
    tmp, paths, _, searcher = world
    results = searcher.search([QueryItem(str(paths[0]))], SearchFilters(k=6))
    top = {Path(r.path).relative_to(tmp / "art").as_posix() for r in results[:PER_STYLE]}
    assert top == {"style00/v1.png", "style00/v2.png", "style00/near.jpg"}
    assert [r.rank for r in results] == list(range(1, 7))
    plain = searcher.search([QueryItem(str(paths[0]))], SearchFilters(k=6, csls=False, expand=False))
    assert all(a.score >= b.score for a, b in zip(plain, plain[1:]))


def test_query_from_outside_the_library(world, tmp_path):
    _, paths, _, searcher = world
    outside = near_duplicate(paths[6], tmp_path / "outside.jpg")
    results = searcher.search([QueryItem(str(outside))], SearchFilters(k=3))
    assert {style_of(r.path) for r in results} == {"style02"}


def test_query_and_its_exact_copies_are_excluded_but_k_is_filled(world):
    tmp, paths, _, searcher = world
    results = searcher.search([QueryItem(str(paths[3]))], SearchFilters(k=10))
    found = {r.path for r in results}
    assert str(paths[3]) not in found and str(tmp / "art" / "copy_of_style01_v0.png") not in found
    assert len(results) == 10


def test_moodboard_mean_finds_both_styles(world):
    _, paths, _, searcher = world
    board = [QueryItem(str(paths[0])), QueryItem(str(paths[PER_STYLE * 4]))]
    results = searcher.search(board, SearchFilters(k=4))
    assert {style_of(r.path) for r in results} == {"style00", "style04"}
    heavy = searcher.search([QueryItem(board[0].path, 9.0), QueryItem(board[1].path, 1.0)], SearchFilters(k=2))
    assert {style_of(r.path) for r in heavy} == {"style00"}


def test_negative_images_push_their_style_down(world):
    _, paths, _, searcher = world
    query = QueryItem(str(paths[0]))
    plain = searcher.search([query], SearchFilters(k=STYLES * PER_STYLE))
    second_style = next(style_of(r.path) for r in plain if style_of(r.path) != "style00")
    negative = next(p for p in paths if style_of(str(p)) == second_style)
    pushed = searcher.search([query, QueryItem(str(negative), negative=True)], SearchFilters(k=STYLES * PER_STYLE))

    def first_rank(results):
        return min(r.rank for r in results if style_of(r.path) == second_style)

    assert first_rank(pushed) > first_rank(plain)


def test_filters_restrict_and_exclude_folders(world):
    tmp, paths, _, searcher = world
    inside = searcher.search([QueryItem(str(paths[0]))], SearchFilters(folder=str(tmp / "art" / "style03"), k=5))
    assert len(inside) == PER_STYLE and {style_of(r.path) for r in inside} == {"style03"}
    away = searcher.search([QueryItem(str(paths[0]))], SearchFilters(exclude_query_folders=True, k=5))
    assert len(away) == 5 and "style00" not in {style_of(r.path) for r in away}
    rooted = searcher.search([QueryItem(str(paths[0]))], SearchFilters(roots=[str(tmp / "art")], k=3))
    assert len(rooted) == 3


def test_more_like_uses_the_stored_vector(world):
    _, paths, lib, searcher = world
    image_id = lib.find_image(paths[0])[0]
    by_id = searcher.more_like(image_id, SearchFilters(k=5))
    by_path = searcher.search([QueryItem(str(paths[0]))], SearchFilters(k=5))
    assert [r.image_id for r in by_id] == [r.image_id for r in by_path]
    assert image_id not in {r.image_id for r in by_id}


def test_bad_queries_are_clear_errors(world, tmp_path):
    _, paths, _, searcher = world
    broken = tmp_path / "broken.png"
    broken.write_text("nope")
    with pytest.raises(QueryError, match="broken.png"):
        searcher.search([QueryItem(str(broken))])
    with pytest.raises(QueryError, match="no such"):
        searcher.search([QueryItem(str(tmp_path / "missing.png"))])
    with pytest.raises(QueryError, match="positive"):
        searcher.search([QueryItem(str(paths[0]), negative=True)])
    with pytest.raises(QueryError, match="weights"):
        searcher.search([QueryItem(str(paths[0]), weight=0)])


def test_cli_search_json_and_moodboards(tmp_path, capsys):
    paths = make_tree(tmp_path / "art", styles=3, per_style=2)
    model = tiny_model_file(tmp_path)
    lib = ["--library", str(tmp_path / "lib")]
    assert main(["index", str(tmp_path / "art"), "--model", str(model), "--workers", "0", *lib]) == 0
    capsys.readouterr()
    assert main(["search", str(paths[0]), "-k", "3", "--json", *lib]) == 0
    out = json.loads(capsys.readouterr().out)
    assert [r["rank"] for r in out["results"]] == [1, 2, 3]
    assert out["results"][0]["path"] == str(paths[1])
    assert set(out["results"][0]) == {"path", "score", "rank", "calibrated", "label"}
    assert all(0 <= r["calibrated"] <= 100 and r["label"] == label_for(r["calibrated"]) for r in out["results"])
    assert main(["search", str(paths[0]), "-k", "5", "--min-score", "close", "--json", *lib]) == 0
    strong = json.loads(capsys.readouterr().out)["results"]
    assert all(r["calibrated"] >= STRONG for r in strong)
    assert main(["search", str(paths[0]), "-k", "5", *lib]) == 0
    rows = [line.split() for line in capsys.readouterr().out.splitlines()]
    assert len(rows) == 5 and all(0 <= float(row[2]) <= 100 for row in rows)
    assert main(["search", str(paths[0]), "-k", "5", "--no-csls", "--no-expand", "--json", *lib]) == 0
    plain = [r["score"] for r in json.loads(capsys.readouterr().out)["results"]]
    assert len(plain) == 5 and plain == sorted(plain, reverse=True)
    assert main(["search", str(paths[0]), "--min-score", "great", *lib]) == 2
    assert "--min-score must be" in capsys.readouterr().err

    assert main(["moodboard", "create", "blue", str(paths[0]), str(paths[2]), "--weights", "2,1", *lib]) == 0
    moved = tmp_path / "art" / "moved.png"
    paths[0].rename(moved)
    assert main(["index", *lib]) == 0
    capsys.readouterr()
    assert main(["moodboard", "show", "blue", "--json", *lib]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert [i["path"] for i in shown["items"]] == [str(moved), str(paths[2])]
    assert main(["moodboard", "search", "blue", "-k", "2", "--json", *lib]) == 0
    assert len(json.loads(capsys.readouterr().out)["results"]) == 2
    assert main(["moodboard", "list", *lib]) == 0
    assert capsys.readouterr().out.split() == ["blue"]
    assert main(["moodboard", "delete", "blue", *lib]) == 0
    assert main(["moodboard", "show", "blue", *lib]) == 2
    assert "no moodboard" in capsys.readouterr().err

    assert main(["status", "--json", *lib]) == 0
    status = json.loads(capsys.readouterr().out)
    assert status["images"] == 6 and status["model"]["name"] == "tiny-s"
    other = tiny_model_file(tmp_path, seed=99, name="other")
    assert main(["search", str(moved), "--model", str(other), *lib]) == 2
    assert "indexed with model 'tiny-s'" in capsys.readouterr().err


def test_empty_library_search_is_a_clear_error(tmp_path, capsys):
    image = style_image(tmp_path / "q.png", 1)
    assert main(["search", str(image), "--library", str(tmp_path / "lib"), "--model", "untrained-s"]) == 2
    assert "empty" in capsys.readouterr().err


def test_exact_and_graph_agree(world, monkeypatch):
    """The hnswlib path gives the exact ranking on a small library."""
    import core.index_cache

    tmp, paths, lib, searcher = world
    exact = searcher.search([QueryItem(str(paths[0]))], SearchFilters(k=8))
    monkeypatch.setattr(core.index_cache, "EXACT_LIMIT", 4)
    graph_searcher = Searcher(lib, searcher.embedder)
    assert graph_searcher.cache.current().kind == "hnsw"
    graph = graph_searcher.search([QueryItem(str(paths[0]))], SearchFilters(k=8))
    assert [r.image_id for r in graph] == [r.image_id for r in exact]
    np.testing.assert_allclose([r.score for r in graph], [r.score for r in exact], atol=1e-5)


@pytest.mark.parametrize("filter_exact_max", [0, 5000])
def test_filtered_graph_search_matches_exact(world, monkeypatch, filter_exact_max):
    """Both filtered paths on a graph (hnswlib's filter, or vectors from SQLite) match exact search."""
    import core.index_cache
    import core.search

    tmp, paths, lib, searcher = world
    filters = SearchFilters(folder=str(tmp / "art" / "style02"), k=5)
    queries = [QueryItem(str(paths[0])), QueryItem(str(paths[9]), 0.5)]
    exact = searcher.search(queries, filters)
    monkeypatch.setattr(core.index_cache, "EXACT_LIMIT", 4)
    monkeypatch.setattr(core.search, "FILTER_EXACT_MAX", filter_exact_max)
    graph_searcher = Searcher(lib, searcher.embedder)
    assert graph_searcher.cache.current().kind == "hnsw"
    graph = graph_searcher.search(queries, filters)
    assert len(exact) == PER_STYLE
    assert [r.image_id for r in graph] == [r.image_id for r in exact]
    np.testing.assert_allclose([r.score for r in graph], [r.score for r in exact], atol=1e-5)


def test_results_are_ranked_by_csls_and_carry_calibrated_scores(world):
    _, paths, lib, searcher = world
    results = searcher.search([QueryItem(str(paths[0]))], SearchFilters(k=10, expand=False))
    index = searcher.cache.current()
    ranking = 2 * np.array([r.score for r in results]) - searcher.scores.hubness(index, [r.image_id for r in results])
    assert np.all(np.diff(ranking) <= 1e-6)
    by_cosine = sorted(results, key=lambda r: r.score)
    assert all(a.percentile <= b.percentile for a, b in zip(by_cosine, by_cosine[1:]))
    assert all(0 <= r.percentile <= 100 and r.label == label_for(r.percentile) for r in results)
    plain = searcher.search([QueryItem(str(paths[0]))], SearchFilters(k=10, csls=False, expand=False))
    assert {r.image_id for r in plain[:3]} == {r.image_id for r in results[:3]}


def test_min_score_keeps_exactly_the_results_at_or_above_it(world):
    _, paths, _, searcher = world
    plain = {"csls": False, "expand": False}
    everything = searcher.search([QueryItem(str(paths[0]))], SearchFilters(k=STYLES * PER_STYLE, **plain))
    for floor in (STRONG, 50.0):
        kept = searcher.search([QueryItem(str(paths[0]))], SearchFilters(k=STYLES * PER_STYLE, min_score=floor,
                                                                         **plain))
        assert [r.image_id for r in kept] == [r.image_id for r in everything if r.percentile >= floor]
        assert 0 < len(kept) < len(everything)
    few = searcher.search([QueryItem(str(paths[0]))], SearchFilters(k=2, min_score=50.0))
    assert len(few) <= 2 and all(r.percentile >= 50.0 for r in few)


def test_a_folder_filter_is_read_once_per_library_state(tmp_path, monkeypatch):
    paths = make_tree(tmp_path / "art", 2, 3)
    embedder = tiny_embedder(tmp_path)
    with Library.open(tmp_path / "lib") as lib:
        list(index_folders(lib, [tmp_path / "art"], embedder, workers=0))
        searcher = Searcher(lib, embedder)
        reads = []
        ids_under = lib.ids_under
        monkeypatch.setattr(lib, "ids_under", lambda folders: reads.append(folders) or ids_under(folders))
        inside = SearchFilters(folder=str(tmp_path / "art" / "style01"), k=10)
        for _ in range(3):
            assert len(searcher.search([QueryItem(str(paths[0]))], inside)) == 3
        assert len(reads) == 1
        style_image(tmp_path / "art" / "style01" / "new.png", 1, 9)
        list(index_folders(lib, [], embedder, workers=0))  # the library's state moves on: read again
        found = searcher.search([QueryItem(str(paths[0]))], inside)
        assert len(reads) == 2 and str(tmp_path / "art" / "style01" / "new.png") in [r.path for r in found]
