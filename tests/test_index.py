"""The hnswlib cache: rebuilt from SQLite when damaged or deleted, patched when stale."""

from __future__ import annotations

import json
import os
import shutil
import time

import numpy as np
import pytest

import core.index_cache
from core.index_cache import (STALE_TEMP_AGE, STAMP, CacheInvalid, IndexCache, fingerprint, load_graph,
                               save_graph)
from core.indexer import index_folders
from core.library import Library, LibraryState
from core.query import QueryItem, SearchFilters
from core.search import Searcher
from core.vector_index import ExactIndex, HnswIndex, top_k
from library_fixtures import make_tree, style_image, tiny_embedder


@pytest.fixture
def graph_library(tmp_path, monkeypatch):
    """A library big enough (for a lowered limit) to be searched through the graph."""
    monkeypatch.setattr(core.index_cache, "EXACT_LIMIT", 10)
    paths = make_tree(tmp_path / "art", styles=6, per_style=4)
    embedder = tiny_embedder(tmp_path)
    lib = Library.open(tmp_path / "lib")
    list(index_folders(lib, [tmp_path / "art"], embedder, workers=0))
    yield lib, embedder, paths
    lib.close()


def ranking(lib, embedder, query):
    results = Searcher(lib, embedder).search([QueryItem(str(query))], SearchFilters(k=10))
    return [(r.image_id, round(r.score, 5)) for r in results]


def graph_file(lib):
    return lib.folder / json.loads((lib.folder / STAMP).read_text())["file"]


def test_indexing_leaves_a_fresh_graph_and_no_temp_files(graph_library):
    lib, embedder, _ = graph_library
    assert lib.status().index["state"] == "fresh"
    assert graph_file(lib).is_file()
    assert not list(lib.folder.glob("*.tmp"))


@pytest.mark.parametrize("damage", ["flip", "truncate", "delete", "stamp"])
def test_damaged_or_deleted_graph_is_rebuilt_with_identical_results(graph_library, damage):
    lib, embedder, paths = graph_library
    before = ranking(lib, embedder, paths[0])
    path = graph_file(lib)
    if damage == "flip":
        data = bytearray(path.read_bytes())
        data[len(data) // 2: len(data) // 2 + 64] = bytes(64)
        path.write_bytes(bytes(data))
    elif damage == "truncate":
        path.write_bytes(path.read_bytes()[:100])
    elif damage == "delete":
        path.unlink()
    else:
        (lib.folder / STAMP).write_text("{not json")
    assert lib.status().index["state"] in {"damaged", "fresh"}  # a flipped byte is only seen by the checksum
    assert ranking(lib, embedder, paths[0]) == before
    assert lib.status().index["state"] == "fresh"


def test_stale_graph_is_patched_with_new_and_deleted_images(graph_library, tmp_path):
    lib, embedder, paths = graph_library
    cache = IndexCache(lib, embedder.finish, fingerprint(embedder), embedder.dim)
    assert len(cache.current()) == 24
    new = style_image(tmp_path / "art" / "style00" / "new.png", 0, 99)
    paths[5].unlink()
    list(index_folders(lib, [], embedder, workers=0))
    index = cache.current()  # the in-memory copy catches up with the library
    assert isinstance(index, HnswIndex) and len(index) == 24
    new_id = lib.find_image(new)[0]
    assert new_id in set(index.labels().tolist())
    fresh = IndexCache(lib, embedder.finish, fingerprint(embedder), embedder.dim).rebuild()
    q = fresh.vectors(np.array([new_id]))[0]
    assert cache.current().query(q, 5)[0].tolist() == fresh.query(q, 5)[0].tolist()


def test_graph_for_another_model_is_not_used(graph_library, tmp_path):
    lib, embedder, _ = graph_library
    with pytest.raises(CacheInvalid, match="another model"):
        load_graph(lib.folder, "someone-else", embedder.dim, lib.knows)


def test_exact_index_add_remove_and_top_k():
    index = ExactIndex(3)
    vectors = np.eye(3, dtype=np.float32)
    index.add(np.array([7, 8, 9]), vectors)
    ids, scores = index.query(np.array([0, 1, 0], np.float32), 2)
    assert ids[0] == 8 and scores[0] == pytest.approx(1.0)
    index.remove(np.array([8]))
    assert 8 not in index.query(np.array([0, 1, 0], np.float32), 3)[0]
    index.add(np.array([7]), vectors[1:2])  # replacing a vector keeps one row per id
    assert len(index) == 2 and index.query(np.array([0, 1, 0], np.float32), 1)[0][0] == 7
    ids, _ = top_k(np.arange(5), np.array([0.1, 0.5, 0.3, 0.9, 0.2]), 3)
    assert ids.tolist() == [3, 1, 2]


def test_graph_falls_back_to_exact_when_too_few_live_points():
    index = HnswIndex(4)
    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(20, 4)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    index.add(np.arange(20), vectors)
    index.remove(np.arange(15))
    ids, _ = index.query(vectors[17], 5)
    assert sorted(ids.tolist()) == [15, 16, 17, 18, 19] and ids[0] == 17


def test_shrinking_library_goes_back_to_exact(graph_library, tmp_path):
    lib, embedder, _ = graph_library
    searcher = Searcher(lib, embedder)
    assert searcher.cache.current().kind == "hnsw"
    for style in range(1, 5):  # 24 -> 8 images, below the limit of 10
        shutil.rmtree(tmp_path / "art" / f"style{style:02d}")
    list(index_folders(lib, [], embedder, workers=0))
    assert searcher.cache.current().kind == "exact"
    assert not (lib.folder / STAMP).exists()


def test_readers_patch_in_memory_and_the_writer_saves(graph_library, tmp_path):
    lib, embedder, paths = graph_library
    stamp_before = json.loads((lib.folder / STAMP).read_text())
    lib.remove_root(tmp_path / "art" / "style05")
    results = Searcher(lib, embedder).search([QueryItem(str(paths[0]))], SearchFilters(k=30))
    assert len(results) == 19 and all("style05" not in r.path for r in results)  # 24 - 4 removed - query
    assert json.loads((lib.folder / STAMP).read_text()) == stamp_before  # a search never writes the graph
    assert lib.status().index["state"] == "stale"
    list(index_folders(lib, [], embedder, workers=0))
    assert lib.status().index["state"] == "fresh"


def state(generation: int) -> LibraryState:
    return LibraryState("lib-a", generation, f"token-{generation}")


def vouch(known: LibraryState) -> bool:
    """A database that went through every generation of :func:`state`."""
    return known == state(known.generation)


def test_normal_index_runs_patch_the_saved_graph(graph_library, tmp_path):
    """Only a state the database vouches for is patched: the usual rescan must not rebuild the graph."""
    lib, embedder, _ = graph_library
    lib.remove_root(tmp_path / "art" / "style05")
    list(index_folders(lib, [], embedder, workers=0))
    stamp = json.loads((lib.folder / STAMP).read_text())
    assert len(stamp["deleted"]) == 4  # deletion marks survive only a patch; a rebuild has none
    assert lib.status().index["state"] == "fresh"


def test_saved_graph_remembers_its_deleted_labels(tmp_path):
    """hnswlib cannot list its deletion marks, so the stamp carries them to the next process."""
    index = HnswIndex(4)
    vectors = np.random.default_rng(1).normal(size=(20, 4)).astype(np.float32)
    index.add(np.arange(20), vectors / np.linalg.norm(vectors, axis=1, keepdims=True))
    index.remove(np.array([3, 7]))
    save_graph(tmp_path, index, state(5), "model-a")
    loaded, built = load_graph(tmp_path, "model-a", 4, vouch)
    assert built == state(5) and loaded.deleted == {3, 7} and len(loaded) == 18
    assert not {3, 7} & set(loaded.labels().tolist())
    assert not list(tmp_path.glob("*.tmp"))


def test_saving_removes_old_graphs_and_stale_temp_files_but_not_a_fresh_one(tmp_path):
    """A fresh temp file may be another process's graph being written right now."""
    index = HnswIndex(4)
    index.add(np.arange(3), np.eye(3, 4, dtype=np.float32))
    save_graph(tmp_path, index, state(1), "model-a")
    first = json.loads((tmp_path / STAMP).read_text())["file"]
    stale, busy = tmp_path / ".index.0.1.hnsw.dead.tmp", tmp_path / ".index.2.2.hnsw.busy.tmp"
    stale.write_bytes(b"killed mid-write")
    busy.write_bytes(b"being written")
    os.utime(stale, (time.time() - 2 * STALE_TEMP_AGE,) * 2)
    save_graph(tmp_path, index, state(2), "model-a")
    assert not (tmp_path / first).exists() and not stale.exists() and busy.exists()
    assert load_graph(tmp_path, "model-a", 4, vouch)[1] == state(2)


def test_patching_reads_every_id_only_after_a_deletion(graph_library, tmp_path, monkeypatch):
    """Adding images patches without listing every vector id (a second at a million); deleting still removes."""
    lib, embedder, paths = graph_library
    cache = IndexCache(lib, embedder.finish, fingerprint(embedder), embedder.dim)
    cache.current()
    listed = []
    vector_ids = Library.vector_ids
    monkeypatch.setattr(Library, "vector_ids", lambda self: listed.append(1) or vector_ids(self))
    style_image(tmp_path / "art" / "new" / "a.png", 40)
    list(index_folders(lib, [], embedder, workers=0))
    assert len(cache.current()) == len(paths) + 1
    assert listed == []
    gone = lib.find_image(paths[0])[0]
    paths[0].unlink()
    list(index_folders(lib, [], embedder, workers=0))
    index = cache.current()
    assert gone not in index.labels() and len(index) == len(paths)
    assert listed
