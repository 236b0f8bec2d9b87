"""An event-loop responsiveness probe: how late does a 10 ms timer fire?

A ``QTimer`` ticks every ``interval_ms`` on the GUI thread; the gap between two
ticks beyond the interval is time the event loop could not run (a stall). The
maximum gap while indexing or searching is the number the "never frozen"
promise is measured by (bench/gui_responsiveness.py).
"""

from __future__ import annotations

import time

from PySide6.QtCore import QObject, Qt, QTimer


class EventLoopProbe(QObject):
    def __init__(self, interval_ms: int = 10, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.interval_ms = interval_ms
        self._timer = QTimer(self)
        self._timer.setTimerType(Qt.TimerType.PreciseTimer)
        self._timer.setInterval(interval_ms)
        self._timer.timeout.connect(self._tick)
        self._last: float | None = None
        self.gaps_ms: list[float] = []
        self.stalls: list[tuple[float, float]] = []  # (perf_counter at the late tick, gap ms) over 100 ms

    def start(self) -> None:
        self.gaps_ms.clear()
        self.stalls.clear()
        self._last = time.perf_counter()
        self._timer.start()

    def stop(self) -> None:
        self._timer.stop()
        self._last = None

    def _tick(self) -> None:
        now = time.perf_counter()
        if self._last is not None:
            gap = (now - self._last) * 1000.0
            self.gaps_ms.append(gap)
            if gap > 100.0:
                self.stalls.append((now, gap))
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
                "gaps_over_100ms": self.over(100.0)}
