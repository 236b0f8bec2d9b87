"""A teaching session's work, off the GUI thread: counting groups, the run, keeping or discarding its model.

The run is :func:`app.teach.pipeline.teach` driven by the app's generic worker on a pool of
its own (it holds a thread for minutes, which searches must not wait behind). Its folder lives
in the per-user cache until the user decides: Accept copies the model and its card into the
models folder and asks the engine to switch the library to it; Reject deletes the folder.
"""

from __future__ import annotations

import shutil
import tempfile
import threading
from collections.abc import Generator
from pathlib import Path

from PySide6.QtCore import QObject, QThreadPool, Signal

from core.paths import cache_dir

from app.engine import Engine, describe_error
from app.teach import store
from app.teach.groups import group_images
from app.teach.groups_model import GroupsModel
from app.teach.pipeline import TeachOutcome, TeachPlan, TeachProgress, teach
from app.workers import Worker, run_in_thread


def run_folder() -> Path:
    """A new, empty folder for one run, in the per-user cache (anything there may be deleted)."""
    parent = cache_dir() / "teach"
    parent.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix="run-", dir=parent))


def _run(plan: TeachPlan, cancelled) -> Generator[TeachProgress, None, TeachOutcome | None]:
    """The run in a folder of its own, which goes with it unless the run completes.

    Raises:
        TeachError: a model of the plan's name exists already (said before minutes of training), or a step failed.
    """
    store.check_free(plan.name)
    folder = run_folder()
    outcome = None
    try:
        outcome = yield from teach(plan, folder, cancelled)
        return outcome
    finally:
        if outcome is None:
            shutil.rmtree(folder, ignore_errors=True)


def _keep(outcome: TeachOutcome) -> Path:
    path = store.keep(outcome)
    shutil.rmtree(outcome.folder, ignore_errors=True)
    return path


class TeachController(QObject):
    """Counts the groups of ``groups`` as they are added, runs a session and keeps or discards its model.

    Attributes:
        outcome: the finished run waiting for Accept or Reject; None before and after.

    Signals:
        progress(object): a :class:`app.teach.pipeline.TeachProgress` of the run.
        finished(object): the :class:`app.teach.pipeline.TeachOutcome` of a run that completed.
        cancelled(): the run stopped on request; its processes are gone and its folder deleted.
        failed(str): the run, or keeping its model, failed; the message says why.
        kept(str): the model was saved at this path and the library is switching to it (when it cannot
            switch now, ``failed`` says so instead).
        discarded(): the run's folder is deleted; nothing was kept.
    """

    progress = Signal(object)
    finished = Signal(object)
    cancelled = Signal()
    failed = Signal(str)
    kept = Signal(str)
    discarded = Signal()

    def __init__(self, engine: Engine, groups: GroupsModel, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.engine = engine
        self.groups = groups
        self.outcome: TeachOutcome | None = None
        self.pool = QThreadPool(self)
        self.pool.setMaxThreadCount(1)
        self._worker: Worker | None = None
        self._cancel = threading.Event()

    # -- groups ----------------------------------------------------------------------------------
    def add_group(self, kind: str, source: str, name: str) -> None:
        """Add a folder or moodboard group and count its images in a worker."""
        group = self.groups.add(kind, source, name)
        if group is None or self.engine.library is None:
            return
        run_in_thread(group_images, self.engine.library, kind, source, pool=self.engine.pool, context=self,
                      returned=lambda paths, g=group: self.groups.counted(g, paths),
                      errored=lambda exc, g=group: self.groups.counted(g, None, describe_error(exc)))

    def base_problem(self) -> str | None:
        """Why the model in use cannot be taught, or None when it can."""
        embedder = self.engine.embedder
        if embedder is None:
            return "No style model is loaded; choose one in Settings first."
        if embedder.model.source.startswith("builtin:"):
            return "The untrained baseline cannot be taught; choose a trained model in Settings first."
        return None

    # -- the run -----------------------------------------------------------------------------------
    @property
    def running(self) -> bool:
        return self._worker is not None

    def start(self, name: str, steps: int) -> None:
        """Teach the groups to a copy of the model in use; nothing changes until :meth:`keep`."""
        model = self.engine.embedder.model
        plan = TeachPlan(self.groups.groups(), base=model.source, base_name=model.info.name, name=name,
                         steps=steps, device=self.engine.model_request[1])
        self._cancel.clear()
        self._worker = run_in_thread(_run, plan, self._cancel.is_set, pool=self.pool, context=self,
                                     progress=self.progress.emit, returned=self._returned, errored=self._errored)

    def cancel(self) -> None:
        """Stop the run: its processes are ended and its folder deleted; ``cancelled`` follows."""
        self._cancel.set()

    def _returned(self, outcome: TeachOutcome | None) -> None:
        self._worker = None  # its processes are gone: the run is over for whoever the signals reach
        if outcome is None:
            self.cancelled.emit()
            return
        self.outcome = outcome
        self.finished.emit(outcome)

    def _errored(self, exc: BaseException) -> None:
        self._worker = None
        self.failed.emit(describe_error(exc))

    # -- the decision ----------------------------------------------------------------------------------
    def keep(self) -> None:
        """Save the model and its card in the models folder, then switch the library to it."""
        outcome, self.outcome = self.outcome, None
        run_in_thread(_keep, outcome, pool=self.engine.pool, context=self, returned=self._kept,
                      errored=lambda exc, o=outcome: self._keep_failed(o, exc))

    def _kept(self, path: Path) -> None:
        if self.engine.switch_model(str(path)):
            self.kept.emit(str(path))
        else:
            self.failed.emit(f"The model was saved as {path}, but the library cannot switch to it while indexing "
                             "runs; choose it in the Model menu when indexing has finished.")

    def _keep_failed(self, outcome: TeachOutcome, exc: BaseException) -> None:
        self.outcome = outcome  # still there to keep once the cause is fixed (a full disk), or to discard
        self.failed.emit(describe_error(exc))

    def shutdown(self, msecs: int = 30000) -> None:
        """The app is closing: a run is ended (its processes and folder go) and an undecided one discarded."""
        self.cancel()
        self.pool.waitForDone(msecs)
        if self.outcome is not None:
            shutil.rmtree(self.outcome.folder, ignore_errors=True)
            self.outcome = None

    def discard(self) -> None:
        """Delete the finished run's folder: nothing is kept."""
        outcome, self.outcome = self.outcome, None
        if outcome is not None:
            run_in_thread(shutil.rmtree, outcome.folder, True, pool=self.engine.pool, context=self,
                          finished=self.discarded.emit)
