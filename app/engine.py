"""The GUI's handle on the engine: one QObject that owns the library, the model and
the searcher, and runs every ``core`` job in a worker thread.

Nothing here computes anything itself; it sequences ``core`` calls and turns
their results and known errors (``core.errors.AladinError``) into signals.
Searches are "latest wins": while one runs, newer requests replace each other
and only the newest is started next, so typing-speed edits to a moodboard never
pile up work.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject, QThreadPool, Signal

from core.errors import AladinError, ModelMismatchError, NoTrainedModelError
from core.query import QueryItem, SearchFilters

from app.index_process import index_in_process
from app.moodboard_model import MoodboardEntry
from app.workers import Worker, guarded, run_in_thread

log = logging.getLogger(__name__)


@dataclass
class SearchRequest:
    entries: list[MoodboardEntry]
    filters: SearchFilters


@dataclass
class ModelState:
    """What the status bar and settings say about the model in use."""

    spec: str
    name: str
    trained: bool
    device: str
    device_label: str = ""


def describe_error(exc: BaseException) -> str:
    """Known errors are shown as they are; anything else is a bug, logged with its traceback."""
    if isinstance(exc, AladinError):
        return str(exc)
    log.error("unexpected error", exc_info=(type(exc), exc, exc.__traceback__))
    return f"Unexpected error: {exc!r} (details in the log)"


def _open_library(folder: str | None):
    from core.library import Library

    # Import the engine's heavier modules here, off the GUI thread, so that the
    # GUI's later ``from core.search import ...`` is a dictionary lookup.
    import core.indexer  # noqa: F401
    import core.search  # noqa: F401
    from app.dropping import image_suffixes

    image_suffixes()
    return Library.open(folder)


def _load_model(spec: str, device: str):
    from core.embedder import Embedder
    from core.modelfile import load_model

    model = load_model(spec or None)
    embedder = Embedder(model, device=device)
    return embedder, device_label(embedder.device)


def device_label(device) -> str:
    """'CPU', or the GPU's name as the driver reports it."""
    if device.type != "cuda":
        return "CPU"
    import torch

    return torch.cuda.get_device_name(device)


def _index_in_thread(library, folders, embedder, **options):
    """``core.indexer.index_folders`` in this process: the tests' quicker path (no process start)."""
    from core.indexer import index_folders

    return (yield from index_folders(library, folders, embedder, **options))


def _run_search(searcher, request: SearchRequest):
    filters = request.filters
    positive = [e for e in request.entries if not e.negative]
    if len(request.entries) == 1 and positive and positive[0].image_id is not None:
        # "More like this" on a result: the stored vector answers without decoding anything.
        return searcher.more_like(positive[0].image_id, filters)
    items = [QueryItem(path=e.path, weight=e.weight, negative=e.negative) for e in request.entries]
    return searcher.search(items, filters)


class Engine(QObject):
    """Signals:
        library_ready(): the library is open; roots and counts can be read.
        library_failed(str): the library could not be opened.
        model_ready(object): a :class:`ModelState` for the model now in use.
        model_failed(str, bool): message, and whether the cause is "no trained model installed".
        index_started(list): folders being indexed.
        index_progress(object): a ``core.indexer.IndexProgress``.
        index_finished(object, bool): the ``IndexSummary`` (or None) and whether it was cancelled.
        index_failed(str): indexing stopped with an error ("" when model_mismatch explains it).
        results(object, list): the request answered and its ``SearchResult`` list.
        search_failed(str): the newest search failed.
        library_changed(): roots, images or moodboards changed.
        model_mismatch(str): the library was indexed with another model than the one loaded.
        failed(str): a library operation (removing a folder) failed.
    """

    library_ready = Signal()
    library_failed = Signal(str)
    model_ready = Signal(object)
    model_failed = Signal(str, bool)
    index_started = Signal(list)
    index_progress = Signal(object)
    index_finished = Signal(object, bool)
    index_failed = Signal(str)
    results = Signal(object, list)
    search_failed = Signal(str)
    library_changed = Signal()
    model_mismatch = Signal(str)
    failed = Signal(str)

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.library = None
        self.embedder = None
        self.searcher = None
        self.model_state: ModelState | None = None
        self.model_error: str | None = None
        self.pool = QThreadPool(self)
        self.pool.setMaxThreadCount(4)
        # One indexing run at a time, never queued behind searches.
        self.index_pool = QThreadPool(self)
        self.index_pool.setMaxThreadCount(1)
        self._index_worker: Worker | None = None
        self._index_cancel = threading.Event()
        self._queued_folders: list[str] = []
        self._search_worker: Worker | None = None
        self._pending: SearchRequest | None = None
        self._model_worker: Worker | None = None
        self._model_request: tuple[str, str] | None = None
        self.model_request: tuple[str, str] | None = None
        self.last_progress = None
        self.searcher_error: str | None = None
        # Extra keyword arguments for ``core.indexer.index_folders`` (tests pass workers=0).
        self.index_options: dict[str, Any] = {}
        # Index in a child process (see app/index_process.py); tests index in a thread for speed.
        self.index_in_process = True

    # -- library ------------------------------------------------------------------
    def open_library(self, folder: str | None = None) -> None:
        run_in_thread(_open_library, folder, pool=self.pool, context=self,
                      returned=self._library_opened, errored=lambda e: self.library_failed.emit(describe_error(e)))

    def _library_opened(self, library) -> None:
        if self.library is not None:
            self.library.close()
        self.library = library
        self._make_searcher()
        self.library_ready.emit()

    def roots(self) -> list[str]:
        return [r.path for r in self.library.roots()] if self.library is not None else []

    # -- model ----------------------------------------------------------------------
    def load_model(self, spec: str, device: str) -> None:
        """Load (or switch) the model; requests made while one loads replace each other."""
        self._model_request = (spec, device)
        if self._model_worker is None:
            self._start_model_load()

    def _start_model_load(self) -> None:
        spec, device = self._model_request
        self._model_request = None
        self._model_worker = run_in_thread(
            _load_model, spec, device, pool=self.pool, context=self,
            returned=lambda loaded, s=spec, d=device: self._model_loaded(s, d, *loaded),
            errored=self._model_load_failed, finished=self._model_load_finished)

    def _model_loaded(self, spec: str, device: str, embedder, label: str) -> None:
        self.model_request = (spec, device)  # what an indexing process loads for itself
        self.embedder = embedder
        self.model_error = None
        info = embedder.model.info
        self.model_state = ModelState(spec=spec, name=info.name, trained=bool(info.trained),
                                      device=str(embedder.device), device_label=label)
        self.searcher = None
        self.model_ready.emit(self.model_state)
        self._make_searcher()  # after model_ready: a mismatch message must be the last word

    def _model_load_failed(self, exc: BaseException) -> None:
        self.embedder = None
        self.searcher = None
        self.model_state = None
        self.model_error = describe_error(exc)
        self.model_failed.emit(self.model_error, isinstance(exc, NoTrainedModelError))

    def _model_load_finished(self) -> None:
        self._model_worker = None
        if self._model_request is not None:
            self._start_model_load()

    def _make_searcher(self) -> None:
        """A searcher for the library with the loaded model; an empty library has none yet."""
        self.searcher = None
        self.searcher_error = None
        if self.library is None or self.embedder is None:
            return
        from core.search import Searcher

        try:
            self.searcher = Searcher(self.library, self.embedder)
        except ModelMismatchError as exc:
            self.searcher_error = str(exc)
            self.model_mismatch.emit(str(exc))
        except AladinError as exc:  # an empty library: nothing to search until a folder is indexed
            self.searcher_error = str(exc)

    @property
    def ready(self) -> bool:
        return self.library is not None and self.embedder is not None

    # -- indexing -----------------------------------------------------------------------
    @property
    def indexing(self) -> bool:
        return self._index_worker is not None

    def index(self, folders: list[str] | None = None, switch_model: bool = False) -> bool:
        """Index ``folders`` (added as roots), or rescan every root when None.

        While a run is going, new folders wait and start when it ends. Returns
        False when there is no library or model to index with.
        """
        if not self.ready:
            return False
        folders = [str(Path(f)) for f in (folders if folders is not None else self.roots())]
        if self.indexing:
            self._queued_folders += [f for f in folders if f not in self._queued_folders]
            return True
        self._index_cancel.clear()
        self.last_progress = None
        options = {**self.index_options, "switch_model": switch_model}
        if self.index_in_process:
            spec, device = self.model_request
            worker = Worker(index_in_process, str(self.library.folder), folders, spec, device,
                            self._index_cancel.is_set, options)
        else:
            worker = Worker(_index_in_thread, self.library, [Path(f) for f in folders], self.embedder,
                            cancel=self._index_cancel.is_set, **options)
        for signal, slot in ((worker.signals.progress, self._index_progress),
                             (worker.signals.returned, self._index_returned),
                             (worker.signals.errored, self._index_errored),
                             (worker.signals.finished, self._index_done)):
            signal.connect(guarded(self, slot))
        self._index_worker = worker
        self.index_started.emit(folders)
        worker.start(self.index_pool)
        return True

    def cancel_index(self) -> None:
        """Stop after the batch in flight; everything committed so far stays (resume = index again)."""
        self._queued_folders.clear()
        self._index_cancel.set()

    def _index_progress(self, progress) -> None:
        self.last_progress = progress
        self.index_progress.emit(progress)

    def _index_returned(self, summary: Any) -> None:
        cancelled = bool(getattr(summary, "cancelled", False)) or self._index_cancel.is_set()
        self.index_finished.emit(summary, cancelled)

    def _index_errored(self, exc: BaseException) -> None:
        if isinstance(exc, ModelMismatchError):  # the window asks whether to re-embed everything
            self.model_mismatch.emit(str(exc))
            self.index_failed.emit("")
        else:
            self.index_failed.emit(describe_error(exc))

    def _index_done(self) -> None:
        self._index_worker = None
        if self.searcher is None:  # a searcher already open keeps its index and patches it itself
            self._make_searcher()
        self.library_changed.emit()
        if self._queued_folders:  # asked for after any cancel (cancel_index empties the queue)
            folders, self._queued_folders = self._queued_folders, []
            self.index(folders)

    def wait_index(self, msecs: int = 60000) -> bool:
        """Tests and scripts: wait until the indexing thread has finished."""
        worker = self._index_worker
        return worker is None or worker.done.wait(msecs / 1000)

    def remove_root(self, path: str) -> None:
        run_in_thread(self.library.remove_root, path, pool=self.pool, context=self,
                      returned=lambda _n: self.library_changed.emit(),
                      errored=lambda e: self.failed.emit(describe_error(e)))

    # -- search --------------------------------------------------------------------------
    def search(self, request: SearchRequest) -> None:
        self._pending = request
        if self._search_worker is None:
            self._start_search()

    def _start_search(self) -> None:
        request, self._pending = self._pending, None
        if self.searcher is None:
            self._make_searcher()  # the library may have gained its first vectors meanwhile
        if self.searcher is None:
            self.search_failed.emit(self.model_error or self.searcher_error or "The library is not open yet.")
            return
        self._search_worker = run_in_thread(
            _run_search, self.searcher, request, pool=self.pool, context=self,
            returned=lambda res, r=request: self._search_returned(r, res),
            errored=self._search_errored, finished=self._search_done)

    def _search_returned(self, request: SearchRequest, results: list) -> None:
        if self._pending is None:  # a newer request makes this answer stale
            self.results.emit(request, list(results))

    def _search_errored(self, exc: BaseException) -> None:
        if self._pending is None:
            self.search_failed.emit(describe_error(exc))

    def _search_done(self) -> None:
        self._search_worker = None
        if self._pending is not None:
            self._start_search()

    @property
    def searching(self) -> bool:
        return self._search_worker is not None or self._pending is not None

    # -- small library reads, run on a worker so a busy disk never stalls the GUI -------
    def call(self, func, *args, returned=None, errored=None, context: QObject | None = None) -> Worker:
        """Run a quick library call off the GUI thread; errors go to ``errored`` as messages.

        Slots are skipped once ``context`` (default: the engine) is destroyed.
        """
        return run_in_thread(func, *args, pool=self.pool, context=context or self, returned=returned,
                             errored=(lambda e: errored(describe_error(e))) if errored else None)

    def shutdown(self) -> None:
        self.cancel_index()
        self.index_pool.waitForDone(30000)
        self.pool.waitForDone(30000)
        if self.library is not None:
            self.library.close()
            self.library = None
