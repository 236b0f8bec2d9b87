"""Indexing: incremental re-runs, moves, deletions, bad files, cancel, kill -9 and a busy library."""

from __future__ import annotations

import os
import shutil
import signal
import sqlite3
import struct
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import core.scan
from core.cli import main
from core.embedder import NON_FINITE
from core.errors import LibraryBusyError, ModelMismatchError
from core.files import content_hash
from core.indexer import IndexSummary, index_folders
from core.library import DB_NAME, Library
from core.query import QueryItem
from core.search import Searcher
from core.schema import vector_from_blob
from library_fixtures import assert_known_error, make_tree, style_image, tiny_embedder, tiny_model_file

REPO = Path(__file__).resolve().parent.parent


def run_index(lib, folders, embedder, **kw) -> IndexSummary:
    progress = list(index_folders(lib, folders, embedder, workers=0, batch_size=kw.pop("batch_size", 8), **kw))
    assert progress[-1].phase == "done"
    return progress[-1].summary


def db_counts(folder: Path) -> tuple[int, int, int]:
    """(images, vectors, ok images without a vector) read with plain sqlite3."""
    con = sqlite3.connect(folder / DB_NAME)
    try:
        images = con.execute("SELECT count(*) FROM images").fetchone()[0]
        vectors = con.execute("SELECT count(*) FROM vectors").fetchone()[0]
        orphans = con.execute("SELECT count(*) FROM images i LEFT JOIN vectors v ON v.image_id = i.id "
                              "WHERE i.status = 'ok' AND v.image_id IS NULL").fetchone()[0]
        assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert con.execute("SELECT count(*) FROM vectors v LEFT JOIN images i ON i.id = v.image_id "
                           "WHERE i.id IS NULL").fetchone()[0] == 0
        dupes = con.execute("SELECT count(*) FROM (SELECT root_id, relpath FROM images "
                            "GROUP BY root_id, relpath HAVING count(*) > 1)").fetchone()[0]
        assert dupes == 0
        return images, vectors, orphans
    finally:
        con.close()


@pytest.fixture(scope="module")
def embedder(tmp_path_factory):
    return tiny_embedder(tmp_path_factory.mktemp("model"))


def test_rerun_embeds_nothing_when_nothing_changed(tmp_path, embedder):
    make_tree(tmp_path / "art", styles=4, per_style=3)
    with Library.open(tmp_path / "lib") as lib:
        first = run_index(lib, [tmp_path / "art"], embedder)
        assert (first.added, first.embedded, first.failed) == (12, 12, 0)
        second = run_index(lib, [], embedder)  # no folders: rescan every root
        assert (second.embedded, second.added, second.unchanged) == (0, 0, 12)
        assert lib.status().indexed == 12


def test_touched_file_is_hashed_not_reembedded(tmp_path, embedder):
    paths = make_tree(tmp_path / "art", styles=2, per_style=2)
    with Library.open(tmp_path / "lib") as lib:
        run_index(lib, [tmp_path / "art"], embedder)
        os.utime(paths[0], ns=(time.time_ns(), time.time_ns() + 5_000_000_000))
        style_image(paths[1], style=7)  # really changed
        again = run_index(lib, [tmp_path / "art"], embedder)
        assert (again.embedded, again.updated, again.unchanged) == (1, 1, 3)


def test_moved_file_keeps_its_vector_and_moodboard(tmp_path, embedder):
    paths = make_tree(tmp_path / "art", styles=3, per_style=2)
    with Library.open(tmp_path / "lib") as lib:
        run_index(lib, [tmp_path / "art"], embedder)
        before = lib.find_image(paths[0])
        lib.save_moodboard("board", [QueryItem(str(paths[0]))])
        target = tmp_path / "art" / "renamed" / "über.png"
        target.parent.mkdir()
        shutil.move(paths[0], target)
        summary = run_index(lib, [tmp_path / "art"], embedder)
        assert (summary.moved, summary.embedded, summary.removed) == (1, 0, 0)
        after = lib.find_image(target)
        assert after is not None and after[0] == before[0]
        assert lib.load_moodboard("board")[0].path == str(target)


def test_move_between_roots_is_recognised(tmp_path, embedder):
    paths = make_tree(tmp_path / "a", styles=2, per_style=1)
    (tmp_path / "b").mkdir()
    with Library.open(tmp_path / "lib") as lib:
        run_index(lib, [tmp_path / "a", tmp_path / "b"], embedder)
        before = lib.find_image(paths[1])[0]
        shutil.move(paths[1], tmp_path / "b" / "moved.png")
        summary = run_index(lib, [], embedder)
        assert (summary.moved, summary.embedded, summary.removed) == (1, 0, 0)
        assert lib.find_image(tmp_path / "b" / "moved.png")[0] == before


def test_copy_reuses_vector_and_deletion_removes(tmp_path, embedder):
    paths = make_tree(tmp_path / "art", styles=2, per_style=2)
    with Library.open(tmp_path / "lib") as lib:
        run_index(lib, [tmp_path / "art"], embedder)
        shutil.copy(paths[1], tmp_path / "art" / "copy.png")
        paths[2].unlink()
        summary = run_index(lib, [tmp_path / "art"], embedder)
        assert (summary.added, summary.embedded, summary.removed) == (1, 0, 1)
        ids = [lib.find_image(paths[1])[0], lib.find_image(tmp_path / "art" / "copy.png")[0]]
        raw = lib.raw_vectors(ids)
        np.testing.assert_array_equal(raw[ids[0]], raw[ids[1]])
        assert db_counts(lib.folder)[:2] == (4, 4)
        assert lib.remove_root(tmp_path / "art" / "style01") == 1
        assert lib.remove_root(tmp_path / "art") == 3
        assert db_counts(lib.folder)[:2] == (0, 0)
        assert lib.roots() == []


def _tiny_psd(height: int = 16, width: int = 20) -> bytes:
    """A minimal Photoshop file: header, three empty sections, a raw RGB composite."""
    planes = (np.random.default_rng(0).random((3, height, width)) * 255).astype(np.uint8)
    header = b"8BPS" + struct.pack(">H6xHIIHH", 1, 3, height, width, 8, 3)
    return header + struct.pack(">III", 0, 0, 0) + struct.pack(">H", 0) + planes.tobytes()


def _zoo(folder: Path) -> dict[str, str | None]:
    """Files and the reason words each must fail with (None: must index fine)."""
    folder.mkdir(parents=True)
    good = style_image(folder / "good.png", 1)
    expect: dict[str, str | None] = {"good.png": None}
    data = (folder / "good.png").read_bytes()
    style_image(folder / "photo.jpg", 2, quality=90)
    (folder / "truncated.jpg").write_bytes((folder / "photo.jpg").read_bytes()[:300])
    expect["photo.jpg"], expect["truncated.jpg"] = None, "truncated"
    (folder / "empty.jpg").write_bytes(b"")
    (folder / "text.png").write_text("hello, not an image")
    expect["empty.jpg"] = expect["text.png"] = "not a recognised"
    Image.new("1", (17000, 16000)).save(folder / "bomb.png")
    expect["bomb.png"] = "too large"
    (folder / "no_extension").write_bytes(data)  # sniffed by content
    expect["no_extension"] = None
    frames = [Image.fromarray(np.full((20, 20, 3), c, np.uint8)) for c in (30, 200)]
    frames[0].save(folder / "anim.gif", save_all=True, append_images=frames[1:])
    Image.fromarray((np.arange(400, dtype=np.uint16).reshape(20, 20) * 100)).save(folder / "deep16.png")
    Image.open(good).convert("CMYK").save(folder / "cmyk.tif")
    Image.open(good).save(folder / "pic.webp")
    Image.open(good).save(folder / "pic.bmp")
    (folder / "composite.psd").write_bytes(_tiny_psd())
    expect.update({"anim.gif": None, "deep16.png": None, "cmyk.tif": None, "pic.webp": None, "pic.bmp": None,
                   "composite.psd": None})
    if os.geteuid() != 0:  # root reads anything
        locked = folder / "locked.png"
        locked.write_bytes(data)
        locked.chmod(0)
        expect["locked.png"] = "permission denied"
    (folder / "readme.txt").write_text("ignored: neither extension nor content says image")
    (folder / ".hidden.png").write_bytes(data)
    (folder / ".cache").mkdir()
    (folder / ".cache" / "thumb.png").write_bytes(data)
    (folder / "folder.jpg").mkdir()
    (folder / "loop").symlink_to(folder, target_is_directory=True)
    (folder / "画廊 café").mkdir()
    style_image(folder / "画廊 café" / "ünïcode.png", 3)
    expect["画廊 café/ünïcode.png"] = None
    return expect


def test_corrupt_file_zoo(tmp_path, embedder):
    expect = _zoo(tmp_path / "zoo")
    with Library.open(tmp_path / "lib") as lib:
        summary = run_index(lib, [tmp_path / "zoo"], embedder)
        failures = {Path(f.path).relative_to(tmp_path / "zoo").as_posix(): f.reason for f in lib.failures()}
        bad = {name: words for name, words in expect.items() if words}
        assert set(failures) == set(bad)
        for name, words in bad.items():
            assert words in failures[name], (name, failures[name])
        assert summary.failed == len(bad)
        assert summary.added == len(expect) - len(bad)  # symlink loop walked once; hidden files skipped
        assert lib.status().images == len(expect)
        # Failures are not retried until the file changes ...
        again = run_index(lib, [tmp_path / "zoo"], embedder)
        assert (again.failed, again.embedded) == (0, 0)
        # ... and then they are.
        style_image(tmp_path / "zoo" / "text.png", 4)
        fixed = run_index(lib, [tmp_path / "zoo"], embedder)
        assert (fixed.updated, fixed.failed) == (1, 0)
        assert "text.png" not in {Path(f.path).name for f in lib.failures()}


def test_decoding_processes_record_each_files_content_hash_and_a_move_is_recognised(tmp_path, embedder):
    """New files are hashed by the decoders from the bytes they decode: the hash a re-read gives, for a
    file that fails to decode too, so a later move of either keeps its row."""
    paths = make_tree(tmp_path / "art", styles=2, per_style=3)
    (tmp_path / "art" / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    with Library.open(tmp_path / "lib") as lib:
        progress = list(index_folders(lib, [tmp_path / "art"], embedder, workers=2, batch_size=4))
        assert (progress[-1].summary.added, progress[-1].summary.failed) == (6, 1)
        con = sqlite3.connect(tmp_path / "lib" / DB_NAME)
        stored = dict(con.execute("SELECT relpath, content_hash FROM images").fetchall())
        con.close()
        assert stored == {p.relative_to(tmp_path / "art").as_posix(): content_hash(p)
                          for p in [*paths, tmp_path / "art" / "broken.jpg"]}
        shutil.move(paths[0], tmp_path / "art" / "moved.png")
        again = run_index(lib, [tmp_path / "art"], embedder)
        assert (again.moved, again.embedded, again.removed) == (1, 0, 0)


def test_cancel_keeps_committed_batches_and_resume_finishes(tmp_path, embedder):
    make_tree(tmp_path / "art", styles=4, per_style=4)
    with Library.open(tmp_path / "lib") as lib:
        calls = {"n": 0}

        def cancel():
            calls["n"] += 1
            return calls["n"] >= 2

        first = run_index(lib, [tmp_path / "art"], embedder, batch_size=4, cancel=cancel)
        assert first.cancelled and first.embedded == 8
        assert db_counts(lib.folder) == (8, 8, 0)
        rest = run_index(lib, [], embedder, batch_size=4)
        assert (rest.embedded, rest.unchanged) == (8, 8)
        assert db_counts(lib.folder) == (16, 16, 0)


def test_other_model_needs_switch(tmp_path, embedder):
    make_tree(tmp_path / "art", styles=2, per_style=2)
    other = tiny_embedder(tmp_path, seed=11)
    with Library.open(tmp_path / "lib") as lib:
        run_index(lib, [tmp_path / "art"], embedder)
        with pytest.raises(ModelMismatchError, match="switch-model") as refused:
            run_index(lib, [], other)
        # Both are called 'tiny': the message tells them apart by their files' checksums.
        assert embedder.model.checksum[:8] in str(refused.value) and other.model.checksum[:8] in str(refused.value)
        assert refused.value.updated  # one name, other weights: an updated file, not another model
        switched = run_index(lib, [], other, switch_model=True)
        assert (switched.embedded, switched.updated) == (4, 4)
        assert lib.model_record().checksum == other.model.checksum
        with pytest.raises(ModelMismatchError):
            Searcher(lib, embedder)


def test_missing_root_keeps_its_images(tmp_path, embedder):
    make_tree(tmp_path / "drive", styles=2, per_style=2)
    with Library.open(tmp_path / "lib") as lib:
        run_index(lib, [tmp_path / "drive"], embedder)
        (tmp_path / "drive").rename(tmp_path / "unplugged")
        summary = run_index(lib, [], embedder)
        assert summary.removed == 0 and summary.missing_roots == [str(tmp_path / "drive")]
        assert lib.status().indexed == 4


def test_an_emptied_root_keeps_its_images_like_an_unmounted_share(tmp_path, embedder):
    drive = tmp_path / "share"
    make_tree(drive, styles=2, per_style=2)
    (tmp_path / "empty").mkdir()
    with Library.open(tmp_path / "lib") as lib:
        run_index(lib, [drive, tmp_path / "empty"], embedder)
        drive.rename(tmp_path / "mounted")
        drive.mkdir()  # the mount point left behind
        summary = run_index(lib, [], embedder)
        assert summary.removed == 0 and summary.missing_roots == [str(drive)]  # an empty root that had none is fine
        assert lib.status().indexed == 4
        drive.rmdir()
        (tmp_path / "mounted").rename(drive)
        back = run_index(lib, [], embedder)
        assert (back.missing_roots, back.removed, back.embedded) == ([], 0, 0) and lib.status().indexed == 4


def test_parent_folder_adopts_nested_root(tmp_path, embedder):
    paths = make_tree(tmp_path / "art", styles=2, per_style=2)
    with Library.open(tmp_path / "lib") as lib:
        run_index(lib, [tmp_path / "art" / "style00"], embedder)
        first_id = lib.find_image(paths[0])[0]
        summary = run_index(lib, [tmp_path / "art"], embedder)
        assert (summary.added, summary.embedded) == (2, 2)
        assert [r.path for r in lib.roots()] == [str(tmp_path / "art")]
        assert lib.find_image(paths[0])[0] == first_id


def test_a_non_finite_vector_is_a_failure_and_never_stored(tmp_path, monkeypatch):
    make_tree(tmp_path / "art", styles=2, per_style=2)
    Image.new("RGB", (40, 32)).save(tmp_path / "art" / "black.png")
    embedder = tiny_embedder(tmp_path)
    real = embedder.raw_from_pixels

    def overflowing(pixels):  # as float16 on a GPU can overflow on one image: here, the black one
        raw = real(pixels)
        raw[pixels.reshape(len(pixels), -1).max(axis=1) == 0] = np.nan
        return raw

    monkeypatch.setattr(embedder, "raw_from_pixels", overflowing)
    with Library.open(tmp_path / "lib") as lib:
        summary = run_index(lib, [tmp_path / "art"], embedder)
        assert (summary.embedded, summary.failed) == (4, 1)
        assert [(Path(f.path).name, f.reason) for f in lib.failures()] == [("black.png", NON_FINITE)]
    con = sqlite3.connect(tmp_path / "lib" / DB_NAME)
    stored = [vector_from_blob(data) for (data,) in con.execute("SELECT data FROM vectors")]
    con.close()
    assert len(stored) == 4 and all(np.isfinite(v).all() for v in stored)


def _index_argv(folder: Path, lib: Path, model: Path | str, *extra: str) -> list[str]:
    return ["index", str(folder), "--library", str(lib), "--model", str(model), "--device", "cpu", "--workers", "0",
            *extra]


def test_what_a_scan_cannot_use_is_listed_by_status_failures(tmp_path, monkeypatch, capsys):
    art = tmp_path / "art"
    style_image(art / "good.png", 1)
    style_image(art / "locked" / "inside.png", 2)
    with open(os.path.join(os.fsencode(art), b"caf\xe9.png"), "wb") as fh:  # Latin-1 bytes, not UTF-8
        fh.write((art / "good.png").read_bytes())
    (art / "gone.png").symlink_to(tmp_path / "deleted.png")
    (art / "notes.txt").symlink_to(tmp_path / "deleted.txt")  # not named as an image: nothing to report
    real_scandir = os.scandir

    def scandir(path):  # a folder without read permission (these tests may run as root, who reads anything)
        if os.fspath(path) == str(art / "locked"):
            raise PermissionError(13, "Permission denied", path)
        return real_scandir(path)

    monkeypatch.setattr(core.scan.os, "scandir", scandir)
    argv = _index_argv(art, tmp_path / "lib", tiny_model_file(tmp_path))
    assert main(argv) == 0
    assert main(["status", "--failures", "--library", str(tmp_path / "lib")]) == 0
    listed = sorted(line for line in capsys.readouterr().out.splitlines() if line.startswith("failed: "))
    root = art.resolve()
    assert listed == [f"failed: {root}/caf\\xe9.png: its path is not valid text in this file system's encoding; "
                      "rename it to index it",
                      f"failed: {root}/gone.png: broken link: its target is missing",
                      f"failed: {root}/locked: cannot read this folder: Permission denied"]
    assert main(argv) == 0  # recorded once, not again on every run
    assert "failed 0, unchanged 4" in capsys.readouterr().err
    monkeypatch.setattr(core.scan.os, "scandir", real_scandir)
    (art / "gone.png").unlink()
    os.rename(os.path.join(os.fsencode(art), b"caf\xe9.png"), art / "cafe.png")
    assert main(argv) == 0
    with Library.open(tmp_path / "lib") as lib:
        assert lib.failures() == [] and lib.status().indexed == 3


def test_a_failed_first_index_of_a_missing_folder_leaves_the_library_empty(tmp_path, capsys):
    code = main(_index_argv(tmp_path / "absent", tmp_path / "lib", tiny_model_file(tmp_path)))
    assert_known_error(code, capsys.readouterr().err, "absent: no such folder")
    with Library.open(tmp_path / "lib") as lib:
        assert lib.model_record() is None and lib.roots() == []


def test_negative_workers_is_a_one_line_error(tmp_path, capsys):
    make_tree(tmp_path / "art", styles=1, per_style=1)
    code = main(_index_argv(tmp_path / "art", tmp_path / "lib", "untrained-s", "--workers", "-1"))
    assert_known_error(code, capsys.readouterr().err, "--workers must be 0 or more (0 decodes in this process), got -1")


@pytest.fixture
def indexed(tmp_path, embedder) -> tuple[Path, list[Path]]:
    """A library of one small tree, indexed with the module's model: (library folder, image paths)."""
    paths = make_tree(tmp_path / "art", styles=2, per_style=2)
    with Library.open(tmp_path / "lib") as lib:
        run_index(lib, [tmp_path / "art"], embedder)
    return tmp_path / "lib", paths


@pytest.mark.parametrize("option", ["--folder", "--root"])
def test_search_filter_outside_the_library_names_its_folders(tmp_path, indexed, capsys, option):
    lib, paths = indexed
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    code = main(["search", str(paths[0]), "--library", str(lib), "--device", "cpu", option, str(elsewhere)])
    words = f"{elsewhere} is not in the library; its folders are: {(tmp_path / 'art').resolve()}"
    assert_known_error(code, capsys.readouterr().err, words)


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full, a device that is always full")
def test_search_into_a_full_stdout_is_a_one_line_error(indexed):
    lib, paths = indexed
    with open("/dev/full", "w") as full:
        run = subprocess.run([sys.executable, "-m", "app.launcher", "search", str(paths[0]), "--library", str(lib),
                              "--device", "cpu"], cwd=REPO, env=_subprocess_env(), stdout=full, stderr=subprocess.PIPE,
                             text=True, timeout=300)
    assert_known_error(run.returncode, run.stderr, "cannot write the results to standard output: No space left")


def _index_cmd(tree: Path, lib: Path, model: Path, batch: int = 2) -> list[str]:
    return [sys.executable, "-m", "app.launcher", "index", str(tree), "--library", str(lib), "--model", str(model),
            "--device", "cpu", "--workers", "0", "--batch-size", str(batch)]


def _wait_for_vectors(lib: Path, proc: subprocess.Popen, at_least: int, timeout: float = 60) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()
        if (lib / DB_NAME).exists():
            try:
                con = sqlite3.connect(lib / DB_NAME, timeout=5)
                n = con.execute("SELECT count(*) FROM vectors").fetchone()[0]
                con.close()
                if n >= at_least:
                    return n
            except sqlite3.OperationalError:
                pass
        time.sleep(0.02)
    raise AssertionError("indexing subprocess made no progress")


def _subprocess_env() -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO)
    env["OMP_NUM_THREADS"] = "1"  # slower, so the test can catch it mid-run
    return env


@pytest.mark.slow
def test_kill_9_mid_run_then_resume(tmp_path):
    total = 160
    for i in range(total):
        style_image(tmp_path / "art" / f"d{i % 4}" / f"{i:03d}.png", i % 16, i, size=(40, 32))
    model = tiny_model_file(tmp_path)
    lib = tmp_path / "lib"
    proc = subprocess.Popen(_index_cmd(tmp_path / "art", lib, model), cwd=REPO, env=_subprocess_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        _wait_for_vectors(lib, proc, at_least=10)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait()
    images, vectors, orphans = db_counts(lib)
    assert 10 <= vectors < total, "the run was not interrupted mid-way"
    assert images == vectors and orphans == 0  # rows and vectors commit together
    resumed = subprocess.run(_index_cmd(tmp_path / "art", lib, model, batch=16), cwd=REPO, env=_subprocess_env(),
                             capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    assert f"added {total - vectors}," in resumed.stderr and f"unchanged {vectors} " in resumed.stderr
    assert db_counts(lib) == (total, total, 0)


@pytest.mark.slow
def test_search_runs_while_another_process_indexes(tmp_path, embedder):
    make_tree(tmp_path / "first", styles=4, per_style=2)
    for i in range(120):  # styles the first tree does not use, so they never outrank its siblings
        style_image(tmp_path / "second" / f"{i:03d}.png", 100 + i % 12, i, size=(40, 32))
    model = tiny_model_file(tmp_path)
    lib_dir = tmp_path / "lib"
    subprocess.run(_index_cmd(tmp_path / "first", lib_dir, model, batch=16), cwd=REPO, env=_subprocess_env(),
                   check=True, capture_output=True)
    from core.embedder import Embedder
    from core.modelfile import load_model_file

    mine = Embedder(load_model_file(model), device="cpu")
    proc = subprocess.Popen(_index_cmd(tmp_path / "second", lib_dir, model), cwd=REPO, env=_subprocess_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        with Library.open(lib_dir) as lib:
            _wait_for_vectors(lib_dir, proc, at_least=12)
            with pytest.raises(LibraryBusyError):
                list(index_folders(lib, [], mine, workers=0))
            searcher = Searcher(lib, mine)
            query = QueryItem(str(tmp_path / "first" / "style01" / "v0.png"))
            seen = []
            while proc.poll() is None and len(seen) < 30:
                results = searcher.search([query])
                assert results and results[0].path.endswith("style01/v1.png")
                seen.append(lib.generation())
        assert proc.wait(timeout=300) == 0
        assert len(set(seen)) > 1, "searches did not overlap with committed batches"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
