"""Lazy thumbnails: a disk cache plus a small in-memory pixmap cache.

Views ask :class:`ThumbnailProvider` for a pixmap; on a miss they get ``None``
at once (the delegate draws a placeholder) and a job is queued. Jobs decode
with ``core.images`` in pool threads and hand back a ``QImage``; only the GUI
thread turns it into a ``QPixmap``. The queue is last-in-first-out and bounded,
so while the user scrolls fast through thousands of results, the tiles now on
screen load first and tiles scrolled past are dropped.

Disk thumbnails are keyed by path, size and mtime, so an edited file gets a new
one; they are written with :func:`core.files.atomic_write` so a crash never
leaves a half-written thumbnail that later reads as valid.
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections import OrderedDict
from pathlib import Path

from PIL import Image
from PySide6.QtCore import QObject, QRectF, QSize, Qt, QThreadPool, Signal
from PySide6.QtGui import QImage, QPainter, QPainterPath, QPixmap

from core.errors import ImageError
from core.files import atomic_write
from core.images import decode
from core.paths import cache_dir
from app.workers import Worker, guarded

log = logging.getLogger(__name__)

# Disk thumbnails are stored at this edge and scaled down for smaller tiles.
DISK_EDGE = 320
CORNER = 3.0
CACHE_LIMIT = 512 * 1024 * 1024


def thumbnail_dir() -> Path:
    return cache_dir() / "thumbnails"


def cache_key(path: str) -> str | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return hashlib.sha1(f"{os.path.abspath(path)}|{st.st_mtime_ns}|{st.st_size}|{DISK_EDGE}".encode()).hexdigest()


def pil_to_qimage(img: Image.Image) -> QImage:
    img = img.convert("RGB")
    data = img.tobytes("raw", "RGB")
    return QImage(data, img.width, img.height, img.width * 3, QImage.Format.Format_RGB888).copy()


def write_thumbnail(img: Image.Image, target: Path) -> None:
    """Not synced to disk: the cache is rebuilt on demand, and a sync per tile would slow scrolling."""
    target.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(target, fsync=False) as fh:
        img.save(fh, format="JPEG", quality=88)


def load_thumbnail(path: str, edge: int, folder: Path | None = None) -> QImage:
    """The thumbnail of ``path`` fitting ``edge`` x ``edge``; runs in a pool thread.

    Raises:
        ImageError: the file cannot be decoded (the tile shows a broken marker).
    """
    folder = folder or thumbnail_dir()
    key = cache_key(path)
    cached = folder / key[:2] / f"{key}.jpg" if key else None
    image = QImage(str(cached)) if cached is not None and cached.is_file() else QImage()
    if image.isNull():
        img, _ = decode(path, min_side=DISK_EDGE)
        img.thumbnail((DISK_EDGE, DISK_EDGE), Image.Resampling.LANCZOS)
        if cached is not None:
            try:
                write_thumbnail(img, cached)
            except OSError as exc:  # a full or read-only cache only costs speed
                log.info("thumbnail cache not written (%s)", exc)
        image = pil_to_qimage(img)
    if max(image.width(), image.height()) > edge:
        image = image.scaled(QSize(edge, edge), Qt.AspectRatioMode.KeepAspectRatio,
                             Qt.TransformationMode.SmoothTransformation)
    return rounded(image)


def rounded(image: QImage, radius: float = CORNER) -> QImage:
    """Round the corners here, in the worker, so painting a tile is a plain blit."""
    out = QImage(image.size(), QImage.Format.Format_ARGB32_Premultiplied)
    out.fill(Qt.GlobalColor.transparent)
    painter = QPainter(out)
    painter.setRenderHint(QPainter.RenderHint.Antialiasing)
    path = QPainterPath()
    path.addRoundedRect(QRectF(0, 0, image.width(), image.height()), radius, radius)
    painter.setClipPath(path)
    painter.drawImage(0, 0, image)
    painter.end()
    return out




def prune_cache(folder: Path | None = None, limit: int = CACHE_LIMIT) -> int:
    """Delete the least recently written thumbnails beyond ``limit`` bytes; returns files removed.

    Runs once at start-up in a pool thread. Thumbnails of edited or moved files
    are never read again, so without this the cache would only grow.
    """
    folder = folder or thumbnail_dir()
    entries = []
    for path in folder.glob("*/*.jpg"):
        try:
            st = path.stat()
        except OSError:
            continue
        entries.append((st.st_mtime, st.st_size, path))
    total = sum(size for _, size, _ in entries)
    removed = 0
    for _, size, path in sorted(entries):
        if total <= limit:
            break
        try:
            path.unlink()
        except OSError:
            continue
        total -= size
        removed += 1
    return removed


class ThumbnailProvider(QObject):
    """Pixmaps by path, loaded lazily; GUI-thread object.

    Signals:
        ready(str): a thumbnail for this path is now available (or failed for good).
    """

    ready = Signal(str)

    def __init__(self, edge: int = 160, parent: QObject | None = None, memory_items: int = 2000,
                 max_queue: int = 400, folder: Path | None = None) -> None:
        super().__init__(parent)
        self.edge = edge
        self.folder = folder
        self._memory: OrderedDict[str, QPixmap] = OrderedDict()
        self._memory_items = memory_items
        self._failed: dict[str, str] = {}
        self._queue: list[str] = []
        self._queued: set[str] = set()
        self._running: dict[str, Worker] = {}
        self._max_queue = max_queue
        self.pool = QThreadPool(self)
        self.pool.setMaxThreadCount(max(1, min(4, (os.cpu_count() or 2) - 1)))
        self.generation = 0

    def set_edge(self, edge: int) -> None:
        """New tile size: memory pixmaps are dropped (disk thumbnails stay)."""
        if edge != self.edge:
            self.edge = edge
            self.generation += 1
            self._memory.clear()

    def failure(self, path: str) -> str | None:
        return self._failed.get(path)

    def pixmap(self, path: str) -> QPixmap | None:
        """The cached pixmap, or None after queueing a load (the caller shows a placeholder)."""
        pix = self._memory.get(path)
        if pix is not None:
            self._memory.move_to_end(path)
            return pix
        if path not in self._failed:
            self.request(path)
        return None

    def request(self, path: str) -> None:
        if path in self._running:
            return
        if path in self._queued:
            self._queue.remove(path)
        self._queue.append(path)
        self._queued.add(path)
        if len(self._queue) > self._max_queue:
            dropped = self._queue.pop(0)
            self._queued.discard(dropped)
        self._pump()

    def pending(self) -> int:
        return len(self._queue) + len(self._running)

    def clear(self) -> None:
        self._memory.clear()
        self._failed.clear()
        self._queue.clear()
        self._queued.clear()

    def _pump(self) -> None:
        while self._queue and len(self._running) < self.pool.maxThreadCount():
            path = self._queue.pop()
            self._queued.discard(path)
            # Same priority as the GUI on purpose: a niced thread that holds the GIL when the OS
            # preempts it stalls the event loop (the probe showed 100-480 ms while scrolling).
            worker = Worker(load_thumbnail, path, self.edge, self.folder)
            generation = self.generation
            worker.signals.returned.connect(guarded(self, lambda img, p=path, g=generation: self._loaded(p, g, img)))
            worker.signals.errored.connect(guarded(self, lambda exc, p=path: self._errored(p, exc)))
            worker.signals.finished.connect(guarded(self, lambda p=path: self._finished(p)))
            self._running[path] = worker
            worker.start(self.pool)

    def _loaded(self, path: str, generation: int, image: QImage) -> None:
        if generation != self.generation:
            self.ready.emit(path)  # the view asks again, at the new size
            return
        self._memory[path] = QPixmap.fromImage(image)
        while len(self._memory) > self._memory_items:
            self._memory.popitem(last=False)
        self.ready.emit(path)

    def _errored(self, path: str, exc: Exception) -> None:
        self._failed[path] = exc.reason if isinstance(exc, ImageError) else str(exc)
        if not isinstance(exc, ImageError):
            log.warning("thumbnail for %s failed: %s", path, exc)
        self.ready.emit(path)

    def _finished(self, path: str) -> None:
        self._running.pop(path, None)
        self._pump()

    def wait_idle(self, msecs: int = 5000) -> bool:
        """Tests and the screenshot script: block until queued jobs are done."""
        return self.pool.waitForDone(msecs)
