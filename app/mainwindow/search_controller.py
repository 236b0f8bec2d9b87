"""When to search, and which answer to show.

Edits come in bursts (several files dropped, a spin box held down), so a
search is scheduled and runs ``SEARCH_DELAY_MS`` after the last edit. Only the
answer to the newest request is shown: the engine may still deliver an older
one that was already running.
"""

from __future__ import annotations

import time

from PySide6.QtCore import QObject, QTimer, Signal

from app.engine import Engine, SearchRequest
from app.mainwindow.widgets import FilterBar
from app.moodboard_model import MoodboardModel
from app.results_model import ResultsModel

SEARCH_DELAY_MS = 60  # coalesces a burst of edits (several files dropped) into one search
REFILL_AFTER_S = 3.0  # while indexing, a grid that is not full yet is searched again this often


class SearchController(QObject):
    """Turns moodboard and filter edits into engine searches and keeps the latest answer's state.

    Attributes:
        last_request: the request whose answer will be shown; None when no search should answer.
        last_error: why the grid is empty, shown on the empty page; None when it is not.

    Signals:
        answered(list): the results to show (empty when the search failed or could not run).
        state_changed(): a search was scheduled or started; the window shows "Searching…".
    """

    answered = Signal(list)
    state_changed = Signal()

    def __init__(self, engine: Engine, moodboard: MoodboardModel, results: ResultsModel, filters: FilterBar,
                 parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.engine = engine
        self.moodboard = moodboard
        self.results = results
        self.filters = filters
        self.last_request: SearchRequest | None = None
        self.last_error: str | None = None
        self._searched_at = 0.0
        self.timer = QTimer(self, singleShot=True, interval=SEARCH_DELAY_MS)
        self.timer.timeout.connect(self.search_now)
        engine.results.connect(self._answered)
        engine.search_failed.connect(self._failed)

    @property
    def busy(self) -> bool:
        """A search is scheduled or running."""
        return self.engine.searching or self.timer.isActive()

    def current_request(self) -> SearchRequest:
        return SearchRequest(entries=self.moodboard.entries(), filters=self.filters.filters())

    def schedule(self) -> None:
        self.timer.start()
        self.state_changed.emit()

    def search_now(self) -> None:
        request = self.current_request()
        if not any(not e.negative for e in request.entries):
            self.last_request = None  # an answer still in flight is now stale
            self.last_error = "Add at least one positive (⊕) image." if request.entries else None
            self.answered.emit([])
            return
        if not self.engine.ready:
            self.state_changed.emit()
            return  # searched again when the library and model are ready
        self.last_request = request
        self._searched_at = time.monotonic()
        self.engine.search(request)
        self.state_changed.emit()

    def refill_while_indexing(self, progress) -> None:
        """New images count at once: a grid that is not full yet is searched again while indexing embeds."""
        if (progress.phase == "embed" and self.moodboard.rowCount()
                and self.results.rowCount() < self.filters.filters().k
                and time.monotonic() - self._searched_at > REFILL_AFTER_S and not self.engine.searching):
            self.schedule()

    def _answered(self, request: SearchRequest, results: list) -> None:
        if request is not self.last_request:
            return
        self.last_error = None
        self.answered.emit(results)

    def _failed(self, message: str) -> None:
        if self.last_request is None:
            return
        if self.engine.indexing and not self.engine.has_searcher:
            message = "Indexing has just started; results appear here as images are indexed."
        self.last_error = message
        self.answered.emit([])
