"""One teaching run, as child processes of the trainer: measure, fine-tune, export, measure again.

Training never runs in the GUI process: each step is ``python -m trainer ...`` (``aladin trainer
...`` in a frozen build, see :func:`app.launcher.run_trainer`), started in its own process group
so that a cancel ends it and everything it started (decoders, the pixel cache builder) at once,
and armed on Linux to die with the app. The steps:

1. ``eval`` of the current model on the held-out images (``--split all --allow-overlap``: the
   held-out images belong to the groups it will learn, on purpose: the figures say how it does on
   unseen images of the user's own styles);
2. ``finetune`` of the current model on the rest, reporting each logged step in
   ``--progress-json`` lines, which this module reads as they are written;
3. ``export`` of its last checkpoint to a model file in the run folder (the search vector,
   colour weight and standardisation follow the base model);
4. ``eval`` of that file on the same held-out images.

The job is a plain generator of :class:`TeachProgress` that returns a :class:`TeachOutcome` (or
None when cancelled); the app's worker drives it, as it drives indexing. No Qt here.

Training settings, measured on 2 CPU cores with ``bench/teach_gain.py`` (this job on 8 groups of
unseen game art, one per source of ``data/corpus-new``, 16-40 images each; mean of 3 draws; held-out
P@1 / mAP 0.778 / 0.638 before, with the default of that time): 60 steps took 30 s per run and reached
0.823 / 0.686, 150 steps 50 s and 0.799 / 0.694, 300 steps 86 s and 0.822 / 0.704, measurements and
export included (P@1 moves by half a point per query of the 198, so mAP is the steadier figure). The
retrained default (2026-11-29) at 150 steps: 0.772 / 0.637 before, 0.802 / 0.691 after, 48 s. On the same cores shared with other
work (load 5) a step took 1.8 s instead of 0.15 s (first bundled model).

- ``DEFAULT_STEPS`` = 150: most of the mAP gain (0.056 of 0.066) in a little over half the time of
  300, under a minute on idle cores and a few minutes on busy ones; the dialog offers more or fewer.
- ``LEARNING_RATE`` is held constant (``--decay-every`` past the last step): the trainer's
  default decays once per epoch, and with a handful of groups an epoch is one step, which left
  the rate at 1e-9 after 100 steps.
"""

from __future__ import annotations

import ctypes
import json
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Generator
from dataclasses import dataclass
from pathlib import Path

from core.errors import AladinError

from app.launcher import TRAINER_COMMAND
from app.teach.groups import Group, GroupSplit, write_manifests

log = logging.getLogger(__name__)

DEFAULT_STEPS = 150
LEARNING_RATE = 1e-4
LOG_EVERY = 2
# Every group in every batch (two images each), up to this many: more groups per step cost more per step.
MAX_GROUPS_PER_BATCH = 16
POLL_S = 0.1
STOP_GRACE_S = 5.0
# A failed step's output goes with its run folder; the app's log keeps its end.
LOG_TAIL_LINES = 40

# The stages of a run, in order.
MEASURE_BEFORE = "measure-before"
TRAIN = "train"
EXPORT = "export"
MEASURE_AFTER = "measure-after"


class TeachError(AladinError):
    """A step of the run failed for a known reason (the trainer's one-line error, or a step that died)."""


@dataclass(frozen=True)
class Figures:
    """Retrieval on the held-out images: P@1 and mAP (see :mod:`trainer.metrics`), over ``queries`` images."""

    p_at_1: float
    map: float
    queries: int


@dataclass(frozen=True)
class TeachProgress:
    """Where a run is. ``step``/``steps``/``eta_s``/``loss`` belong to :data:`TRAIN` (step 0: images
    are being prepared); ``before`` is set from the moment the current model has been measured."""

    stage: str
    step: int = 0
    steps: int = 0
    eta_s: float | None = None
    loss: float | None = None
    before: Figures | None = None


@dataclass(frozen=True)
class TeachPlan:
    """What to teach and how.

    Attributes:
        groups: the counted groups (see :func:`app.teach.groups.problems`; none may be left).
        base: the model file the library searches with now, which the run starts from.
        base_name: that model's name, for the new model's card.
        name: the new model's name.
        steps: optimiser steps.
        device: the app's device setting (``auto``, ``cpu``, ``cuda:N``).
    """

    groups: list[Group]
    base: str
    base_name: str
    name: str
    steps: int = DEFAULT_STEPS
    device: str = "auto"


@dataclass(frozen=True)
class TeachOutcome:
    """A finished run: the new model file (in the run folder until it is kept) and the figures."""

    plan: TeachPlan
    folder: Path
    model: Path
    splits: list[GroupSplit]
    before: Figures
    after: Figures
    seconds: float


def trainer_command(*args: str) -> list[str]:
    """The command line that runs ``python -m trainer ARGS`` from this program, frozen or not."""
    if getattr(sys, "frozen", False):
        return [sys.executable, TRAINER_COMMAND, *args]
    return [sys.executable, "-m", "trainer", *args]


def teach(plan: TeachPlan, folder: Path,
          cancelled: Callable[[], bool]) -> Generator[TeachProgress, None, TeachOutcome | None]:
    """Run the four steps in ``folder`` (the run folder, which the caller owns and removes).

    ``cancelled()`` is polled while a step runs; it ends the step's processes and the run returns None.

    Raises:
        TeachError: a step failed; the message says why.
    """
    started = time.monotonic()
    manifests = write_manifests(plan.groups, folder)
    device, _, gpu = plan.device.partition(":")  # the trainer takes "cuda"; the GPU is chosen by _child_env
    measure = ("eval", "--data", str(manifests.held_out), "--split", "all", "--allow-overlap", "--workers", "0",
               "--device", device)
    model = folder / f"{plan.name}.safetensors"
    groups_per_batch = str(min(len(plan.groups), MAX_GROUPS_PER_BATCH))
    steps = [
        (MEASURE_BEFORE, (*measure, "--model", plan.base, "--report", str(folder / "before.json"))),
        (TRAIN, ("finetune", "--data", str(manifests.training), "--out", str(folder), "--from", plan.base,
                 "--steps", str(plan.steps), "--lr", str(LEARNING_RATE), "--decay-every", str(plan.steps + 1),
                 "--val", "0", "--test", "0", "--eval-every", "0", "--patience", "0", "--checkpoint-every", "0",
                 "--log-every", str(LOG_EVERY), "--groups-per-batch", groups_per_batch, "--workers", "0",
                 "--cache", str(folder / "pixels"), "--tensorboard", "off", "--device", device,
                 "--progress-json", str(folder / "progress.jsonl"))),
        (EXPORT, ("export", str(folder / "last.pt"), str(model), "--name", plan.name, "--workers", "0",
                  "--device", device)),
        (MEASURE_AFTER, (*measure, "--model", str(model), "--report", str(folder / "after.json"))),
    ]
    before = None
    for stage, args in steps:
        yield TeachProgress(stage, 0, plan.steps if stage == TRAIN else 0, before=before)
        follow = _ProgressFile(folder / "progress.jsonl", before) if stage == TRAIN else None
        finished = yield from _run(trainer_command(*args), _child_env(gpu), folder / f"{stage}.log", cancelled,
                                   follow)
        if not finished:
            return None
        if stage == MEASURE_BEFORE:
            before = read_figures(folder / "before.json")
    return TeachOutcome(plan, folder, model, manifests.splits, before, read_figures(folder / "after.json"),
                        time.monotonic() - started)


def read_figures(report: Path) -> Figures:
    """The held-out figures of an ``eval --report`` file.

    Raises:
        TeachError: the report is missing or not one.
    """
    try:
        metrics = json.loads(report.read_text(encoding="utf-8"))["metrics"]
        return Figures(float(metrics["P@1"]), float(metrics["mAP"]), int(metrics["queries"]))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise TeachError(f"the measurement left no readable report ({report}: {exc})") from exc


class _ProgressFile:
    """Reads the lines ``finetune --progress-json FILE`` has added since the last look."""

    def __init__(self, path: Path, before: Figures | None) -> None:
        self.path = path
        self.before = before
        self._offset = 0

    def new(self) -> list[TeachProgress]:
        try:
            with open(self.path, "rb") as fh:
                fh.seek(self._offset)
                data = fh.read()
        except FileNotFoundError:
            return []
        complete = data[:data.rfind(b"\n") + 1]  # a line being written is read next time
        self._offset += len(complete)
        rows = [json.loads(line) for line in complete.splitlines() if line.strip()]
        return [TeachProgress(TRAIN, int(r["step"]), int(r["steps"]), r.get("eta_s"), r["loss"], self.before)
                for r in rows if "loss" in r]


def _run(command: list[str], env: dict[str, str], log_file: Path, cancelled: Callable[[], bool],
         follow: _ProgressFile | None) -> Generator[TeachProgress, None, bool]:
    """Run one trainer step to its end, yielding what ``follow`` reads meanwhile; False when cancelled.

    The child's output goes to ``log_file`` (a pipe nobody reads could fill and stall it).

    Raises:
        TeachError: the step exited with an error.
    """
    log.info("teach: %s", " ".join(command))
    with open(log_file, "wb") as out:
        proc = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env, **_own_group())
    try:
        while True:
            try:
                code = proc.wait(timeout=POLL_S)
            except subprocess.TimeoutExpired:
                code = None
            yield from (follow.new() if follow is not None else ())
            if code is not None:
                break
            if cancelled():
                return False
    finally:
        _stop(proc)
    if code != 0:
        output = log_file.read_text(encoding="utf-8", errors="replace")
        log.warning("teach: %s failed with exit code %s; its last output:\n%s", " ".join(command), code,
                    "\n".join(output.splitlines()[-LOG_TAIL_LINES:]))
        raise TeachError(_failure(output, code))
    return True


def _failure(output: str, code: int) -> str:
    """The trainer's own one-line error when it printed one, else the exit code and its last words."""
    lines = [line for line in output.splitlines() if line.strip()]
    known = [line.split("error:", 1)[1].strip() for line in lines if line.startswith("trainer: error:")]
    if known:
        return known[-1]
    return f"the trainer stopped unexpectedly (exit code {code})" + (f": {lines[-1].strip()}" if lines else "")


def _child_env(gpu: str) -> dict[str, str]:
    """This environment, with the folder that holds the ``trainer`` package first on the path (so
    ``-m trainer`` finds it whatever the working folder) and, for the app's ``cuda:N``, GPU N alone."""
    root = str(Path(__file__).resolve().parents[2])
    path = os.environ.get("PYTHONPATH")
    env = {**os.environ, "PYTHONPATH": root + (os.pathsep + path if path else "")}
    if gpu:
        env["CUDA_VISIBLE_DEVICES"] = gpu
    return env


def _own_group() -> dict:
    """Popen options: a process group of its own (one signal reaches the child and all it starts)
    and, on Linux, death with the thread that started it (so with the app)."""
    if os.name != "posix":
        return {"creationflags": subprocess.CREATE_NEW_PROCESS_GROUP}
    if not sys.platform.startswith("linux"):
        return {"process_group": 0}
    return {"process_group": 0, "preexec_fn": _arm_death_signal()}


def _arm_death_signal() -> Callable[[], None]:
    """A ``preexec_fn`` asking Linux for SIGKILL when the parent thread ends (``PR_SET_PDEATHSIG``).

    The C function is looked up here, before the fork, so the child only calls it.
    """
    prctl = ctypes.CDLL(None, use_errno=True).prctl
    return lambda: prctl(1, signal.SIGKILL, 0, 0, 0)  # 1: PR_SET_PDEATHSIG, <linux/prctl.h>


def _stop(proc: subprocess.Popen) -> None:
    """End the child's whole process group, politely first, then for sure: nothing of it is left running."""
    if os.name != "posix":
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        return
    if proc.poll() is None:
        _signal_group(proc, signal.SIGTERM)
        try:
            proc.wait(timeout=STOP_GRACE_S)
        except subprocess.TimeoutExpired:
            pass
    _signal_group(proc, signal.SIGKILL)  # what is left: the group outlives its leader while a decoder of it runs
    proc.wait()


def _signal_group(proc: subprocess.Popen, sig: int) -> None:
    try:
        os.killpg(proc.pid, sig)
    except ProcessLookupError:  # the group is empty
        pass
