"""Fills the library page: reads the chosen folder's images and the folder tree through the engine.

Every read runs in a worker (:meth:`app.engine.Engine.library_job`); answers
carry the number of the request they answer and only the newest is shown, so a
slow read of all 100,000 images never overwrites the answer to a later filter.
While indexing adds images the page is read again at most every
``REFRESH_EVERY_MS``, or ``REFRESH_COST`` times as long as the last read took (a read of
100,000 images takes about a second, which indexing would rather spend embedding),
and not at all while it is hidden (it is read when it shows).
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence

from PySide6.QtCore import QObject, QTimer

from app.engine import Engine
from app.library_model import LibraryModel, LibraryPage, library_page
from app.library_view import FolderNode, LibraryPane, folder_nodes

REFRESH_EVERY_MS = 3000
REFRESH_COST = 10


def read_folders(library) -> list[FolderNode]:
    """The folder tree with counts; roots whose folder cannot be seen now are offline (as ``RootStatus.exists``)."""
    roots = [root.path for root in library.roots()]
    return folder_nodes(roots, library.folder_counts(), {r for r in roots if not os.path.isdir(r)})


def read_page(library, query: tuple[str | None, str, str], shown: Sequence) -> LibraryPage | None:
    """The images for ``query`` (folder, sort, name filter); None when they are the ``shown`` ones, so a
    refresh that finds nothing new leaves the grid (its scroll and selection) alone."""
    entries = library.browse(*query)
    return None if entries == shown else library_page(entries)


class LibraryBrowser(QObject):
    """Keeps the library page's folder tree and grid in step with the store.

    Attributes:
        stale: something changed while the page was hidden; it is read when it shows.
    """

    def __init__(self, engine: Engine, pane: LibraryPane, model: LibraryModel, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.engine = engine
        self.pane = pane
        self.model = model
        self.stale = True
        self._asked = {"images": 0, "folders": 0}
        self.throttle = QTimer(self, singleShot=True, interval=REFRESH_EVERY_MS)
        self.throttle.timeout.connect(self.refresh)
        engine.library_ready.connect(self.refresh)
        engine.library_changed.connect(self.refresh)
        engine.index_progress.connect(self._indexing)
        pane.query_changed.connect(self.read_images)
        pane.shown.connect(lambda: self.refresh() if self.stale else None)

    def refresh(self) -> None:
        """Read the folders and images again (later, when the page is hidden now)."""
        if not self.pane.isVisible():
            self.stale = True
            return
        self.stale = False
        self._ask("folders", read_folders, returned=self.pane.folders.set_nodes)
        self.read_images()

    def read_images(self) -> None:
        self._ask("images", read_page, self.pane.query(), self.model.entries(), returned=self._images_read)

    def _ask(self, what: str, job, *args, returned) -> None:
        self._asked[what] += 1
        serial, started = self._asked[what], time.monotonic()

        def answered(answer) -> None:
            self.throttle.setInterval(max(REFRESH_EVERY_MS, int(REFRESH_COST * 1000 * (time.monotonic() - started))))
            if serial == self._asked[what]:
                returned(answer)
        self.engine.library_job(job, *args, returned=answered)

    def _images_read(self, page: LibraryPage | None) -> None:
        if page is not None:
            self.model.set_page(page)
        self.pane.set_count(self.model.rowCount())

    def _indexing(self, progress) -> None:
        if progress.phase == "embed" and not self.throttle.isActive():
            self.throttle.start()
