"""Finding the image files under a folder, cheaply enough to run on every re-index.

A file counts as an image when its extension says so (a broken ``.jpg`` is then
reported as a failure rather than silently ignored) or when its first bytes say
so (an image saved without or with the wrong extension). Hidden files and
folders are skipped; a folder reached twice through symlinks is walked once.
"""

from __future__ import annotations

import logging
import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".jpe", ".jfif", ".png", ".apng", ".webp", ".gif", ".bmp",
                              ".dib", ".tif", ".tiff", ".psd"})
SNIFF_BYTES = 16
_HIDDEN_ATTRIBUTE = 0x2  # FILE_ATTRIBUTE_HIDDEN on Windows


@dataclass(frozen=True)
class FileEntry:
    relpath: str
    size: int
    mtime_ns: int


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


def is_image(path: str, name: str) -> bool:
    if os.path.splitext(name)[1].lower() in IMAGE_EXTENSIONS:
        return True
    try:
        with open(path, "rb") as fh:
            return sniff(fh.read(SNIFF_BYTES)) is not None
    except OSError:
        return False


def _hidden(entry: os.DirEntry) -> bool:
    if entry.name.startswith("."):
        return True
    attrs = getattr(entry.stat(follow_symlinks=False), "st_file_attributes", 0)
    return bool(attrs & _HIDDEN_ATTRIBUTE)


def scan(root: Path | str) -> Iterator[FileEntry]:
    """Every image file under ``root`` with its size and mtime, relative paths in POSIX form.

    Unreadable folders and names that cannot be stored as text are logged and skipped.
    """
    root = os.fspath(root)
    seen: set[tuple[int, int]] = set()
    stack = [root]
    while stack:
        folder = stack.pop()
        try:
            st = os.stat(folder)
        except OSError as exc:
            log.warning("cannot read folder %s: %s", folder, exc)
            continue
        if (st.st_dev, st.st_ino) in seen:
            continue
        seen.add((st.st_dev, st.st_ino))
        try:
            entries = sorted(os.scandir(folder), key=lambda e: e.name)
        except OSError as exc:
            log.warning("cannot list folder %s: %s", folder, exc)
            continue
        for entry in entries:
            try:
                if _hidden(entry):
                    continue
                if entry.is_dir(follow_symlinks=True):
                    stack.append(entry.path)
                    continue
                if not entry.is_file(follow_symlinks=True) or not is_image(entry.path, entry.name):
                    continue
                st = entry.stat(follow_symlinks=True)
            except OSError as exc:
                log.warning("cannot read %s: %s", entry.path, exc)
                continue
            rel = Path(os.path.relpath(entry.path, root)).as_posix()
            try:
                rel.encode("utf-8")
            except UnicodeEncodeError:
                log.warning("skipping %r: its name is not valid text in this file system's encoding", entry.path)
                continue
            if stat.S_ISREG(st.st_mode):
                yield FileEntry(rel, st.st_size, st.st_mtime_ns)
