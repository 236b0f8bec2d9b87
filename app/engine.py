"""The GUI's handle on the engine: one QObject that owns the library, the model and
the searcher, and runs every ``core`` job in a worker thread.

Nothing here computes anything itself; it sequences ``core`` calls and turns
their results and known errors (``core.errors.AladinError``) into signals.
Every database read (status, moodboards, opening a searcher) runs in a worker
too, so the GUI thread only ever receives data and never waits on the disk.
Searches are "latest wins": while one runs, newer requests replace each other
and only the newest is started next, so typing-speed edits to a moodboard never
pile up work.
"""

from __future__ import annotations

import logging
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject, QThreadPool, Signal

from core.errors import AladinError, LibraryDamagedError, ModelMismatchError, NoTrainedModelError
from core.query import QueryItem, SearchFilters

from app.index_process import index_in_process, wait_for_children
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

    # Load here, off the GUI thread, what would otherwise load on first use: the search and
    # indexing modules, and the image suffixes that every drop on the GUI thread reads.
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


def _index_in_thread(library, folders, spec: str, device: str, embedder=None, **options):
    """``core.indexer.index_folders`` in this process: the tests' quicker path (no process start).

    Without ``embedder`` (a switch to another model) the model ``spec`` is loaded here first.
    """
    from core.indexer import index_folders

    embedder = embedder or _load_model(spec, device)[0]
    return (yield from index_folders(library, folders, embedder, **options))


def _open_searcher(library, embedder):
    """A :class:`core.search.Searcher`; it reads the library's model record, so it runs in a worker.

    Raises:
        LibraryError: the library holds no vectors yet.
        ModelMismatchError: the library was indexed with another model.
    """
    from core.search import Searcher

    return Searcher(library, embedder)


def _query_items(entries: list[MoodboardEntry]) -> list[QueryItem]:
    return [QueryItem(path=e.path, weight=e.weight, negative=e.negative) for e in entries]


def _run_search(searcher, library, embedder, request: SearchRequest):
    """Answer ``request``; returns the searcher used, with the results.

    Without a searcher one is opened first: an empty library may have gained its
    first vectors since the last try.
    """
    searcher = searcher or _open_searcher(library, embedder)
    filters = request.filters
    positive = [e for e in request.entries if not e.negative]
    if len(request.entries) == 1 and positive and positive[0].image_id is not None:
        # "More like this" on a result: the stored vector answers without decoding anything.
        return searcher, searcher.more_like(positive[0].image_id, filters)
    return searcher, searcher.search(_query_items(request.entries), filters)


def _read_status(library):
    return library.status(), library.failures()


def _save_moodboard(library, name: str, entries: list[MoodboardEntry]) -> list[str]:
    library.save_moodboard(name, _query_items(entries))
    return library.moodboards()


def _load_moodboard(library, name: str) -> tuple[list[MoodboardEntry], list[str]]:
    """The board's entries, and the paths of those whose file is gone (checked here, off the GUI thread)."""
    entries = [MoodboardEntry(i.path, float(i.weight), bool(i.negative)) for i in library.load_moodboard(name)]
    return entries, [e.path for e in entries if not os.path.exists(e.path)]


def _rename_moodboard(library, old: str, new: str) -> list[str]:
    library.rename_moodboard(old, new)
    return library.moodboards()


def _delete_moodboard(library, name: str) -> list[str]:
    library.delete_moodboard(name)
    return library.moodboards()


class Engine(QObject):
    """Signals:
        library_ready(): the library is open; roots and counts can be read.
        library_failed(str): the library could not be opened.
        model_ready(object): a :class:`ModelState` for the model now in use.
        model_failed(str, bool): message, and whether the cause is "no trained model installed".
        index_started(list): folders being indexed ([]: every root is rescanned).
        index_progress(object): a ``core.indexer.IndexProgress``.
        index_finished(object, bool): the ``IndexSummary`` (or None) and whether it was cancelled.
        index_failed(str): indexing stopped with an error ("" when model_mismatch explains it).
        model_switched(str): the library now holds the vectors of the model of this spec (see
            :meth:`switch_model`), which loads next; the app makes it the chosen model.
        results(object, list): the request answered and its ``SearchResult`` list.
        search_failed(str): the newest search failed.
        library_changed(): roots or images changed.
        model_mismatch(ModelMismatchError): the library was indexed with another model than the one loaded
            (``updated`` when the two share a name: the model file changed, not the user's choice).
        status_read(object): a ``core.library.LibraryStatus``, answering :meth:`read_status`.
        failures_read(list): the unreadable files (``core.library.Failure``), right after each status.
        moodboards_read(list): the saved moodboards' names, after a read or any change to them.
        moodboard_loaded(str, list, list): a saved moodboard's name, its :class:`MoodboardEntry` list
            and the paths of entries whose file is missing.
        moodboard_saved(str): a moodboard was saved under this name.
        moodboard_renamed(str, str): a saved moodboard's old and new name.
        moodboard_deleted(str): the saved moodboard of this name is gone.
        failed(str): a library operation (a read, removing a folder, a moodboard change) failed, or
            opening the searcher found the library's database damaged.
    """

    library_ready = Signal()
    library_failed = Signal(str)
    model_ready = Signal(object)
    model_failed = Signal(str, bool)
    index_started = Signal(list)
    index_progress = Signal(object)
    index_finished = Signal(object, bool)
    index_failed = Signal(str)
    model_switched = Signal(str)
    results = Signal(object, list)
    search_failed = Signal(str)
    library_changed = Signal()
    model_mismatch = Signal(object)
    status_read = Signal(object)
    failures_read = Signal(list)
    moodboards_read = Signal(list)
    moodboard_loaded = Signal(str, list, list)
    moodboard_saved = Signal(str)
    moodboard_renamed = Signal(str, str)
    moodboard_deleted = Signal(str)
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
        self._rescan_queued = False
        self._search_worker: Worker | None = None
        self._pending: SearchRequest | None = None
        self._model_worker: Worker | None = None
        self._model_request: tuple[str, str] | None = None
        self.model_request: tuple[str, str] | None = None
        self.last_progress = None
        # A switch to another model (see switch_model): the spec it moves to, until that model has loaded;
        # the same while the indexing run has not committed it yet; and a cancelled one, which the next
        # rescan resumes.
        self.switching_to: str | None = None
        self._switch_run: str | None = None
        self._interrupted_switch: str | None = None
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
        self._open_searcher()
        self.library_ready.emit()

    @property
    def library_open(self) -> bool:
        return self.library is not None

    def read_status(self) -> None:
        """Read counts, roots and unreadable files; they arrive as ``status_read``, then ``failures_read``."""
        self.library_job(_read_status, returned=self._status_arrived)

    def _status_arrived(self, read: tuple) -> None:
        status, failures = read
        self.status_read.emit(status)
        self.failures_read.emit(failures)

    def remove_root(self, path: str) -> None:
        """Forget a root and its vectors (the library refuses while indexing runs)."""
        self.library_job(lambda library: library.remove_root(path), returned=lambda _n: self.library_changed.emit())

    # -- moodboards ---------------------------------------------------------------------
    def read_moodboards(self) -> None:
        """The saved moodboards' names arrive as ``moodboards_read``."""
        self.library_job(lambda library: library.moodboards(), returned=self.moodboards_read.emit)

    def save_moodboard(self, name: str, entries: list[MoodboardEntry]) -> None:
        """Save (or replace) a board; answers with ``moodboards_read``, then ``moodboard_saved``."""
        self.library_job(_save_moodboard, name, entries,
                          returned=lambda names, n=name: self._moodboards_changed(names, self.moodboard_saved, n))

    def load_moodboard(self, name: str) -> None:
        """A saved board's entries arrive as ``moodboard_loaded``."""
        self.library_job(_load_moodboard, name,
                          returned=lambda loaded, n=name: self.moodboard_loaded.emit(n, *loaded))

    def rename_moodboard(self, old: str, new: str) -> None:
        """Answers with ``moodboards_read``, then ``moodboard_renamed``."""
        self.library_job(_rename_moodboard, old, new, returned=lambda names, o=old, n=new.strip():
                          self._moodboards_changed(names, self.moodboard_renamed, o, n))

    def delete_moodboard(self, name: str) -> None:
        """Answers with ``moodboards_read``, then ``moodboard_deleted``."""
        self.library_job(_delete_moodboard, name,
                          returned=lambda names, n=name: self._moodboards_changed(names, self.moodboard_deleted, n))

    def _moodboards_changed(self, names: list[str], signal, *args: str) -> None:
        self.moodboards_read.emit(names)
        signal.emit(*args)

    def library_job(self, func, *args, returned) -> None:
        """Run ``func(library, *args)`` off the GUI thread; errors become ``failed`` messages.

        Pages of the window (library, styles, duplicates) read the store through this, never directly.

        Without an open library there is nothing to read or change, and nothing happens.
        """
        if self.library is None:
            return
        run_in_thread(func, self.library, *args, pool=self.pool, context=self, returned=returned,
                      errored=lambda e: self.failed.emit(describe_error(e)))

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
        if spec == self.switching_to and self._switch_run is None:
            self.switching_to = None
        self.embedder = embedder
        self.model_error = None
        info = embedder.model.info
        self.model_state = ModelState(spec=spec, name=info.name, trained=bool(info.trained),
                                      device=str(embedder.device), device_label=label)
        self.searcher = None
        self.model_ready.emit(self.model_state)
        self._open_searcher()  # answers after model_ready: a mismatch message is the last word

    def _model_load_failed(self, exc: BaseException) -> None:
        self.switching_to = None
        self.embedder = None
        self.searcher = None
        self.model_state = None
        self.model_error = describe_error(exc)
        self.model_failed.emit(self.model_error, isinstance(exc, NoTrainedModelError))

    def _model_load_finished(self) -> None:
        self._model_worker = None
        if self._model_request is not None:
            self._start_model_load()

    @property
    def has_model(self) -> bool:
        return self.embedder is not None

    @property
    def ready(self) -> bool:
        return self.library is not None and self.embedder is not None

    # -- searcher -------------------------------------------------------------------------
    def _open_searcher(self) -> None:
        """Open a searcher for the library with the loaded model, in a worker.

        An empty library has none yet; a library of another model's vectors
        reports ``model_mismatch``. An answer that arrives after the library or
        the model changed is dropped.
        """
        self.searcher = None
        if not self.ready:
            return
        library, embedder = self.library, self.embedder
        run_in_thread(_open_searcher, library, embedder, pool=self.pool, context=self,
                      returned=lambda searcher: self._adopt_searcher(library, embedder, searcher),
                      errored=lambda exc: self._searcher_failed(library, embedder, exc))

    def _adopt_searcher(self, library, embedder, searcher) -> None:
        """Keep ``searcher`` unless the library or model changed, or another one (maybe with its index loaded) won."""
        if library is self.library and embedder is self.embedder and self.searcher is None:
            self.searcher = searcher

    def _searcher_failed(self, library, embedder, exc: BaseException) -> None:
        message = describe_error(exc)  # an empty library is a known error: nothing to search yet
        if library is not self.library or embedder is not self.embedder:
            return
        if isinstance(exc, ModelMismatchError):
            if self.switching_to is None:  # mid-switch, the new model is on its way
                self.model_mismatch.emit(exc)
        elif isinstance(exc, LibraryDamagedError):  # the user must hear of it (and of `aladin repair`) now
            self.failed.emit(message)

    @property
    def has_searcher(self) -> bool:
        return self.searcher is not None

    # -- indexing -----------------------------------------------------------------------
    @property
    def indexing(self) -> bool:
        return self._index_worker is not None

    def index(self, folders: list[str] | None = None, switch_model: bool = False) -> bool:
        """Index ``folders`` (added as roots), or rescan every root when None.

        The indexer reads the roots itself, in its worker. While a run is going,
        new folders (or a rescan) wait and start when it ends. A rescan after a
        model switch was cancelled resumes that switch. Returns False when
        there is no library or model to index with.
        """
        if not self.ready:
            return False
        folders = [str(Path(f)) for f in folders or []]  # [] is core's "every root"
        if self.indexing:
            self._queued_folders += [f for f in folders if f not in self._queued_folders]
            self._rescan_queued = self._rescan_queued or not folders
            return True
        if not folders and self._interrupted_switch is not None:
            return self.switch_model(self._interrupted_switch)
        self._switch_run = None
        self._start_index(folders, self.model_request[0], switch_model)
        return True

    def switch_model(self, spec: str) -> bool:
        """Re-embed the library with the model ``spec`` beside its current vectors, then search with it.

        The indexing run stages the new vectors while the current model keeps answering searches;
        once the run has committed the switch (see :mod:`core.indexer`), ``model_switched`` is
        emitted and the new model loads; searches meanwhile wait for it instead of failing. A
        cancelled or failed switch leaves the library on its model (the next rescan resumes it).
        Returns False without a library and model, or while indexing runs.
        """
        if not self.ready or self.indexing:
            return False
        self.switching_to = self._switch_run = spec
        self._interrupted_switch = None
        self._start_index([], spec, switch_model=True)
        return True

    def _start_index(self, folders: list[str], spec: str, switch_model: bool) -> None:
        """Start an indexing run with the model ``spec`` (the loaded one, or one to switch to)."""
        self._index_cancel.clear()
        self.last_progress = None
        options = {**self.index_options, "switch_model": switch_model}
        device = self.model_request[1]
        if self.index_in_process:
            worker = Worker(index_in_process, str(self.library.folder), folders, spec, device,
                            self._index_cancel.is_set, options)
        else:
            embedder = self.embedder if spec == self.model_request[0] else None
            worker = Worker(_index_in_thread, self.library, [Path(f) for f in folders], spec, device, embedder,
                            cancel=self._index_cancel.is_set, **options)
        for signal, slot in ((worker.signals.progress, self._index_progress),
                             (worker.signals.returned, self._index_returned),
                             (worker.signals.errored, self._index_errored),
                             (worker.signals.finished, self._index_done)):
            signal.connect(guarded(self, slot))
        self._index_worker = worker
        self.index_started.emit(folders)
        worker.start(self.index_pool)

    def cancel_index(self) -> None:
        """Stop after the batch in flight; everything committed so far stays (resume = index again)."""
        self._queued_folders.clear()
        self._rescan_queued = False
        self._index_cancel.set()

    def _index_progress(self, progress) -> None:
        from core.indexer import SWITCHED  # loaded with the library (see _open_library)

        if progress.phase == SWITCHED:
            self._model_switched()
            return
        self.last_progress = progress
        self.index_progress.emit(progress)

    def _model_switched(self) -> None:
        """The run committed a switch: load the new model (a re-index with the loaded one needs none)."""
        spec, self._switch_run = self._switch_run, None
        if spec is None:
            return
        self.model_switched.emit(spec)
        self.load_model(spec, self.model_request[1])

    def _end_switch_run(self) -> None:
        """The run ended: a switch it did not commit leaves the library on its model, for a rescan to resume."""
        if self._switch_run is not None:
            self._interrupted_switch, self.switching_to, self._switch_run = self._switch_run, None, None

    def _index_returned(self, summary: Any) -> None:
        self._end_switch_run()
        cancelled = bool(getattr(summary, "cancelled", False)) or self._index_cancel.is_set()
        self.index_finished.emit(summary, cancelled)

    def _index_errored(self, exc: BaseException) -> None:
        self._end_switch_run()
        if isinstance(exc, ModelMismatchError):  # the window asks whether to re-embed everything
            self.model_mismatch.emit(exc)
            self.index_failed.emit("")
        else:
            self.index_failed.emit(describe_error(exc))

    def _index_done(self) -> None:
        self._index_worker = None
        if self.searcher is None:  # a searcher already open keeps its index and patches it itself
            self._open_searcher()
        self.library_changed.emit()
        # Asked for after any cancel (cancel_index empties the queue). New folders go first;
        # a queued rescan then covers every root, those new ones included.
        if self._queued_folders:
            folders, self._queued_folders = self._queued_folders, []
            self.index(folders)
        elif self._rescan_queued:
            self._rescan_queued = False
            self.index(None)

    def wait_index(self, msecs: int = 60000) -> bool:
        """Tests and scripts: wait until the indexing thread has finished."""
        worker = self._index_worker
        return worker is None or worker.done.wait(msecs / 1000)

    # -- search --------------------------------------------------------------------------
    def search(self, request: SearchRequest) -> None:
        self._pending = request
        if self._search_worker is None:
            self._start_search()

    def _start_search(self) -> None:
        request, self._pending = self._pending, None
        if not self.ready:
            self.search_failed.emit(self.model_error or "The library is not open yet.")
            return
        library, embedder = self.library, self.embedder
        self._search_worker = run_in_thread(
            _run_search, self.searcher, library, embedder, request, pool=self.pool, context=self,
            returned=lambda answer, r=request: self._search_returned(library, embedder, r, *answer),
            errored=lambda exc, r=request: self._search_errored(embedder, r, exc), finished=self._search_done)

    def _search_returned(self, library, embedder, request: SearchRequest, searcher, results: list) -> None:
        self._adopt_searcher(library, embedder, searcher)
        if self._pending is None:  # a newer request makes this answer stale
            self.results.emit(request, list(results))

    def _search_errored(self, embedder, request: SearchRequest, exc: BaseException) -> None:
        if isinstance(exc, ModelMismatchError):
            if embedder is not self.embedder:  # the switched model arrived while this search ran: ask it
                self._pending = self._pending or request
                return
            if self.switching_to is not None:
                return  # the library has just switched: the new model's arrival searches again
        message = describe_error(exc)
        if isinstance(exc, ModelMismatchError):  # opening the searcher found another model's vectors
            self.model_mismatch.emit(exc)
        if self._pending is None:
            self.search_failed.emit(message)

    def _search_done(self) -> None:
        self._search_worker = None
        if self._pending is not None:
            self._start_search()

    @property
    def searching(self) -> bool:
        return self._search_worker is not None or self._pending is not None

    def shutdown(self) -> None:
        self.cancel_index()
        self.index_pool.waitForDone(30000)
        self.pool.waitForDone(30000)
        wait_for_children()
        if self.library is not None:
            self.library.close()
            self.library = None
