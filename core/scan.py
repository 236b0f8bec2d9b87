"""Finding the image files under a folder, cheaply enough to run on every re-index.

A file counts as an image when its extension says so (a broken ``.jpg`` is then
reported as a failure rather than silently ignored) or when its first bytes say
so (an image saved without or with the wrong extension). Hidden files and
folders are skipped; a folder reached twice through symlinks is walked once.
What the scan finds but cannot use (a folder it may not list, an image-named
link to nothing, a name that is not valid text) comes back as an entry with an
``error``, so the library lists it among its failures rather than only in a log.
"""

from __future__ import annotations

import logging
import os
import stat
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger(__name__)

IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".jpe", ".jfif", ".png", ".apng", ".webp", ".gif", ".bmp",
                              ".dib", ".tif", ".tiff", ".psd"})
SNIFF_BYTES = 16
_HIDDEN_ATTRIBUTE = 0x2  # FILE_ATTRIBUTE_HIDDEN on Windows


@dataclass(frozen=True)
class FileEntry:
    """A file found under a root, or with ``error``, something there that cannot be indexed and why.

    A name that is not valid text has a ``relpath`` with its undecodable bytes written as ``\\xNN``.
    """

    relpath: str
    size: int
    mtime_ns: int
    error: str | None = None


def sniff(head: bytes) -> str | None:
    """The image format the first bytes announce, or None."""
    if head.startswith(b"\xff\xd8\xff"):
        return "JPEG"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "PNG"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "WEBP"
    if head[:6] in (b"GIF87a", b"GIF89a"):
        return "GIF"
    if head[:2] == b"BM" and len(head) >= 14:
        return "BMP"
    if head[:4] in (b"II*\x00", b"MM\x00*"):
        return "TIFF"
    if head[:4] == b"8BPS":
        return "PSD"
    return None


def named_as_image(name: str) -> bool:
    return os.path.splitext(name)[1].lower() in IMAGE_EXTENSIONS


def is_image(path: str, name: str) -> bool:
    if named_as_image(name):
        return True
    try:
        with open(path, "rb") as fh:
            return sniff(fh.read(SNIFF_BYTES)) is not None
    except OSError:
        return False


def _hidden(entry: os.DirEntry) -> bool:
    if entry.name.startswith("."):
        return True
    if os.name != "nt":
        return False  # only Windows has a hidden attribute; elsewhere asking for it costs a stat per entry
    attrs = getattr(entry.stat(follow_symlinks=False), "st_file_attributes", 0)
    return bool(attrs & _HIDDEN_ATTRIBUTE)


@dataclass
class Folder:
    """One folder of a :func:`walk`: its entries sorted by name, or the error that kept them unread.

    ``prefix`` is its path relative to the root in POSIX form, ending in "/" ("" for the root).
    """

    path: str
    prefix: str
    entries: list[os.DirEntry] = field(default_factory=list)
    error: OSError | None = None
    subfolders: list[tuple[str, str]] = field(default_factory=list)

    def descend(self, entry: os.DirEntry) -> None:
        """Walk into this entry's folder too (the caller decides which entries are folders to walk)."""
        self.subfolders.append((entry.path, self.prefix + entry.name + "/"))


def walk(root: str, stop: Callable[[], bool] = lambda: False) -> Iterator[Folder]:
    """Every folder under ``root`` that its caller descends into, once each: folders reached through
    links are followed, and one reached again (a link loop) is not walked twice. The indexer's scan
    and the watcher's polling signature walk the same folders this way."""
    seen: set[tuple[int, int]] = set()
    stack = [(root, "")]
    while stack and not stop():
        path, prefix = stack.pop()
        folder = Folder(path, prefix)
        try:
            st = os.stat(path)
            if (st.st_dev, st.st_ino) in seen:
                continue
            seen.add((st.st_dev, st.st_ino))
            folder.entries = sorted(os.scandir(path), key=lambda e: e.name)
        except OSError as exc:
            folder.error = exc
        yield folder
        stack.extend(folder.subfolders)


def scan(root: Path | str) -> Iterator[FileEntry]:
    """Every image file under ``root`` with its size and mtime, relative paths in POSIX form.

    Unreadable folders, links to nothing and names that cannot be stored as text are
    entries with an ``error``; so is an image-named entry that cannot be examined.
    A folder's relative path is worked out once for all its files: a re-index of an
    unchanged library is mostly this walk (bench/library_scale.py).
    """
    for folder in walk(os.fspath(root)):
        prefix = folder.prefix
        if folder.error is not None:
            yield _entry(prefix.rstrip("/") or ".", _lstat(folder.path),
                         f"cannot read this folder: {folder.error.strerror}")
            continue
        for entry in folder.entries:
            rel = prefix + entry.name
            try:
                if _hidden(entry):
                    continue
                if entry.is_dir(follow_symlinks=True):
                    folder.descend(entry)
                    continue
                if entry.is_symlink() and not os.path.exists(entry.path):
                    if named_as_image(entry.name):
                        yield _entry(rel, _lstat(entry.path), "broken link: its target is missing")
                    continue
                if not entry.is_file(follow_symlinks=True) or not is_image(entry.path, entry.name):
                    continue
                st = entry.stat(follow_symlinks=True)
            except OSError as exc:
                if named_as_image(entry.name):
                    yield _entry(rel, _lstat(entry.path), f"cannot read it: {exc.strerror}")
                else:
                    log.warning("cannot read %s: %s", entry.path, exc)
                continue
            if stat.S_ISREG(st.st_mode):
                yield _entry(rel, st)


def _entry(rel: str, st: os.stat_result | None, error: str | None = None) -> FileEntry:
    """The entry for the POSIX relative path ``rel``; an invalid-text path gets a printable one and an error."""
    try:
        rel.encode("utf-8")
    except UnicodeEncodeError:
        rel = os.fsencode(rel).decode("utf-8", "backslashreplace")
        error = error or "its path is not valid text in this file system's encoding; rename it to index it"
    return FileEntry(rel, st.st_size if st else 0, st.st_mtime_ns if st else 0, error)


def _lstat(path: str) -> os.stat_result | None:
    """The entry's own size and mtime, for an entry whose target cannot be read; None if even that fails."""
    try:
        return os.stat(path, follow_symlinks=False)
    except OSError:
        return None
