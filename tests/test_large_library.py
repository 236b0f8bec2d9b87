"""What keeps a large library fast: graph recall at the shipped parameters, a folder filter that
reads only its folder, and a re-index of an unchanged tree that embeds, hashes and decodes nothing.

The figures at 10k-1M images are bench/library_scale.py's; these tests pin the behaviour behind them.
"""

from __future__ import annotations

import numpy as np

import core.indexer
from core.indexer import index_folders
from core.library import Library
from core.scan import scan
from core.vector_index import HnswIndex, scores, top_k
from core.writer import LibraryWriter
from library_fixtures import make_tree, style_image, tiny_embedder


def clustered(n: int, clusters: int, dim: int, spread: float, seed: int) -> np.ndarray:
    """Unit vectors in tight clusters, as style codes of a collection of series are."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(clusters, dim))
    x = centres[rng.integers(0, clusters, n)] + rng.normal(0, spread, (n, dim))
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def recall_at_10(index: HnswIndex, ids: np.ndarray, unit: np.ndarray, queries: np.ndarray,
                 allowed: np.ndarray | None = None) -> float:
    mask = np.isin(ids, allowed) if allowed is not None else slice(None)
    hits = 0
    for q in queries:
        want = set(top_k(ids[mask], scores(unit[mask], q), 10)[0].tolist())
        hits += len(want & set(index.query(q, 10, allowed)[0].tolist()))
    return hits / (10 * len(queries))


def test_graph_recall_at_the_shipped_parameters_on_clustered_vectors():
    """recall@10 >= 0.98 against exact search, for points inside clusters and for queries between them."""
    unit = clustered(3000, 60, 48, spread=0.35, seed=1)
    ids = np.arange(1, 3001, dtype=np.int64) * 7  # labels are image ids, not positions
    index = HnswIndex(48, capacity=len(ids))
    index.add(ids, unit)
    inside = unit[np.random.default_rng(2).integers(0, 3000, 100)]
    between = clustered(100, 100, 48, spread=0.6, seed=3)
    assert recall_at_10(index, ids, unit, inside) >= 0.98
    assert recall_at_10(index, ids, unit, between) >= 0.98
    allowed = ids[::5]  # a folder of a fifth of the library goes through hnswlib's filter
    assert recall_at_10(index, ids, unit, inside, allowed) >= 0.98


def test_folder_filter_holds_that_folder_only(tmp_path):
    """The range query behind a folder filter: neighbours in sort order ("g3!", "g3-x", "g30") stay out."""
    embedder = tiny_embedder(tmp_path)
    art = tmp_path / "art"
    names = ["g3/a.png", "g3/deep/b.png", "g3-x/c.png", "g30/d.png", "g3!/e.png", "g/f.png", "g3.png"]
    for n, name in enumerate(names):
        style_image(art / name, n)
    lib = Library.open(tmp_path / "lib")
    list(index_folders(lib, [art], embedder, workers=0))
    paths = lib.image_paths(sorted(lib.ids_under([str(art / "g3")])))
    assert sorted(paths.values()) == [str(art / "g3" / "a.png"), str(art / "g3" / "deep" / "b.png")]
    assert len(lib.ids_under([str(art / "g3" / "deep")])) == 1
    assert len(lib.ids_under([str(art)])) == len(names)
    lib.close()


def test_unchanged_reindex_embeds_hashes_and_reads_no_vectors(tmp_path, monkeypatch):
    """The no-op path compares size and mtime only: no decoder, no hash, no vector sizes from the database."""
    embedder = tiny_embedder(tmp_path)
    make_tree(tmp_path / "art", styles=4, per_style=3)
    lib = Library.open(tmp_path / "lib")
    list(index_folders(lib, [tmp_path / "art"], embedder, workers=0))

    def forbidden(*args, **kwargs):
        raise AssertionError("a re-index of an unchanged tree must not get here")

    monkeypatch.setattr(type(embedder), "embed_chunks", forbidden)
    monkeypatch.setattr(core.indexer, "content_hash", forbidden)
    monkeypatch.setattr(LibraryWriter, "vector_sizes", forbidden)
    monkeypatch.setattr(LibraryWriter, "commit_batch", forbidden)
    generation = lib.generation()
    summary = list(index_folders(lib, [], embedder, workers=0))[-1].summary
    assert (summary.unchanged, summary.embedded, summary.added, summary.removed) == (12, 0, 0, 0)
    assert lib.generation() == generation
    lib.close()


def test_scan_gives_posix_paths_relative_to_the_root(tmp_path):
    """Relative paths are worked out per folder; nested folders and a root given as a string agree."""
    style_image(tmp_path / "a" / "b" / "c.png", 1)
    style_image(tmp_path / "top.png", 2)
    (tmp_path / "a" / "notes.txt").write_text("not an image")
    entries = {e.relpath: e for e in scan(str(tmp_path))}
    assert set(entries) == {"a/b/c.png", "top.png"}
    assert entries["top.png"].size == (tmp_path / "top.png").stat().st_size
    assert entries["a/b/c.png"].mtime_ns == (tmp_path / "a" / "b" / "c.png").stat().st_mtime_ns
