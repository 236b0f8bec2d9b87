"""Trusting the library: the index cache proves which database state it was built from, and a
damaged, emptied, read-only or busy library gets one clear message (and a way out) instead of a
traceback or a silent new library.

Read-only libraries are simulated: the tests run as root, which ignores permission bits, so
``os.access`` is patched to deny writing, and the library opens through SQLite's read-only
modes (``mode=ro``, or ``immutable=1`` in a read-only folder), which refuse writes even to root.
The chmod test runs where permission bits hold (not as root).
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import core.index_cache
import core.schema
from app.engine import Engine
from core.cli import main
from core.errors import LibraryBusyError, LibraryDamagedError, LibraryReadOnlyError
from core.index_cache import GRAPHS, STAMP, IndexCache, fingerprint
from core.indexer import index_folders
from core.library import DB_NAME, Library
from core.query import QueryItem, SearchFilters
from core.repair import repair
from core.search import Searcher
from core.vector_index import scores, top_k
from core.writer import ImageFile
from library_fixtures import make_tree, style_image, tiny_embedder, tiny_model_file


PAGE = 4096  # SQLite's default page size


@pytest.fixture(autouse=True)
def small_graphs(monkeypatch):
    """Libraries of a few dozen images get an hnswlib graph, as large ones do."""
    monkeypatch.setattr(core.index_cache, "EXACT_LIMIT", 10)


def indexed(folder: Path, art: Path, embedder) -> Library:
    lib = Library.open(folder)
    list(index_folders(lib, [art], embedder, workers=0))
    return lib


def searched(lib: Library, embedder, query: Path, k: int = 10) -> list[int]:
    """Image ids a search for ``query`` returns, through the cache a new process would use (ranked by cosine
    alone, without the hubness correction or the query expansion, to compare with the exact cosine top ``k``)."""
    plain = SearchFilters(k=k, csls=False, expand=False)
    return [r.image_id for r in Searcher(lib, embedder).search([QueryItem(str(query))], plain)]


def exact_top(lib: Library, embedder, query: Path, k: int = 10) -> list[int]:
    """The true top ``k`` for a library image, by brute force over the vectors in SQLite."""
    batches = list(lib.iter_vectors())
    ids = np.concatenate([b[0] for b in batches])
    unit = embedder.finish(np.concatenate([b[1] for b in batches]))
    query_id = lib.find_image(query)[0]
    best = top_k(ids, scores(unit, unit[ids == query_id][0]), k + 1)[0].tolist()
    return [i for i in best if i != query_id][:k]


def near_copy(src: Path, dst: Path, n: int) -> Path:
    """The picture a little smaller and re-encoded as JPEG; each ``n`` gives another file (and vector)."""
    img = Image.open(src).convert("RGB")
    img.resize((img.width - 2 - n, img.height - 2 - n)).save(dst, quality=90 - 5 * n)
    return dst


def fail_line(capsys, argv: list[str]) -> str:
    """Run ``aladin argv``; it must fail with exit status 2 and exactly one line on stderr."""
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("aladin: error: ") and "Traceback" not in err, err
    return err


# -- the cache names the database state it was built from --------------------------------------------
def test_a_cache_of_another_library_is_rebuilt(tmp_path):
    embedder = tiny_embedder(tmp_path)
    ours = make_tree(tmp_path / "ours", styles=6, per_style=4)
    for n in range(24):
        style_image(tmp_path / "theirs" / f"t{n}.png", 40 + n % 6, n)
    lib = indexed(tmp_path / "lib", tmp_path / "ours", embedder)
    indexed(tmp_path / "other", tmp_path / "theirs", embedder).close()

    def swap_in_their_cache():
        for path in [lib.folder / STAMP, *lib.folder.glob(GRAPHS)]:
            path.unlink()
        for path in [tmp_path / "other" / STAMP, *(tmp_path / "other").glob(GRAPHS)]:
            shutil.copy(path, lib.folder / path.name)

    swap_in_their_cache()
    health = lib.status().index
    assert health["state"] == "stale" and "another library" in health["detail"]
    assert searched(lib, embedder, ours[0]) == exact_top(lib, embedder, ours[0])
    assert lib.status().index["state"] == "fresh"  # the search rebuilt our own graph and saved it

    swap_in_their_cache()
    list(index_folders(lib, [], embedder, workers=0))  # an index run must not save their graph again
    assert lib.status().index["state"] == "fresh"
    assert searched(lib, embedder, ours[0]) == exact_top(lib, embedder, ours[0])
    lib.close()


@pytest.fixture
def restored(tmp_path):
    """A library restored from a backup while the cache of its newer, lost state stayed, with three new
    near-copies of a query on disk. Yields the library, the embedder, the query, the copies and the
    ids the lost state gave to images the restore forgot."""
    embedder = tiny_embedder(tmp_path)
    art = tmp_path / "art"
    paths = make_tree(art, styles=6, per_style=4)
    folder = tmp_path / "lib"
    indexed(folder, art, embedder).close()
    backup = (folder / DB_NAME).read_bytes()
    for n in range(6):
        style_image(art / "later" / f"v{n}.png", 30, n)
    with indexed(folder, art, embedder) as lib:
        lost = lib.ids_under([str(art / "later")])
    assert not Path(f"{folder / DB_NAME}-wal").exists()  # closed cleanly: the file alone is the library
    (folder / DB_NAME).write_bytes(backup)
    shutil.rmtree(art / "later")
    copies = [near_copy(paths[0], art / "style00" / f"copy{n}.jpg", n) for n in range(3)]
    lib = Library.open(folder)
    yield lib, embedder, paths[0], copies, lost
    lib.close()


def test_a_database_restored_from_a_backup_does_not_trust_the_newer_cache(restored):
    lib, embedder, query, copies, _ = restored
    health = lib.status().index
    assert health["state"] == "stale" and "no longer has" in health["detail"]
    list(index_folders(lib, [], embedder, workers=0))
    assert searched(lib, embedder, query) == exact_top(lib, embedder, query)
    assert {lib.find_image(c)[0] for c in copies} <= set(searched(lib, embedder, query))
    assert lib.status().index["state"] == "fresh"


def test_image_ids_reused_after_a_restore_are_not_served_from_the_stale_cache(restored):
    lib, embedder, _, copies, lost = restored
    list(index_folders(lib, [], embedder, workers=0))
    ids = np.array(sorted(lib.find_image(c)[0] for c in copies))
    assert set(ids.tolist()) <= lost  # the restored counter hands out the forgotten images' ids again
    index = IndexCache(lib, embedder.finish, fingerprint(embedder), embedder.dim).current()
    raw = lib.raw_vectors(ids.tolist())
    np.testing.assert_allclose(index.vectors(ids), embedder.finish(np.stack([raw[i] for i in ids])), atol=1e-5)


# -- damaged pages ---------------------------------------------------------------------------------------
@pytest.fixture
def damaged(tmp_path):
    """A library of 3004 images (4 real, 3000 written through the writer) with every 25th page of the
    middle half of its database overwritten: images, vectors and their indexes all lose some pages.
    Yields the folder, the model file, the image count before and the embedder."""
    embedder = tiny_embedder(tmp_path)
    make_tree(tmp_path / "art", styles=2, per_style=2)
    folder = tmp_path / "lib"
    with indexed(folder, tmp_path / "art", embedder) as lib:
        root, model_id = lib.roots()[0], lib.model_record().id
        rng = np.random.default_rng(0)
        with lib.writer() as w:
            for batch in range(30):
                files = [ImageFile(str(tmp_path / "art" / f"gone{batch}-{n}.png"), root.id, f"gone{batch}-{n}.png",
                                   1000 + n, 1) for n in range(100)]
                w.commit_batch(model_id, files, {f.path: (rng.normal(size=embedder.dim).astype(np.float32), (48, 40))
                                                 for f in files}, {})
        images = lib.status().images
    db = folder / DB_NAME
    data = bytearray(db.read_bytes())
    pages = len(data) // PAGE
    for n in range(pages // 4, 3 * pages // 4, 25):
        data[n * PAGE:(n + 1) * PAGE] = b"\xde\xad\xbe\xef" * (PAGE // 4)
    db.write_bytes(bytes(data))
    yield folder, tiny_model_file(tmp_path), images, embedder


def test_a_damaged_database_is_one_clear_line_from_every_command(damaged, capsys):
    folder, model, _, _ = damaged
    for argv in (["status"], ["search", str(folder.parent / "art" / "style00" / "v0.png"), "--model", str(model)],
                 ["index", "--model", str(model)]):
        err = fail_line(capsys, [*argv, "--library", str(folder)])
        assert "is damaged" in err and f"aladin repair --library {folder}" in err, argv


def test_repair_recovers_the_readable_rows_and_keeps_the_damaged_file(damaged, capsys):
    folder, _, images, embedder = damaged
    before = (folder / DB_NAME).read_bytes()
    report = repair(folder)
    assert report.problems and report.kept.name.startswith(f"{DB_NAME}.damaged-")
    assert report.kept.read_bytes() == before
    tables = {t.name: t for t in report.tables}
    assert {"roots", "models", "images", "vectors"} <= tables.keys()
    assert any(t.lost != 0 for t in report.tables)  # the damage cost something, and the report says so
    assert tables["images"].lost is None or tables["images"].recovered + tables["images"].lost == images
    con = sqlite3.connect(folder / DB_NAME)
    assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    con.close()
    assert main(["repair", "--library", str(folder)]) == 0
    assert "no damage found" in capsys.readouterr().out
    with Library.open(folder) as lib:
        assert lib.status().pending == report.reembed
        list(index_folders(lib, [], embedder, workers=0))  # vectors are recomputed; the vanished files forgotten
        status = lib.status()
    assert (status.images, status.indexed) == (4, 4)


def test_the_app_shows_a_damaged_library_as_a_message(damaged, qtbot):
    folder = damaged[0]
    engine = Engine()
    with qtbot.waitSignal(engine.library_ready, timeout=10000):
        engine.open_library(str(folder))  # the first pages still read
    with qtbot.waitSignal(engine.failed, timeout=10000) as failed:
        engine.read_status()
    assert "is damaged" in failed.args[0] and "aladin repair" in failed.args[0]
    engine.shutdown()
    (folder / DB_NAME).write_bytes(b"\x00" * 4096)  # not even the header reads now
    engine = Engine()
    with qtbot.waitSignal(engine.library_failed, timeout=10000) as opening:
        engine.open_library(str(folder))
    assert "is damaged" in opening.args[0]
    engine.shutdown()


# -- an emptied database -----------------------------------------------------------------------------------
def test_an_emptied_database_beside_library_files_is_refused_until_repaired(tmp_path, capsys):
    folder = tmp_path / "lib"
    with Library.open(folder) as lib:
        lib.add_root(tmp_path)
        with lib.writer():
            pass
    (folder / DB_NAME).write_bytes(b"")
    err = fail_line(capsys, ["status", "--library", str(folder)])
    assert "is empty (0 bytes)" in err and "writer.lock" in err and "aladin repair" in err
    with pytest.raises(LibraryDamagedError):
        Library.open(folder)
    assert (folder / DB_NAME).stat().st_size == 0  # left as it was
    assert main(["repair", "--library", str(folder)]) == 0
    assert "nothing in it could be read" in capsys.readouterr().out
    assert [p.stat().st_size for p in folder.glob(f"{DB_NAME}.damaged-*")] == [0]
    with Library.open(folder) as lib:
        assert lib.roots() == []


def test_a_new_folder_or_a_lone_empty_file_still_becomes_a_library(tmp_path):
    with Library.open(tmp_path / "new") as lib:
        assert lib.status().images == 0 and lib.state().library_id
    (tmp_path / "lone").mkdir()
    (tmp_path / "lone" / DB_NAME).write_bytes(b"")
    with Library.open(tmp_path / "lone") as lib:
        assert lib.state().token


# -- read-only and busy libraries --------------------------------------------------------------------------
def deny_writing(monkeypatch, denied: set[Path]) -> None:
    """``os.access`` answers "not writable" for ``denied``, as it would on a read-only mount."""
    real = os.access
    monkeypatch.setattr(os, "access", lambda path, mode, **kw: (
        False if mode & os.W_OK and Path(path) in denied else real(path, mode, **kw)))


@pytest.fixture
def graph_library(tmp_path):
    """An indexed library, closed, and without its cache file (a search must build the graph)."""
    embedder = tiny_embedder(tmp_path)
    paths = make_tree(tmp_path / "art", styles=6, per_style=4)
    with indexed(tmp_path / "lib", tmp_path / "art", embedder) as lib:
        expected = searched(lib, embedder, paths[0])
    for path in [lib.folder / STAMP, *lib.folder.glob(GRAPHS)]:
        path.unlink()
    return lib.folder, embedder, paths[0], expected


@pytest.mark.parametrize("denied", ["folder", "database"])
def test_a_read_only_library_is_searched_and_refuses_changes(graph_library, monkeypatch, capsys, tmp_path, denied):
    folder, embedder, query, expected = graph_library
    deny_writing(monkeypatch, {folder, folder / DB_NAME} if denied == "folder" else {folder / DB_NAME})
    files = sorted(p.name for p in folder.iterdir())
    with Library.open(folder) as lib:
        assert lib.read_only
        assert searched(lib, embedder, query) == expected
        assert lib.status().index["state"] == "missing"  # built in memory, never saved
        with pytest.raises(LibraryReadOnlyError, match="read-only"):
            lib.save_moodboard("board", [QueryItem(str(query))])
        with pytest.raises(LibraryReadOnlyError, match="read-only"):
            lib.remove_root(tmp_path / "art")
    assert main(["status", "--library", str(folder)]) == 0
    err = fail_line(capsys, ["index", "--library", str(folder), "--model", str(tiny_model_file(tmp_path))])
    assert "is read-only" in err and "damaged" not in err
    if denied == "folder":
        assert sorted(p.name for p in folder.iterdir()) == files  # not even SQLite's -wal and -shm files


def _as_nobody(args: list[str], home: Path) -> subprocess.CompletedProcess:
    """Run ``aladin ARGS`` as an unprivileged user: root ignores permission bits, so a read-only library
    is only read-only for someone else."""
    env = {**os.environ, "HOME": str(home), "ALADIN_LOG_DIR": str(home / "log"), "ALADIN_CACHE_DIR": str(home)}
    command = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--",
               sys.executable, "-m", "app.launcher", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=120, env=env, cwd=home)


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX permission bits")
def test_a_library_on_read_only_files_opens_read_only(graph_library):
    folder, embedder, query, expected = graph_library
    if os.geteuid() != 0:
        modes = {path: path.stat().st_mode for path in [*folder.iterdir(), folder]}
        try:
            for path in modes:
                path.chmod(0o555 if path.is_dir() else 0o444)
            with Library.open(folder) as lib:
                assert lib.read_only and searched(lib, embedder, query) == expected
                with pytest.raises(LibraryReadOnlyError):
                    lib.remove_root(query.parent)
        finally:
            for path, mode in modes.items():
                path.chmod(mode)
        return
    # As root: a world-readable copy of the library with read-only files, used by the 'nobody' user.
    base = Path(tempfile.mkdtemp(prefix="aladin-ro-"))
    try:
        base.chmod(0o755)
        home = base / "home"
        home.mkdir(mode=0o777)
        home.chmod(0o777)
        copy = base / "lib"
        shutil.copytree(folder, copy)
        for path in [*copy.iterdir(), copy]:
            path.chmod(0o555 if path.is_dir() else 0o444)
        status = _as_nobody(["status", "--library", str(copy), "--json"], home)
        assert status.returncode == 0, status.stderr
        assert json.loads(status.stdout)["indexed"] == 24  # make_tree: 6 styles x 4 images
        index = _as_nobody(["index", "--library", str(copy)], home)
        assert index.returncode == 2 and "read-only" in index.stderr and "damaged" not in index.stderr, index.stderr
        assert sorted(p.name for p in copy.iterdir()) == sorted(p.name for p in folder.iterdir())
    finally:
        shutil.rmtree(base)


def test_database_is_locked_reads_busy_not_damaged(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(core.schema, "BUSY_TIMEOUT_S", 0.05)
    folder = tmp_path / "lib"
    folder.mkdir()
    other = sqlite3.connect(folder / DB_NAME, isolation_level=None)
    other.execute("BEGIN EXCLUSIVE")  # another process creating the library at the same moment
    err = fail_line(capsys, ["status", "--library", str(folder)])
    assert "is busy" in err and "damaged" not in err
    other.execute("ROLLBACK")
    with Library.open(folder) as lib:
        other.execute("BEGIN IMMEDIATE")  # another process writing
        with pytest.raises(LibraryBusyError, match="busy"):
            lib.add_root(tmp_path)
        other.execute("ROLLBACK")
        lib.add_root(tmp_path)
    other.close()
