"""Query expansion: the first results stay, the rest follow the query and those results together."""

from __future__ import annotations

import numpy as np
import pytest

import core.search
from core.cli import main
from core.expansion import expanded_order
from core.indexer import index_folders
from core.library import Library
from core.query import QueryItem, SearchFilters
from core.search import Searcher
from library_fixtures import make_tree, tiny_embedder, tiny_model_file
from trainer.metrics import app_ranking, score_queries, summarise


def unit(*rows: list[float]) -> np.ndarray:
    m = np.array(rows, np.float32)
    return m / np.linalg.norm(m, axis=1, keepdims=True)


# The query looks along x. The first matches lean towards y (the style they share); "twin" is the
# query's picture in another style: closer to the query alone than "mate", farther from the matches.
QUERY = unit([1, 0, 0])[0]
FIRST = unit([1, 0.5, 0], [1, 0.6, 0.05], [1, 0.55, -0.05])
TWIN = unit([1, 0, 0.7])[0]
MATE = unit([1, 0.9, 0])[0]


def test_the_first_results_stay_and_the_rest_follow_the_expanded_query():
    pool = np.vstack([FIRST, TWIN, MATE])
    assert float(QUERY @ TWIN) > float(QUERY @ MATE)  # alone, the query prefers its twin
    assert expanded_order(QUERY, pool, top=3).tolist() == [0, 1, 2, 4, 3]  # with its matches, the mate


def test_hubness_is_subtracted_after_expansion_as_before_it():
    pool = np.vstack([FIRST, TWIN, MATE])
    plain = expanded_order(QUERY, pool, np.zeros(5, np.float32), top=3)
    hub = np.zeros(5, np.float32)
    hub[4] = 1.0  # the mate is everybody's neighbour: 2 cos - r(x) drops it below the twin
    hubbed = expanded_order(QUERY, pool, hub, top=3)
    assert plain.tolist().index(4) < plain.tolist().index(3)
    assert hubbed.tolist().index(4) > hubbed.tolist().index(3)


@pytest.mark.parametrize("pool", [np.zeros((0, 3), np.float32), FIRST[:2], np.vstack([FIRST, FIRST])])
def test_short_pools_keep_their_order(pool):
    assert expanded_order(QUERY, pool).tolist() == list(range(len(pool)))


def test_a_query_cancelled_by_its_matches_keeps_the_plain_order():
    pool = np.vstack([-QUERY, unit([0, 1, 0])[0], unit([0, 0, 1])[0]])
    assert expanded_order(QUERY, pool, top=1).tolist() == [0, 1, 2]


@pytest.fixture(scope="module")
def searched(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("expand")
    paths = make_tree(tmp / "art", 5, 4)
    embedder = tiny_embedder(tmp)
    lib = Library.open(tmp / "lib")
    list(index_folders(lib, [tmp / "art"], embedder, workers=0))
    yield paths, lib, Searcher(lib, embedder)
    lib.close()


@pytest.mark.parametrize("csls", [False, True])
def test_search_keeps_the_first_results_and_reorders_only_the_rest(searched, csls):
    paths, lib, searcher = searched
    query = [QueryItem(str(paths[12]))]
    everything = 19  # every other image: the plain and the expanded lists hold the same images
    plain = searcher.search(query, SearchFilters(k=everything, csls=csls, expand=False))
    expanded = searcher.search(query, SearchFilters(k=everything, csls=csls))
    assert [r.image_id for r in expanded[:5]] == [r.image_id for r in plain[:5]]
    assert sorted(r.image_id for r in expanded) == sorted(r.image_id for r in plain)
    assert [r.rank for r in expanded] == list(range(1, everything + 1))
    # What the expansion ranks by, computed here from the library's stored vectors.
    index = searcher.cache.current()
    query_id = lib.find_image(paths[12])[0]
    q = index.vectors(np.array([query_id]))[0]
    ids = np.array([r.image_id for r in plain])
    vectors = index.vectors(ids)
    direction = q + vectors[:5].sum(0)
    direction /= np.linalg.norm(direction)
    score = vectors @ direction
    if csls:
        score = 2 * score - searcher.scores.hubness(index, ids)
    expected = ids[:5].tolist() + [int(ids[5:][n]) for n in np.argsort(-score[5:], kind="stable")]
    assert [r.image_id for r in expanded] == expected != [r.image_id for r in plain]
    # Scores stay each result's own cosine to the query, whatever its rank.
    by_id = {r.image_id: r.score for r in plain}
    assert all(abs(r.score - by_id[r.image_id]) < 1e-6 for r in expanded)


def test_expansion_keeps_the_floor_of_min_score(searched):
    paths, _, searcher = searched
    query = [QueryItem(str(paths[5]))]
    everything = searcher.search(query, SearchFilters(k=19, expand=False))
    kept = searcher.search(query, SearchFilters(k=19, min_score=50.0))
    assert {r.image_id for r in kept} == {r.image_id for r in everything if r.percentile >= 50.0}
    assert 0 < len(kept) < len(everything)


def test_app_ranking_reproduces_the_search_and_keeps_p_at_1():
    rng = np.random.default_rng(3)
    centres = rng.normal(size=(6, 16))
    labels = np.repeat(np.arange(6), 8)
    vectors = centres[labels] + 1.2 * rng.normal(size=(48, 16))
    vectors = (vectors / np.linalg.norm(vectors, axis=1, keepdims=True)).astype(np.float32)
    assert app_ranking(vectors, "cosine") is None
    figures = {name: summarise(score_queries(vectors, labels, rank=app_ranking(vectors, name)))
               for name in ("cosine", "csls", "expand", "search")}
    for k in ("P@1", "P@5"):
        assert figures["expand"][k] == figures["cosine"][k] and figures["search"][k] == figures["csls"][k]
    assert figures["expand"]["mAP"] != figures["cosine"]["mAP"]
    rows = np.arange(48)
    order = app_ranking(vectors, "expand")(vectors, rows)
    for row in (0, 17, 40):
        others = np.delete(np.arange(48), row)
        plain = others[np.argsort(-(vectors[others] @ vectors[row]), kind="stable")]
        assert order[row].tolist() == plain[expanded_order(vectors[row], vectors[plain])].tolist()
    with pytest.raises(ValueError, match="unknown ranking"):
        app_ranking(vectors, "reciprocal")


def test_the_cli_expands_unless_told_not_to(tmp_path, capsys, monkeypatch):
    paths = make_tree(tmp_path / "art", styles=3, per_style=3)
    lib = ["--library", str(tmp_path / "lib")]
    assert main(["index", str(tmp_path / "art"), "--model", str(tiny_model_file(tmp_path)), "--workers", "0",
                 *lib]) == 0
    calls = []

    def spy(*args, **kwargs):
        calls.append(len(args[1]))
        return expanded_order(*args, **kwargs)

    monkeypatch.setattr(core.search, "expanded_order", spy)
    capsys.readouterr()
    assert main(["search", str(paths[0]), "-k", "4", "--no-expand", *lib]) == 0
    assert calls == [] and len(capsys.readouterr().out.splitlines()) == 4
    assert main(["search", str(paths[0]), "-k", "4", *lib]) == 0
    assert calls == [8] and len(capsys.readouterr().out.splitlines()) == 4  # all 8 others were candidates


def test_a_moodboard_of_several_images_is_not_expanded(searched, monkeypatch):
    paths, _, searcher = searched
    board = [QueryItem(str(paths[0])), QueryItem(str(paths[13]))]
    plain = searcher.search(board, SearchFilters(k=18, expand=False))
    calls = []
    monkeypatch.setattr(core.search, "expanded_order", lambda *a, **kw: calls.append(1) or expanded_order(*a, **kw))
    assert [r.image_id for r in searcher.search(board, SearchFilters(k=18))] == [r.image_id for r in plain]
    assert calls == []
    searcher.search([board[0], QueryItem(str(paths[9]), negative=True)], SearchFilters(k=18))
    assert calls == [1]  # one positive image and a negative one: still expanded
