"""How long can the GUI's event loop stall while indexing and searching?

Runs the real main window offscreen on a generated collection, with an
:class:`bench.probe.EventLoopProbe` (a 10 ms timer) measuring the gap between
ticks. Phase 1 indexes the collection while the script keeps searching and
scrolling the grid, as a user would; phase 2 runs a series of moodboard edits
(add, weight, negative, more like this) each followed by a scroll through the
results, so thumbnails load while the grid moves. The promise is: no gap over
100 ms in either phase.

    .venv/bin/python bench/gui_responsiveness.py --images 300 --size 640x480
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=300)
    parser.add_argument("--size", default="640x480", help="image size WxH")
    parser.add_argument("--model", default="", help="model file or built-in name (default: the bundled model)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--searches", type=int, default=20)
    parser.add_argument("--k", type=int, default=1000, help="results per search")
    parser.add_argument("--workers", type=int, default=None, help="decoding processes for indexing")
    parser.add_argument("--profile", type=Path, default=None, help="write a cProfile of the GUI thread here")
    args = parser.parse_args(argv)

    from bench.screenshots import isolate

    work = Path(tempfile.mkdtemp(prefix="aladin-bench-gui-"))
    isolate(work)

    from PySide6.QtCore import QEventLoop, QMimeData, QTimer, QUrl
    from PySide6.QtWidgets import QApplication

    from app.engine import Engine
    from app.mainwindow import MainWindow
    from app.moodboard_model import MoodboardEntry
    from app.options import Settings
    from app.roles import NegativeRole, WeightRole
    from bench.collection import make_collection
    from bench.probe import EventLoopProbe

    app = QApplication.instance() or QApplication(sys.argv[:1])
    w_px, h_px = (int(v) for v in args.size.split("x"))
    styles = 14
    paths = make_collection(work / "art", styles=styles, per_style=max(1, args.images // styles), size=(w_px, h_px))

    def wait_for(cond, timeout_s: float = 600.0) -> bool:
        """Run the real event loop until ``cond()`` holds (polled by a timer, as any slot would be)."""
        loop = QEventLoop()
        poll = QTimer(interval=5)
        poll.timeout.connect(lambda: loop.quit() if cond() else None)
        QTimer.singleShot(int(timeout_s * 1000), loop.quit)
        poll.start()
        loop.exec()
        poll.stop()
        return cond()

    def last_event(t: float) -> str:
        before = [(e, name) for e, name in events if e <= t]
        return f"{before[-1][1]} (+{before[-1][0] - t0:.1f} s)" if before else "start"

    def describe(stall) -> str:
        where = f"cpu {stall.cpu_ms:.0f}"
        if stall.queued_ms is not None:
            where += f", run queue {stall.queued_ms:.0f}, blocked {stall.blocked_ms:.0f}"
        return f"{stall.gap_ms:.0f} ms ({where}) at +{stall.at - t0:.1f} s after {last_event(stall.at)}"

    def scroll_through(view, seconds: float = 1.0) -> None:
        """Scroll the grid top to bottom in 16 ms steps, as a fast flick would."""
        bar = view.verticalScrollBar()
        steps = max(1, int(seconds * 1000 / 16))
        state = {"i": 0}
        timer = QTimer(interval=16)

        def step() -> None:
            state["i"] += 1
            bar.setValue(int(bar.maximum() * state["i"] / steps))
            if state["i"] >= steps:
                timer.stop()

        timer.timeout.connect(step)
        timer.start()
        wait_for(lambda: not timer.isActive(), seconds * 4 + 5)

    settings = Settings(work / "config.ini")
    settings.set("model", args.model)
    settings.set("device", args.device)
    settings.set("results_k", args.k)
    engine = Engine()
    if args.workers is not None:
        engine.index_options = {"workers": args.workers}
    window = MainWindow(settings=settings, engine=engine, library_dir=str(work / "library"))
    window.resize(1280, 820)
    window.show()
    wait_for(lambda: engine.ready, 120)
    probe = EventLoopProbe(10)
    profiler = None
    if args.profile:
        import cProfile

        profiler = cProfile.Profile()
        profiler.enable()

    # phase 1: indexing, with searches and scrolling meanwhile
    events: list[tuple[float, str]] = []  # what was going on, to explain any stall
    engine.index_progress.connect(lambda p: events.append((time.perf_counter(), f"index:{p.phase}"))
                                  if not events or events[-1][1] != f"index:{p.phase}" else None)
    engine.results.connect(lambda req, res: events.append((time.perf_counter(), "results")))
    results_seen = []
    engine.results.connect(lambda req, res: results_seen.append(len(res)))
    probe.start()
    t0 = time.perf_counter()
    window.library.add_folders([str(work / "art")])
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(paths[0]))])
    window.accept_mime(mime)
    searches_during = 0
    while engine.indexing:
        wait_for(lambda: not engine.indexing, 2.0)
        if engine.indexing:
            window.moodboard.setData(window.moodboard.index(0), 1.0 + (searches_during % 3) * 0.5, WeightRole)
            searches_during += 1
            scroll_through(window.ui.view, 0.5)
    index_s = time.perf_counter() - t0
    probe.stop()
    indexing = probe.summary()
    indexing["stalls"] = [describe(stall) for stall in probe.stalls]

    # phase 2: moodboard edits, each answered, then a scroll through the grid
    wait_for(lambda: not engine.searching, 60)
    latencies = []
    probe.start()
    for i in range(args.searches):
        before = len(results_seen)
        t = time.perf_counter()
        kind = i % 4
        if kind == 0:
            window.moodboard.add([MoodboardEntry(str(paths[(i * 7 + 3) % len(paths)]))])
        elif kind == 1:
            window.moodboard.setData(window.moodboard.index(window.moodboard.rowCount() - 1), True, NegativeRole)
        elif kind == 2:
            first = window.moodboard.index(0)
            window.moodboard.setData(first, 0.5 if window.moodboard.data(first, WeightRole) == 2.0 else 2.0,
                                     WeightRole)
        else:
            window.result_actions.more_like_this(window.results.index(i % max(1, window.results.rowCount())))
        wait_for(lambda b=before: len(results_seen) > b and not engine.searching, 60)
        latencies.append((time.perf_counter() - t) * 1000)
        scroll_through(window.ui.view, 0.5)
    probe.stop()
    searching = probe.summary()
    searching["stalls"] = [describe(stall) for stall in probe.stalls]
    window.close()
    if profiler is not None:
        profiler.disable()
        profiler.dump_stats(str(args.profile))

    latencies.sort()
    report = {
        "machine": f"{platform.machine()}, {os.cpu_count()} CPU cores, {platform.python_version()}",
        "model": args.model, "device": args.device, "images": len(paths), "image_size": args.size,
        "index_seconds": round(index_s, 1), "searches_while_indexing": searches_during,
        "indexing": indexing,
        "search": {**searching, "searches": len(latencies), "k": args.k,
                   "median_latency_ms": round(latencies[len(latencies) // 2], 1),
                   "max_latency_ms": round(latencies[-1], 1)},
    }
    print(json.dumps(report, indent=2))
    return 0 if max(indexing["max_gap_ms"], searching["max_gap_ms"]) <= 100 else 1


if __name__ == "__main__":
    sys.exit(main())
