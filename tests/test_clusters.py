"""Style clusters: they recover known styles, adapt k to the library, are cached beside it and kept up to
date cheaply, and ``aladin clusters`` prints them."""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

import core.clusters
from core.cli import main as core_main
from core.clusters import (MAX_DEFAULT_K, STYLES_FILE, StyleClusters, adjusted_rand_index, default_k, purity,
                           spherical_kmeans)
from core.embedder import Embedder, l2_normalise
from core.errors import QueryError
from core.indexer import index_folders
from core.library import Library
from core.modelfile import load_model_file
from core.search import Searcher
from library_fixtures import make_tree, style_image, tiny_model_file

STYLES, PER_STYLE = 6, 6


def synthetic(groups: int, per_group: int, dim: int = 320, noise: float = 0.05, seed: int = 0):
    rng = np.random.default_rng(seed)
    centres = l2_normalise(rng.standard_normal((groups, dim)))
    truth = np.repeat(np.arange(groups), per_group)
    return l2_normalise(centres[truth] + noise * rng.standard_normal((len(truth), dim))), truth


@dataclass
class World:
    art: Path
    library: Path
    model: Path
    embedder: Embedder


@pytest.fixture(scope="module")
def indexed(tmp_path_factory) -> World:
    """Six generated styles of six images, indexed once with a 32 px model; tests work on copies
    (tests/test_gui_styles.py uses them too)."""
    base = tmp_path_factory.mktemp("styles")
    make_tree(base / "art", STYLES, PER_STYLE)
    model = tiny_model_file(base / "models", input_size=32)
    embedder = Embedder(load_model_file(model), device="cpu")
    with Library.open(base / "library") as lib:
        list(index_folders(lib, [base / "art"], embedder, workers=0))
    return World(base / "art", base / "library", model, embedder)


@pytest.fixture
def world(indexed, tmp_path) -> World:
    """A private copy of the indexed library and its art (the roots are re-pointed by re-adding them)."""
    art = shutil.copytree(indexed.art, tmp_path / "art")
    shutil.copytree(indexed.library, tmp_path / "library")
    with Library.open(tmp_path / "library") as lib:
        list(index_folders(lib, [art], indexed.embedder, workers=0))  # moved files keep their vectors
        lib.remove_root(indexed.art)
    return World(art, tmp_path / "library", indexed.model, indexed.embedder)


@pytest.fixture
def runs(monkeypatch) -> list[int]:
    """The k of every full clustering run."""
    seen: list[int] = []
    real = core.clusters.spherical_kmeans

    def counted(x, k, *args, **kwargs):
        seen.append(k)
        return real(x, k, *args, **kwargs)

    monkeypatch.setattr(core.clusters, "spherical_kmeans", counted)
    return seen


def clusters_of(lib: Library, embedder: Embedder) -> StyleClusters:
    return StyleClusters.for_searcher(Searcher(lib, embedder))


def style_of(path: str) -> int:
    return int(Path(path).parent.name.removeprefix("style"))


def labelled(lib: Library, styles) -> tuple[np.ndarray, np.ndarray]:
    """(true style, found cluster) for every clustered image."""
    ids = [int(i) for c in styles.clusters for i in c.ids]
    paths = lib.image_paths(ids)
    truth = np.array([style_of(paths[i]) for i in ids])
    found = np.concatenate([np.full(c.size, c.id) for c in styles.clusters])
    return truth, found


def test_synthetic_groups_are_recovered_and_runs_repeat():
    x, truth = synthetic(groups=12, per_group=50)
    centroids, labels, scores = spherical_kmeans(x, 12, seed=1)
    assert adjusted_rand_index(truth, labels) > 0.95 and purity(truth, labels) > 0.95
    assert np.allclose(np.linalg.norm(centroids, axis=1), 1, atol=1e-5)
    assert np.allclose(scores, (x * centroids[labels]).sum(1), atol=1e-5)
    sizes = np.bincount(labels)
    assert list(sizes) == sorted(sizes, reverse=True)  # cluster 0 is the largest
    again = spherical_kmeans(x, 12, seed=1)
    assert np.array_equal(again[1], labels) and np.allclose(again[0], centroids)
    # A random labelling scores about zero: the measure can fail.
    assert abs(adjusted_rand_index(truth, np.random.default_rng(0).integers(0, 12, len(truth)))) < 0.05


def test_a_large_library_is_fitted_on_a_sample_and_refined_on_all(monkeypatch):
    monkeypatch.setattr(core.clusters, "FIT_SAMPLE", 1000)
    x, truth = synthetic(groups=12, per_group=200, seed=2)
    centroids, labels, scores = spherical_kmeans(x, 12, seed=1)
    assert adjusted_rand_index(truth, labels) > 0.95 and purity(truth, labels) > 0.95
    assert np.array_equal(labels, (x @ centroids.T).argmax(1))  # every image in its nearest cluster
    assert spherical_kmeans(x, 40, seed=1)[0].shape == (40, x.shape[1])  # 64 x k is above the sample: all are used


def test_generated_styles_are_recovered(world):
    with Library.open(world.library) as lib:
        styles = clusters_of(lib, world.embedder).current(k=STYLES)
        truth, found = labelled(lib, styles)
    ari, pure = adjusted_rand_index(truth, found), purity(truth, found)
    assert ari > 0.9 and pure > 0.9, (ari, pure)
    assert styles.count == STYLES * PER_STYLE and sum(c.size for c in styles.clusters) == styles.count
    for c in styles.clusters:
        assert list(c.scores) == sorted(c.scores, reverse=True)  # ranked by closeness to the centroid
        assert 0 < len(c.representatives) <= core.clusters.REPRESENTATIVES


def test_k_adapts_to_the_library_unless_asked(world, runs):
    assert default_k(0) == 0 and default_k(1) == 1
    assert default_k(36) == 4 and default_k(3000) == 39 and default_k(10**6) == MAX_DEFAULT_K
    sizes = [10, 100, 1000, 10_000, 100_000]
    assert [default_k(n) for n in sizes] == sorted(default_k(n) for n in sizes)
    with Library.open(world.library) as lib:
        clusters = clusters_of(lib, world.embedder)
        auto = clusters.current()
        assert len(auto.clusters) == default_k(STYLES * PER_STYLE) and auto.requested_k is None
        assert len(clusters.current(k=9).clusters) == 9
        assert len(clusters.current(k=500).clusters) == STYLES * PER_STYLE  # never more than images
        with pytest.raises(QueryError):
            clusters.current(k=0)
    assert runs == [default_k(STYLES * PER_STYLE), 9, 500]


def test_the_cache_is_reused_and_invalidated(world, runs):
    with Library.open(world.library) as lib:
        first = clusters_of(lib, world.embedder).current(k=STYLES)
        assert (world.library / STYLES_FILE).is_file()
        again = clusters_of(lib, world.embedder).current(k=STYLES)  # a new object: read from the file
        assert runs == [STYLES]
        assert [c.ids.tolist() for c in again.clusters] == [c.ids.tolist() for c in first.clusters]
        clusters_of(lib, world.embedder).current(k=STYLES - 1)  # another k
        assert runs == [STYLES, STYLES - 1]
        clusters_of(lib, world.embedder).recompute(k=STYLES - 1)  # asked for
        assert runs == [STYLES, STYLES - 1, STYLES - 1]
        (world.library / STYLES_FILE).write_bytes(b"not a zip")
        assert len(clusters_of(lib, world.embedder).current(k=STYLES - 1).clusters) == STYLES - 1
        assert len(runs) == 4
        other = StyleClusters(lib, world.embedder.finish, "another model")
        other.current(k=STYLES - 1)
        assert len(runs) == 5
        # Removing half the library is too much to patch: the clusters are computed again.
        lib.remove_root(world.art / "style00")
        lib.remove_root(world.art / "style01")
        lib.remove_root(world.art / "style02")
        after = other.current(k=STYLES - 1)
    assert len(runs) == 6 and after.count == 3 * PER_STYLE and after.assigned == 0


def test_new_images_join_their_nearest_cluster_until_a_recompute(world, runs):
    with Library.open(world.library) as lib:
        clusters = clusters_of(lib, world.embedder)
        before = clusters.current(k=STYLES)
        cluster_of = {style_of(c.representatives[0]): c.id for c in before.clusters}
        added = [style_image(world.art / f"style{s:02d}" / "new.png", s, 50) for s in (1, 4)]
        list(index_folders(lib, [world.art], world.embedder, workers=0))
        after = clusters.current(k=STYLES)
        assert runs == [STYLES] and after.assigned == 2 and after.count == before.count + 2
        found = lib.find_image(added[0])[0], lib.find_image(added[1])[0]
        members = {c.id: set(c.ids.tolist()) for c in after.clusters}
        assert found[0] in members[cluster_of[1]] and found[1] in members[cluster_of[4]]
        # The assignment was saved: another reader starts from it without a run.
        assert clusters_of(lib, world.embedder).current(k=STYLES).assigned == 2 and runs == [STYLES]
        added[0].unlink()
        list(index_folders(lib, [world.art], world.embedder, workers=0))
        gone = clusters.current(k=STYLES)
        assert gone.assigned == 3 and found[0] not in {int(i) for c in gone.clusters for i in c.ids}
        assert clusters.recompute(k=STYLES).assigned == 0 and len(runs) == 2


def test_a_cancelled_run_leaves_the_cache_alone(world):
    with Library.open(world.library) as lib:
        clusters = clusters_of(lib, world.embedder)
        assert clusters.current(k=3, cancel=lambda: True) is None
        assert not (world.library / STYLES_FILE).exists()
        kept = clusters.current(k=3)
        assert clusters.recompute(k=3, cancel=lambda: True) is None
        assert [c.ids.tolist() for c in clusters.current(k=3).clusters] == [c.ids.tolist() for c in kept.clusters]


def test_members_are_ranked_results(world):
    with Library.open(world.library) as lib:
        clusters = clusters_of(lib, world.embedder)
        cluster = clusters.current(k=STYLES).clusters[0]
        results = clusters.members(cluster)
    assert [r.image_id for r in results] == cluster.ids.tolist()
    assert [r.rank for r in results] == list(range(1, cluster.size + 1))
    assert results[0].path == cluster.representatives[0] and len({style_of(r.path) for r in results}) == 1


def test_cli_prints_clusters_as_json_and_text(world, capsys):
    assert core_main(["clusters", "--library", str(world.library), "--k", str(STYLES), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert set(out) == {"k", "requested_k", "images", "assigned", "clusters"}
    assert out["k"] == out["requested_k"] == STYLES and out["images"] == STYLES * PER_STYLE
    assert len(out["clusters"]) == STYLES and sum(c["size"] for c in out["clusters"]) == out["images"]
    for c in out["clusters"]:
        assert set(c) == {"id", "size", "cohesion", "representatives"} and 0 < c["cohesion"] <= 1
        assert all(Path(p).is_file() for p in c["representatives"])
        assert len({style_of(p) for p in c["representatives"]}) == 1
    assert core_main(["clusters", "--library", str(world.library)]) == 0
    lines = capsys.readouterr().out.splitlines()
    k = default_k(STYLES * PER_STYLE)
    assert lines[0] == f"{k} styles in {STYLES * PER_STYLE} images"
    titles = [line.split(" (id ")[0] for line in lines[1:] if line.startswith("Style ")]
    assert titles == [f"Style {n + 1}" for n in range(k)]  # numbered from 1, as in the app
    assert all(Path(line.strip()).is_file() for line in lines[1:] if line.startswith("  "))


def test_cli_refuses_an_empty_library_and_a_bad_k(tmp_path, world, capsys):
    assert core_main(["clusters", "--library", str(tmp_path / "empty")]) == 2
    assert "empty" in capsys.readouterr().err
    assert core_main(["clusters", "--library", str(world.library), "--k", "0"]) == 2
    assert "at least 1" in capsys.readouterr().err


def test_the_agreement_measures_on_known_partitions():
    truth = np.array([0, 0, 0, 1, 1, 1])
    assert adjusted_rand_index(truth, np.array([5, 5, 5, 2, 2, 2])) == 1.0 == purity(truth, np.array([1, 1, 1, 0, 0, 0]))
    # worked by hand: same-pair counts 3 in the table, 7 in the rows, 7 in the columns, of C(8, 2) = 28 pairs
    found = np.array([0, 0, 1, 1, 1, 2, 2, 2])
    expected = 7 * 7 / 28
    assert adjusted_rand_index(np.array([0, 0, 0, 1, 1, 1, 2, 2]), found) == pytest.approx((3 - expected) / (7 - expected))
    assert purity(truth, np.array([0, 1, 0, 1, 0, 1])) == pytest.approx(4 / 6)
