"""core.files: atomic writes never leave half a file, locks exclude other holders, hashes are plain SHA-256."""

from __future__ import annotations

import csv
import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

from core.files import (FileLock, LockBusy, atomic_path, atomic_write, content_hash, write_bytes_atomic,
                        write_text_atomic)

ROOT = Path(__file__).resolve().parent.parent
POSIX_ONLY = pytest.mark.skipif(os.name != "posix", reason="Windows has no shared locks or POSIX modes")

# A second process that holds the lock until it reads a line (or is killed).
HOLDER = """
import sys
from core.files import FileLock
with FileLock(sys.argv[1]):
    print("held", flush=True)
    sys.stdin.readline()
"""


class Boom(Exception):
    pass


def test_atomic_write_replaces_the_file_and_leaves_no_temp_file(tmp_path):
    target = tmp_path / "data.bin"
    target.write_bytes(b"old")
    with atomic_write(target) as fh:
        fh.write(b"new")
        assert target.read_bytes() == b"old"  # nothing is visible before the block ends
    assert target.read_bytes() == b"new"
    assert list(tmp_path.iterdir()) == [target]


@pytest.mark.parametrize("fsync", [True, False])
def test_an_error_mid_write_keeps_the_old_file_and_removes_the_temp_file(tmp_path, fsync):
    target = tmp_path / "data.bin"
    target.write_bytes(b"old")
    with pytest.raises(Boom):
        with atomic_write(target, fsync=fsync) as fh:
            fh.write(b"half of the new")
            raise Boom
    assert target.read_bytes() == b"old"
    assert list(tmp_path.iterdir()) == [target]


def test_atomic_path_hands_a_writer_a_temp_name_and_cleans_up_on_error(tmp_path):
    target = tmp_path / "graph.hnsw"
    with pytest.raises(Boom):
        with atomic_path(target) as tmp:
            assert tmp.parent == tmp_path and tmp.name.endswith(".tmp") and tmp.name != target.name
            tmp.write_bytes(b"partial")
            raise Boom
    assert not target.exists() and not list(tmp_path.iterdir())
    with atomic_path(target) as tmp:
        tmp.write_bytes(b"complete")
    assert target.read_bytes() == b"complete" and list(tmp_path.iterdir()) == [target]


def test_text_writes_are_utf8_and_newline_can_be_left_to_csv(tmp_path):
    write_text_atomic(tmp_path / "a.txt", "café\n")
    assert (tmp_path / "a.txt").read_bytes() == "café\n".encode().replace(b"\n", os.linesep.encode())
    with atomic_write(tmp_path / "rows.csv", "w", newline="") as fh:
        csv.writer(fh).writerow(["a", "b"])
    assert (tmp_path / "rows.csv").read_bytes() == b"a,b\r\n"
    write_bytes_atomic(tmp_path / "b.bin", b"\x00\xff")
    assert (tmp_path / "b.bin").read_bytes() == b"\x00\xff"


@POSIX_ONLY
def test_a_written_file_gets_the_usual_permissions_not_mkstemps_private_ones(tmp_path):
    umask = os.umask(0o022)
    try:
        write_bytes_atomic(tmp_path / "model.safetensors", b"x")
    finally:
        os.umask(umask)
    assert (tmp_path / "model.safetensors").stat().st_mode & 0o777 == 0o644


def test_content_hash_is_the_sha256_of_the_bytes(tmp_path):
    data = os.urandom(3 * 1024 * 1024 + 17)  # several read buffers
    (tmp_path / "big").write_bytes(data)
    (tmp_path / "empty").write_bytes(b"")
    assert content_hash(tmp_path / "big") == hashlib.sha256(data).hexdigest()
    assert content_hash(str(tmp_path / "empty")) == hashlib.sha256(b"").hexdigest()


def test_a_held_lock_makes_a_non_blocking_attempt_raise_lock_busy(tmp_path):
    lock = tmp_path / "x.lock"
    with FileLock(lock):
        with pytest.raises(LockBusy):
            with FileLock(lock, blocking=False):
                pass
    with FileLock(lock, blocking=False):  # free again once the first holder leaves
        pass


@POSIX_ONLY
def test_readers_share_a_lock_and_a_writer_excludes_them(tmp_path):
    lock = tmp_path / "x.lock"
    with FileLock(lock, exclusive=False), FileLock(lock, exclusive=False, blocking=False):
        with pytest.raises(LockBusy):
            with FileLock(lock, blocking=False):
                pass
    with FileLock(lock):
        with pytest.raises(LockBusy):
            with FileLock(lock, exclusive=False, blocking=False):
                pass


@pytest.mark.parametrize("ending", ["release", "kill"])
def test_a_lock_held_by_another_process_is_busy_until_it_releases_or_dies(tmp_path, ending):
    lock = tmp_path / "x.lock"
    with subprocess.Popen([sys.executable, "-c", HOLDER, str(lock)], cwd=ROOT, text=True,
                          stdin=subprocess.PIPE, stdout=subprocess.PIPE) as holder:
        try:
            assert holder.stdout.readline().strip() == "held"
            with pytest.raises(LockBusy):
                with FileLock(lock, blocking=False):
                    pass
            if ending == "release":
                holder.stdin.write("done\n")
                holder.stdin.flush()
            else:
                holder.kill()  # kill -9 must never leave the lock stuck
            holder.wait(timeout=30)
            with FileLock(lock, blocking=False):
                pass
        finally:
            if holder.poll() is None:
                holder.kill()
