"""File helpers every part shares: atomic writes, an inter-process lock, content hashes.

An atomic write goes to a temporary file in the target's folder and is moved
over the target with ``os.replace`` only once it is complete (and, unless the
caller opts out, synced), so a crash or a full disk leaves either the old file
or the new one, never half of each. The lock is an OS lock (``flock``;
``msvcrt.locking`` on Windows), so it dies with its process and ``kill -9``
never leaves it stuck.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import secrets
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None
    import msvcrt

TEMP_SUFFIX = ".tmp"


@contextlib.contextmanager
def atomic_path(path: Path | str, *, fsync: bool = True) -> Iterator[Path]:
    """A temporary path beside ``path`` that replaces ``path`` when the block ends without error.

    For writers that only take a file name (hnswlib's ``save_index``, numpy's
    ``open_memmap``, ``QImage.save``); code that can write to a file object
    should use :func:`atomic_write`. On an error the temporary file is removed
    and ``path`` is untouched.

    Args:
        path: the file to write.
        fsync: flush the new file to disk before the rename, so a power cut cannot
            leave an empty file under the final name. Caches that are cheap to
            rebuild and written in bulk (thumbnails) turn it off for speed.
    """
    path = Path(path)
    tmp = _new_temp(path)
    try:
        yield tmp
        if fsync:
            with open(tmp, "rb+") as fh:
                os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):  # e.g. still open on Windows: keep the original error
            tmp.unlink()
        raise


@contextlib.contextmanager
def atomic_write(path: Path | str, mode: str = "wb", *, encoding: str | None = None,
                 newline: str | None = None, fsync: bool = True) -> Iterator[IO]:
    """Open a temporary file beside ``path``; it replaces ``path`` when the block ends without error.

    Args:
        path: the file to write.
        mode: ``"wb"`` or ``"w"`` (text, UTF-8 unless ``encoding`` says otherwise).
        encoding: text encoding for a text ``mode``.
        newline: as for :func:`open`; the ``csv`` module wants ``""``.
        fsync: see :func:`atomic_path`.
    """
    if "b" not in mode and encoding is None:
        encoding = "utf-8"
    with atomic_path(path, fsync=False) as tmp, open(tmp, mode, encoding=encoding, newline=newline) as fh:
        yield fh
        if fsync:
            fh.flush()
            os.fsync(fh.fileno())


def write_bytes_atomic(path: Path | str, data: bytes) -> None:
    """``Path.write_bytes`` that never leaves a half-written file."""
    with atomic_write(path, "wb") as fh:
        fh.write(data)


def write_text_atomic(path: Path | str, text: str) -> None:
    """``Path.write_text`` (UTF-8) that never leaves a half-written file."""
    with atomic_write(path, "w") as fh:
        fh.write(text)


def _new_temp(path: Path) -> Path:
    """Create an empty, uniquely named ``.<name>.<random>.tmp`` beside ``path``.

    The ``.tmp`` ending lets a folder scan recognise litter left by a killed
    process. Unlike ``mkstemp`` (always mode 0600) the file gets the permissions
    a plain ``open`` would, so replacing a file does not make it private.
    """
    while True:
        tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}{TEMP_SUFFIX}")
        try:
            os.close(os.open(tmp, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666))
        except FileExistsError:
            continue
        return tmp


def content_hash(path: Path | str) -> str:
    """SHA-256 of the file's bytes: how a moved or renamed file is recognised, and how a cache checks its file."""
    with open(path, "rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


class LockBusy(Exception):
    """A non-blocking :class:`FileLock` could not be taken: another holder has it."""


class FileLock:
    """An inter-process lock on a file, held while the ``with`` block runs.

    Args:
        path: the lock file (created if missing; its content is never used).
        exclusive: one holder at a time; ``False`` for a shared (reader) lock. Windows has
            only exclusive locks, so a shared lock is exclusive there.
        blocking: wait for the lock; ``False`` raises :class:`LockBusy` at once instead.

    Raises:
        OSError: the lock file cannot be opened (read-only or missing folder).
        LockBusy: ``blocking=False`` and the lock is held elsewhere.
    """

    def __init__(self, path: Path | str, *, exclusive: bool = True, blocking: bool = True) -> None:
        self.path = Path(path)
        self.exclusive = exclusive
        self.blocking = blocking
        self._fh: IO[bytes] | None = None

    def __enter__(self) -> "FileLock":
        fh = open(self.path, "a+b")
        try:
            _lock(fh, self.exclusive, self.blocking)
        except BaseException:
            fh.close()
            raise
        self._fh = fh
        return self

    def __exit__(self, *exc: object) -> None:
        fh, self._fh = self._fh, None
        if fh is not None:
            try:
                _unlock(fh)
            finally:
                fh.close()


# msvcrt.locking reports a held lock as EACCES (non-blocking) or EDEADLOCK (LK_LOCK gave up after 10 s).
_WINDOWS_BUSY = {errno.EACCES, getattr(errno, "EDEADLOCK", errno.EDEADLK)}


def _lock(fh: IO[bytes], exclusive: bool, blocking: bool) -> None:
    if fcntl is None:
        fh.seek(0)
        while True:
            try:
                msvcrt.locking(fh.fileno(), msvcrt.LK_LOCK if blocking else msvcrt.LK_NBLCK, 1)
                return
            except OSError as exc:
                if exc.errno not in _WINDOWS_BUSY:
                    raise
                if not blocking:
                    raise LockBusy(str(fh.name)) from exc
            time.sleep(0.1)
    flags = fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH
    if not blocking:
        flags |= fcntl.LOCK_NB
    try:
        fcntl.flock(fh.fileno(), flags)
    except BlockingIOError as exc:
        raise LockBusy(str(fh.name)) from exc


def _unlock(fh: IO[bytes]) -> None:
    if fcntl is None:
        fh.seek(0)
        msvcrt.locking(fh.fileno(), msvcrt.LK_UNLCK, 1)
        return
    fcntl.flock(fh.fileno(), fcntl.LOCK_UN)
