"""Calibrated scores and CSLS on small constructed vector sets: no model, no library."""

from __future__ import annotations

import numpy as np
import pytest

from core import calibration
from core.calibration import (LABELS, NEIGHBOURS, STRONG, Calibration, LibraryScores, csls, label_for,
                              neighbour_scores, parse_min_score)
from core.errors import QueryError
from core.vector_index import ExactIndex


def unit(rows: np.ndarray) -> np.ndarray:
    rows = np.asarray(rows, np.float32)
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


def index_of(vectors: np.ndarray, start: int = 0) -> ExactIndex:
    index = ExactIndex(vectors.shape[1])
    index.add(np.arange(start, start + len(vectors)), vectors)
    return index


def random_index(n: int, seed: int = 0, dim: int = 16) -> ExactIndex:
    return index_of(unit(np.random.default_rng(seed).normal(size=(n, dim))))


def test_percentile_is_monotonic_in_range_and_inverts_cosine_at():
    cal = LibraryScores(sample=60).calibration(random_index(200))
    cosines = np.linspace(-1, 1, 401, dtype=np.float32)
    p = cal.percentile(cosines)
    assert p[0] == 0 and p[-1] == 100
    assert np.all(np.diff(p) >= 0) and len(np.unique(p)) > 50
    for floor in (10.0, STRONG, 99.0):
        at = cal.cosine_at(floor)
        assert cal.percentile(np.array([at]))[0] >= floor
        assert cal.percentile(np.array([np.nextafter(at, -2, dtype=np.float32)]))[0] < floor


def test_a_library_without_neighbours_gives_no_score():
    cal = LibraryScores().calibration(random_index(1))
    assert not cal and np.isnan(cal.percentile(np.array([0.5]))).all() and cal.cosine_at(STRONG) == float("-inf")
    assert label_for(None) is None


def test_labels_and_min_score_values():
    assert [label_for(start) for _, start in LABELS] == [name for name, _ in LABELS]
    assert label_for(89.9) == "close" and label_for(100) == "very close" and label_for(0) == "weak"
    assert parse_min_score("close") == STRONG and parse_min_score("Very-Close") == 90.0
    assert parse_min_score("62.5") == 62.5
    for bad in ("101", "-1", "nan", "great"):
        with pytest.raises(QueryError, match="--min-score"):
            parse_min_score(bad)


def test_neighbour_scores_are_the_k_best_other_cosines():
    vectors = unit(np.random.default_rng(1).normal(size=(30, 8)))
    near = neighbour_scores(index_of(vectors, start=100), np.array([100, 107]), k=4)
    sims = vectors @ vectors.T
    for row, i in enumerate((0, 7)):
        expected = np.sort(np.delete(sims[i], i))[::-1][:4]
        np.testing.assert_allclose(near[row], expected, atol=1e-6)


def test_graph_and_exact_indexes_measure_the_same_neighbours():
    from core.vector_index import HnswIndex

    vectors = unit(np.random.default_rng(3).normal(size=(60, 8)))
    graph = HnswIndex(8)
    graph.add(np.arange(60), vectors)
    ids = np.array([0, 17, 59])
    np.testing.assert_allclose(neighbour_scores(graph, ids, 5), neighbour_scores(index_of(vectors), ids, 5),
                               atol=1e-5)
    assert np.isnan(neighbour_scores(index_of(vectors[:3]), np.array([0]), 5)[0, 2:]).all()
    assert np.isnan(neighbour_scores(graph, ids, 80)[:, 59:]).all()


def test_calibration_and_hubness_are_kept_until_the_library_changes(monkeypatch):
    calls = []
    real = calibration.neighbour_scores
    monkeypatch.setattr(calibration, "neighbour_scores", lambda index, ids, k: calls.append(len(ids)) or
                        real(index, ids, k))
    index = random_index(100)
    scores = LibraryScores(sample=40)
    first = scores.calibration(index)
    assert scores.calibration(index) is first and calls == [40]
    scores.hubness(index, np.arange(100))
    scores.hubness(index, np.arange(100))
    assert calls == [40, 60]  # the sampled 40 were known already; then nothing new
    index.add(np.array([500]), unit(np.ones((1, 16))))
    assert scores.calibration(index) is first  # 1 % more vectors: kept
    index.add(np.arange(1000, 1020), unit(np.random.default_rng(5).normal(size=(20, 16))))
    assert scores.calibration(index) is not first  # 20 % more: measured again
    rebuilt = random_index(121)
    assert scores.calibration(rebuilt) is not scores.calibration(index)


def test_csls_demotes_a_hub_below_a_true_neighbour():
    """The hub is slightly closer to the query by cosine, but close to everything else too."""
    rng = np.random.default_rng(2)
    dim = 32
    e = np.eye(dim, dtype=np.float32)
    hub = e[0]
    noise = rng.normal(size=(40, dim)) * (np.arange(dim) >= 3)  # away from e1, e2, e3
    crowd = unit(e[0] + 0.05 * noise)  # the hub's many close neighbours
    query = unit((0.6 * e[0] + 0.8 * e[1])[None])[0]  # cosine 0.60 to the hub
    neighbour = unit((0.05 * e[0] + 0.7 * e[1] + 0.712 * e[2])[None])[0]  # 0.59, alone
    vectors = np.vstack([hub, neighbour, crowd]).astype(np.float32)
    index = index_of(vectors)
    cosines = vectors[:2] @ query
    assert cosines[0] > cosines[1]  # by cosine the hub wins
    r = LibraryScores().hubness(index, np.array([0, 1]))
    sims = vectors @ vectors.T
    np.testing.assert_allclose(r, [np.sort(np.delete(sims[i], i))[::-1][:NEIGHBOURS].mean() for i in (0, 1)],
                               atol=1e-6)
    ranked = csls(cosines, r)
    np.testing.assert_allclose(ranked, 2 * cosines - r, atol=1e-6)
    assert ranked[1] > ranked[0]  # CSLS puts the true neighbour first


def test_percentiles_without_data_are_nan_not_errors():
    assert np.isnan(Calibration(np.full((3, 2), np.nan)).percentile(np.array([0.1, 0.9]))).all()
