"""The library store: creation, schema upgrades, damage, the writer lock, moodboards."""

from __future__ import annotations

import sqlite3

import numpy as np
import pytest

from core.errors import LibraryBusyError, LibraryError, QueryError
from core.library import DB_NAME, Library, default_library_dir
from core.query import QueryItem
from core.schema import SCHEMA_VERSION, vector_blob, vector_from_blob


def test_default_folder_follows_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("ALADIN_LIBRARY", str(tmp_path / "elsewhere"))
    assert default_library_dir() == tmp_path / "elsewhere"
    with Library.open() as lib:
        assert lib.folder == tmp_path / "elsewhere"
    assert (tmp_path / "elsewhere" / DB_NAME).is_file()


def test_new_library_is_wal_and_stamped(tmp_path):
    with Library.open(tmp_path / "lib") as lib:
        assert lib.status().images == 0
    con = sqlite3.connect(tmp_path / "lib" / DB_NAME)
    assert con.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert con.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION


def test_version_1_library_is_upgraded_in_place(tmp_path):
    folder = tmp_path / "lib"
    with Library.open(folder) as lib:
        root = lib.add_root(tmp_path)
    con = sqlite3.connect(folder / DB_NAME)
    con.execute("DROP TABLE moodboard_items")
    con.execute("DROP TABLE moodboards")
    con.execute("DROP TABLE generations")
    con.execute("DELETE FROM meta WHERE key = 'library_id'")
    con.execute("PRAGMA user_version=1")
    con.commit()
    con.close()
    with Library.open(folder) as lib:
        assert [r.id for r in lib.roots()] == [root.id]
        state = lib.state()
        assert state.library_id and state.token and lib.knows(state)  # version 3 named the library
        image = tmp_path / "a.png"
        image.write_bytes(b"")
        lib.save_moodboard("board", [QueryItem(str(image))])
        assert lib.moodboards() == ["board"]
    con = sqlite3.connect(folder / DB_NAME)
    assert con.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION


def test_raw_vectors_are_kept_in_half_precision_and_float32_ones_from_before_stay_readable(tmp_path):
    from core.indexer import index_folders
    from core.search import Searcher
    from library_fixtures import make_tree, tiny_embedder

    embedder = tiny_embedder(tmp_path / "models")
    paths = make_tree(tmp_path / "art", styles=3, per_style=2)
    folder = tmp_path / "lib"
    with Library.open(folder) as lib:
        list(index_folders(lib, [tmp_path / "art"], embedder, workers=0))
        stored = lib.raw_vectors(lib.vector_ids().tolist())
        ids = {str(p): lib.find_image(p)[0] for p in paths}
    expected, _ = embedder.embed_paths([str(p) for p in paths], workers=0)
    con = sqlite3.connect(folder / DB_NAME)
    lengths = {n for (n,) in con.execute("SELECT length(data) FROM vectors")}
    assert lengths == {2 * embedder.raw_dim + 1}, "two bytes a value and the tag"
    finished = embedder.finish(np.stack([stored[ids[str(p)]] for p in paths]))
    assert np.abs(finished - expected).max() < 2e-3
    # A library from before schema 5 holds float32 blobs: it is upgraded and reads them exactly.
    exact = np.linspace(-1, 1, embedder.raw_dim, dtype=np.float32)
    first = ids[str(paths[0])]
    con.execute("UPDATE vectors SET data = ? WHERE image_id = ?", (exact.tobytes(), first))
    con.execute("PRAGMA user_version=4")
    con.commit()
    con.close()
    with Library.open(folder) as lib:
        assert np.array_equal(lib.raw_vectors([first])[first], exact)
        assert len(Searcher(lib, embedder).search([QueryItem(str(paths[1]))])) == len(paths) - 1
    con = sqlite3.connect(folder / DB_NAME)
    assert con.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == 5


def test_values_half_precision_cannot_hold_stay_float32():
    wide = np.array([1e6, -3.5, 0.25], np.float32)
    assert len(vector_blob(wide)) == 12 and np.array_equal(vector_from_blob(vector_blob(wide)), wide)
    small = np.array([0.1, -0.5, 1 / 16384], np.float32)
    blob = vector_blob(small)
    assert len(blob) == 7 and np.allclose(vector_from_blob(blob), small, rtol=1e-3, atol=0)
    assert vector_from_blob(blob).dtype == np.float32


def test_newer_schema_is_refused(tmp_path):
    Library.open(tmp_path).close()
    con = sqlite3.connect(tmp_path / DB_NAME)
    con.execute(f"PRAGMA user_version={SCHEMA_VERSION + 1}")
    con.commit()
    con.close()
    with pytest.raises(LibraryError, match="newer version"):
        Library.open(tmp_path)


def test_damaged_database_is_a_clear_error(tmp_path):
    (tmp_path / DB_NAME).write_bytes(b"this is not sqlite at all" * 100)
    with pytest.raises(LibraryError, match="damaged"):
        Library.open(tmp_path)


def test_foreign_sqlite_file_is_refused(tmp_path):
    con = sqlite3.connect(tmp_path / DB_NAME)
    con.execute("CREATE TABLE other (x)")
    con.commit()
    con.close()
    with pytest.raises(LibraryError, match="not an aladin library"):
        Library.open(tmp_path)


def test_one_writer_at_a_time(tmp_path):
    with Library.open(tmp_path) as a, Library.open(tmp_path) as b:
        with a.writer():
            with pytest.raises(LibraryBusyError, match="busy"):
                with b.writer():
                    pass
        with b.writer():  # released when the first writer finished
            pass


def test_moodboards_crud(tmp_path):
    img = tmp_path / "x.png"
    img.write_bytes(b"")
    with Library.open(tmp_path / "lib") as lib:
        lib.save_moodboard("warm", [QueryItem(str(img), 2.0), QueryItem(str(img), 1.0, negative=True)])
        items = lib.load_moodboard("warm")
        assert [(i.weight, i.negative) for i in items] == [(2.0, False), (1.0, True)]
        lib.rename_moodboard("warm", "hot")
        assert lib.moodboards() == ["hot"]
        lib.save_moodboard("cold", [QueryItem(str(img))])
        with pytest.raises(QueryError, match="already exists"):
            lib.rename_moodboard("hot", "cold")
        lib.delete_moodboard("hot")
        assert lib.moodboards() == ["cold"]
        with pytest.raises(QueryError, match="no moodboard"):
            lib.load_moodboard("hot")
        with pytest.raises(QueryError):
            lib.save_moodboard("empty", [])


def test_removing_an_unknown_folder_is_a_clear_error(tmp_path):
    with Library.open(tmp_path / "lib") as lib:
        with pytest.raises(QueryError, match="not in the library"):
            lib.remove_root(tmp_path / "nowhere")
