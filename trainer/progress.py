"""Machine-readable progress for a program that runs ``train``/``finetune`` as a child process.

``--progress-json TARGET`` writes one JSON object per line, flushed as it is written, so a GUI can show a
progress bar and an ETA without parsing tqdm's bar::

    {"step": 20, "steps": 200, "elapsed_s": 12.3, "eta_s": 110.7, "loss": 1.234}
    {"step": 20, "steps": 200, "elapsed_s": 14.0, "eta_s": 126.0, "val": {"P@1": 0.41, ...}}
    {"step": 200, "steps": 200, "elapsed_s": 130.2, "eta_s": 0.0, "done": true, "summary": {...}}

A line per log step (``--log-every``) carries the total loss; a line per validation (step 0 included)
carries its figures under ``val``; the last line says ``done`` and carries the run's summary (what
``train`` otherwise prints). ``eta_s`` extrapolates this session's mean time per step to ``steps``,
capped by what ``--max-minutes`` leaves, and is ``null`` until a step has run. TARGET ``-`` is stdout,
where the run then prints nothing else; any other TARGET is a file the lines are appended to. Logging and
tqdm's bar stay on stderr.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import TextIO


class Progress:
    """Writes the progress lines of one run (on the main process; other ranks pass ``target=None``)."""

    def __init__(self, target: str | None, steps: int, first_step: int, max_minutes: float = 0.0) -> None:
        self.steps = steps
        self.first_step = first_step
        self.max_minutes = max_minutes
        self.started = time.time()
        self._fh: TextIO | None = None
        self._own = False
        if target == "-":
            self._fh = sys.stdout
        elif target:
            Path(target).parent.mkdir(parents=True, exist_ok=True)
            self._fh = open(target, "a", encoding="utf-8")
            self._own = True

    @property
    def to_stdout(self) -> bool:
        return self._fh is sys.stdout

    def _timing(self, step: int) -> dict:
        elapsed = time.time() - self.started
        done = step - self.first_step
        eta = None
        if done > 0:
            eta = elapsed / done * max(self.steps - step, 0)
            if self.max_minutes:
                eta = min(eta, max(60 * self.max_minutes - elapsed, 0.0))
        return {"step": step, "steps": self.steps, "elapsed_s": round(elapsed, 2),
                "eta_s": None if eta is None else round(eta, 2)}

    def _write(self, row: dict) -> None:
        if self._fh is not None:
            self._fh.write(json.dumps(row) + "\n")
            self._fh.flush()

    def step(self, step: int, loss: float) -> None:
        self._write({**self._timing(step), "loss": loss})

    def validated(self, step: int, metrics: dict) -> None:
        self._write({**self._timing(step), "val": metrics})

    def done(self, step: int, summary: dict) -> None:
        self._write({**self._timing(step), "eta_s": 0.0, "done": True, "summary": summary})

    def close(self) -> None:
        if self._own and self._fh is not None:
            self._fh.close()
        self._fh = None
