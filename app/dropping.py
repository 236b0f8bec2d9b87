"""What a drop, a paste or a command line holds: local images, folders, raw image data, or web links.

Web (http/https) links are refused, never downloaded: the app works offline
and must not fetch anything on a user's behalf. Raw image data (a browser's
dragged picture, a screenshot on the clipboard) is fine: it is written to a
file in the user's data folder, because ``core`` embeds files, and moodboards
that refer to it must still work after a restart.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from PIL import Image
from PySide6.QtCore import QMimeData
from PySide6.QtGui import QImage

from core.files import atomic_path
from core.paths import pasted_dir

WEB_SCHEMES = ("http", "https", "ftp")


@lru_cache(maxsize=1)
def image_suffixes() -> frozenset[str]:
    """File name endings Pillow can open. The first call imports every Pillow plugin
    (a few hundred ms), so the engine warms this up off the GUI thread at start."""
    return frozenset(ext.lower() for ext in Image.registered_extensions())


@dataclass
class DropContent:
    files: list[str] = field(default_factory=list)
    folders: list[str] = field(default_factory=list)
    images: list[QImage] = field(default_factory=list)
    web: list[str] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return not (self.files or self.folders or self.images)

    def message(self) -> str | None:
        """One line for the user about what was refused, or None."""
        parts = []
        if self.web and not self.images:
            parts.append("Web links are not downloaded (the app works offline). "
                         "Save the image first, then drop the file.")
        if self.ignored:
            parts.append(f"Not an image: {_names(self.ignored)}.")
        if self.missing:
            parts.append(f"Not found: {_names(self.missing)}.")
        return " ".join(parts) or None


def _names(paths: list[str]) -> str:
    """The first few file names and how many more: a message stays one line however many files."""
    shown = ", ".join(os.path.basename(p) for p in paths[:3])
    return shown + (f" and {len(paths) - 3} more" if len(paths) > 3 else "")


def _sort_local(path: str, out: DropContent) -> None:
    if os.path.isdir(path):
        out.folders.append(path)
    elif not os.path.exists(path):
        out.missing.append(path)
    elif Path(path).suffix.lower() in image_suffixes():
        out.files.append(path)
    else:
        out.ignored.append(path)


def read_paths(paths: Iterable[str]) -> DropContent:
    """Sort paths named on a command line ("Open with", a second ``aladin``) as a drop of them is sorted."""
    out = DropContent()
    for path in paths:
        _sort_local(path, out)
    return out


def read_mime(mime: QMimeData) -> DropContent:
    """Sort a drop's content; touches no file contents (safe on the GUI thread)."""
    out = DropContent()
    for url in mime.urls() if mime.hasUrls() else []:
        if url.isLocalFile():
            _sort_local(url.toLocalFile(), out)
        elif url.scheme().lower() in WEB_SCHEMES:
            out.web.append(url.toString())
        else:
            out.ignored.append(url.toString())
    if not out.files and not out.folders and mime.hasImage():
        image = mime.imageData()
        if isinstance(image, QImage) and not image.isNull():
            out.images.append(image)
    return out


def save_pasted(image: QImage, folder: Path | None = None) -> str:
    """Write pasted image data to a PNG named by its content; runs in a worker.

    The same picture pasted twice maps to the same file, so it is not added twice.
    """
    folder = folder or pasted_dir()
    folder.mkdir(parents=True, exist_ok=True)
    image = image.convertToFormat(QImage.Format.Format_RGBA8888)
    digest = hashlib.sha1(bytes(image.constBits())).hexdigest()[:16]
    target = folder / f"pasted-{digest}.png"
    if not target.exists():
        with atomic_path(target) as tmp:
            if not image.save(str(tmp), "PNG"):
                raise OSError(f"could not write {tmp}")
    return str(target)
