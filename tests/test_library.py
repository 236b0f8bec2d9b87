"""The library store: creation, schema upgrades, damage, the writer lock, moodboards."""

from __future__ import annotations

import sqlite3

import pytest

from core.errors import LibraryBusyError, LibraryError, QueryError
from core.library import DB_NAME, Library, default_library_dir
from core.query import QueryItem
from core.schema import SCHEMA_VERSION


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
