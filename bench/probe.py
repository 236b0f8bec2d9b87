"""An event-loop responsiveness probe: how late does a 10 ms timer fire?

A ``QTimer`` ticks every ``interval_ms`` on the GUI thread; the gap between two
ticks beyond the interval is time the event loop could not run (a stall). The
maximum gap while indexing or searching is the number the "never frozen"
promise is measured by (bench/gui_responsiveness.py).

For each stall over 100 ms the probe also records where the time went, from
the GUI thread's own counters: CPU time it ran (our code on the GUI thread),
and on Linux the time it sat runnable in the kernel's run queue (the machine
was busy elsewhere). What is left is time it was blocked: waiting for Python's
GIL, a lock, or the disk.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from pathlib import Path

from PySide6.QtCore import QObject, Qt, QTimer

STALL_MS = 100.0


@dataclass
class Stall:
    at: float  # perf_counter of the late tick
    gap_ms: float
    cpu_ms: float  # GUI thread on a CPU
    queued_ms: float | None  # GUI thread runnable but not running (Linux schedstat), else None

    @property
    def blocked_ms(self) -> float | None:
        return None if self.queued_ms is None else max(0.0, self.gap_ms - self.cpu_ms - self.queued_ms)


def _schedstat_path() -> Path | None:
    path = Path(f"/proc/self/task/{threading.get_native_id()}/schedstat")
    return path if path.exists() else None


class EventLoopProbe(QObject):
    def __init__(self, interval_ms: int = 10, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.interval_ms = interval_ms
        self._timer = QTimer(self)
        self._timer.setTimerType(Qt.TimerType.PreciseTimer)
        self._timer.setInterval(interval_ms)
        self._timer.timeout.connect(self._tick)
        self._last: tuple[float, float, float | None] | None = None
        self._schedstat: Path | None = None
        self.gaps_ms: list[float] = []
        self.stalls: list[Stall] = []

    def _queued_ns(self) -> float | None:
        if self._schedstat is None:
            return None
        try:
            return float(self._schedstat.read_text().split()[1])
        except (OSError, IndexError, ValueError):
            return None

    def _sample(self) -> tuple[float, float, float | None]:
        return time.perf_counter(), time.thread_time(), self._queued_ns()

    def start(self) -> None:
        """Call on the GUI thread."""
        self.gaps_ms.clear()
        self.stalls.clear()
        self._schedstat = _schedstat_path()
        self._last = self._sample()
        self._timer.start()

    def stop(self) -> None:
        self._timer.stop()
        self._last = None

    def _tick(self) -> None:
        now = self._sample()
        if self._last is not None:
            gap = (now[0] - self._last[0]) * 1000.0
            self.gaps_ms.append(gap)
            if gap > STALL_MS:
                queued = None if now[2] is None or self._last[2] is None else (now[2] - self._last[2]) / 1e6
                self.stalls.append(Stall(now[0], gap, (now[1] - self._last[1]) * 1000.0, queued))
        self._last = now

    @property
    def max_gap_ms(self) -> float:
        return max(self.gaps_ms, default=0.0)

    def percentile(self, q: float) -> float:
        if not self.gaps_ms:
            return 0.0
        ordered = sorted(self.gaps_ms)
        return ordered[min(len(ordered) - 1, int(q / 100 * len(ordered)))]

    def over(self, ms: float) -> int:
        return sum(1 for g in self.gaps_ms if g > ms)

    def summary(self) -> dict:
        return {"ticks": len(self.gaps_ms), "max_gap_ms": round(self.max_gap_ms, 1),
                "p99_gap_ms": round(self.percentile(99), 1), "median_gap_ms": round(self.percentile(50), 1),
                "gaps_over_100ms": self.over(STALL_MS)}
