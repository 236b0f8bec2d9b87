"""How long can the GUI's event loop stall while indexing and searching?

Runs the real main window offscreen on a generated collection, with an
:class:`bench.probe.EventLoopProbe` (a 10 ms timer) measuring the gap between
ticks. Phase 1 indexes the collection while the script keeps searching and
scrolling the grid, as a user would; phase 2 runs a series of moodboard edits
(add, weight, negative, more like this) each followed by a scroll through the
results, so thumbnails load while the grid moves; phase 3 opens a library of
``--library-images`` images (100,000 by default: symlinks to a few real generated
images, with copies of their vectors) and scrolls its library view, changes its
sort, folder and name filter, and scrolls again. It also times
``Library.browse`` on that library. The promise is: no gap over 100 ms in any phase.

    .venv/bin/python bench/gui_responsiveness.py --images 300 --size 640x480
    .venv/bin/python bench/gui_responsiveness.py --phases library --library-images 100000
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

PHASES = ("index", "search", "library")
PER_FOLDER = 1000  # synthetic library images per folder


def wait_for(cond, timeout_s: float = 600.0) -> bool:
    """Run the real event loop until ``cond()`` holds (polled by a timer, as any slot would be)."""
    from PySide6.QtCore import QEventLoop, QTimer

    loop = QEventLoop()
    poll = QTimer(interval=5)
    poll.timeout.connect(lambda: loop.quit() if cond() else None)
    QTimer.singleShot(int(timeout_s * 1000), loop.quit)
    poll.start()
    loop.exec()
    poll.stop()
    return cond()


def scroll_through(view, seconds: float = 1.0, start: float = 0.0, end: float = 1.0) -> None:
    """Scroll the grid from ``start`` to ``end`` (fractions of its height) in 16 ms steps, as a fast flick would."""
    from PySide6.QtCore import QTimer

    bar = view.verticalScrollBar()
    steps = max(1, int(seconds * 1000 / 16))
    state = {"i": 0}
    timer = QTimer(interval=16)

    def step() -> None:
        state["i"] += 1
        bar.setValue(int(bar.maximum() * (start + (end - start) * state["i"] / steps)))
        if state["i"] >= steps:
            timer.stop()

    timer.timeout.connect(step)
    timer.start()
    wait_for(lambda: not timer.isActive(), seconds * 4 + 5)


def synthetic_library(work: Path, images: int, model: str, device: str) -> tuple[Path, Path]:
    """A library of ``images`` files in folders of :data:`PER_FOLDER`, plus the real images they copy.

    24 real generated images are indexed with the model; the rest are symlinks to them (so
    every tile decodes a real file) whose rows carry copies of the real vectors, written
    through the library's own writer in batches. Returns the library folder and the big root.
    """
    from core.embedder import Embedder
    from core.indexer import index_folders
    from core.library import Library
    from core.modelfile import load_model
    from core.writer import ImageFile
    from bench.collection import make_collection

    sources = make_collection(work / "sources", styles=8, per_style=3, size=(320, 240))
    library_dir, big = work / "big-library", work / "big"
    with Library.open(library_dir) as library:
        embedder = Embedder(load_model(model or None), device=device)
        for _ in index_folders(library, [work / "sources"], embedder, workers=0):
            pass
        found = {str(p): library.find_image(p)[0] for p in sources}
        raw = library.raw_vectors(list(found.values()))
        root = library.add_root(big)
        files, vectors = [], {}
        for i in range(images):
            source = sources[i % len(sources)]
            path = big / f"folder-{i // PER_FOLDER:03d}" / f"image-{i:06d}{source.suffix}"
            path.parent.mkdir(parents=True, exist_ok=True)
            if not path.is_symlink():
                path.symlink_to(source)
            st = path.stat()
            files.append(ImageFile(str(path), root.id, path.relative_to(big).as_posix(), st.st_size, st.st_mtime_ns))
            vectors[str(path)] = (raw[found[str(source)]], (320, 240))
        model_id = library.model_record().id
        with library.writer() as w:
            for start in range(0, images, 5000):
                part = files[start:start + 5000]
                w.commit_batch(model_id, part, {f.path: vectors[f.path] for f in part}, {})
    return library_dir, big


def time_browse(library_dir: Path, big: Path) -> dict:
    """Milliseconds per ``Library.browse`` and ``folder_counts`` call on the big library (best of 3)."""
    from core.library import Library

    cases = {"all_by_name": (None, "name", ""), "all_by_modified": (None, "modified", ""),
             "all_by_size": (None, "size", ""), "one_folder": (str(big / "folder-007"), "name", ""),
             "name_filter": (None, "name", "image-0123")}
    out = {}
    with Library.open(library_dir) as library:
        for name, args in cases.items():
            best, rows = float("inf"), 0
            for _ in range(3):
                t = time.perf_counter()
                rows = len(library.browse(*args))
                best = min(best, time.perf_counter() - t)
            out[name] = {"ms": round(best * 1000, 1), "rows": rows}
        t = time.perf_counter()
        folders = len(library.folder_counts())
        out["folder_counts"] = {"ms": round((time.perf_counter() - t) * 1000, 1), "folders": folders}
    return out


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
    parser.add_argument("--phases", default=",".join(PHASES), help=f"comma-separated, of {', '.join(PHASES)}")
    parser.add_argument("--library-images", type=int, default=100_000, help="images in the library phase")
    args = parser.parse_args(argv)
    phases = set(args.phases.split(","))

    from bench.screenshots import isolate

    work = Path(tempfile.mkdtemp(prefix="aladin-bench-gui-"))
    isolate(work)

    from PySide6.QtWidgets import QApplication

    from bench.probe import EventLoopProbe

    app = QApplication.instance() or QApplication(sys.argv[:1])  # noqa: F841 (kept alive for the run)
    report: dict = {"machine": f"{platform.machine()}, {os.cpu_count()} CPU cores, {platform.python_version()}",
                    "model": args.model, "device": args.device}
    profiler = None
    if args.profile:
        import cProfile

        profiler = cProfile.Profile()
        profiler.enable()
    if phases & {"index", "search"}:
        report.update(search_phases(args, work, phases, EventLoopProbe))
    if "library" in phases:
        report["library"] = library_phase(args, work, EventLoopProbe)
    if profiler is not None:
        profiler.disable()
        profiler.dump_stats(str(args.profile))
    print(json.dumps(report, indent=2))
    gaps = [part["max_gap_ms"] for part in (report.get("indexing"), report.get("search"),
                                            report.get("library", {}).get("scrolling")) if part]
    return 0 if max(gaps, default=0) <= 100 else 1


def make_window(work: Path, args, library_dir: Path, name: str):
    from app.engine import Engine
    from app.mainwindow import MainWindow
    from app.options import Settings

    settings = Settings(work / f"{name}.ini")
    settings.set("model", args.model)
    settings.set("device", args.device)
    settings.set("results_k", args.k)
    engine = Engine()
    if args.workers is not None:
        engine.index_options = {"workers": args.workers}
    window = MainWindow(settings=settings, engine=engine, library_dir=str(library_dir))
    window.resize(1280, 820)
    window.show()
    wait_for(lambda: engine.ready, 120)
    return window


def describer(t0: float, events: list[tuple[float, str]]):
    """Says when a stall happened, and after which event, to explain it."""
    def last_event(t: float) -> str:
        before = [(e, name) for e, name in events if e <= t]
        return f"{before[-1][1]} (+{before[-1][0] - t0:.1f} s)" if before else "start"

    def describe(stall) -> str:
        where = f"cpu {stall.cpu_ms:.0f}"
        if stall.queued_ms is not None:
            where += f", run queue {stall.queued_ms:.0f}, blocked {stall.blocked_ms:.0f}"
        return f"{stall.gap_ms:.0f} ms ({where}) at +{stall.at - t0:.1f} s after {last_event(stall.at)}"
    return describe


def search_phases(args, work: Path, phases: set[str], EventLoopProbe) -> dict:
    """Phase 1: indexing with searches and scrolling meanwhile; phase 2: moodboard edits, each answered,
    then a scroll through the grid."""
    from PySide6.QtCore import QMimeData, QUrl

    from app.moodboard_model import MoodboardEntry
    from app.roles import NegativeRole, WeightRole
    from bench.collection import make_collection

    w_px, h_px = (int(v) for v in args.size.split("x"))
    styles = 14
    paths = make_collection(work / "art", styles=styles, per_style=max(1, args.images // styles), size=(w_px, h_px))
    window = make_window(work, args, work / "library", "search")
    engine = window.engine
    probe = EventLoopProbe(10)
    out: dict = {"images": len(paths), "image_size": args.size}

    events: list[tuple[float, str]] = []  # what was going on, to explain any stall
    engine.index_progress.connect(lambda p: events.append((time.perf_counter(), f"index:{p.phase}"))
                                  if not events or events[-1][1] != f"index:{p.phase}" else None)
    engine.results.connect(lambda req, res: events.append((time.perf_counter(), "results")))
    results_seen = []
    engine.results.connect(lambda req, res: results_seen.append(len(res)))
    probe.start()
    t0 = time.perf_counter()
    describe = describer(t0, events)
    window.library.add_folders([str(work / "art")])
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(paths[0]))])
    window.accept_mime(mime)
    searches_during = 0
    while engine.indexing:
        wait_for(lambda: not engine.indexing, 2.0)
        if engine.indexing and "index" in phases:
            window.moodboard.setData(window.moodboard.index(0), 1.0 + (searches_during % 3) * 0.5, WeightRole)
            searches_during += 1
            scroll_through(window.ui.view, 0.5)
    out["index_seconds"] = round(time.perf_counter() - t0, 1)
    probe.stop()
    if "index" in phases:
        out["searches_while_indexing"] = searches_during
        out["indexing"] = {**probe.summary(), "stalls": [describe(stall) for stall in probe.stalls]}

    if "search" in phases:
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
                window.moodboard.setData(window.moodboard.index(window.moodboard.rowCount() - 1), True,
                                         NegativeRole)
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
        latencies.sort()
        out["search"] = {**probe.summary(), "stalls": [describe(stall) for stall in probe.stalls],
                         "searches": len(latencies), "k": args.k,
                         "median_latency_ms": round(latencies[len(latencies) // 2], 1),
                         "max_latency_ms": round(latencies[-1], 1)}
    window.close()
    return out


def library_phase(args, work: Path, EventLoopProbe) -> dict:
    """Phase 3: a big library's view is opened, scrolled, re-sorted, narrowed to a folder and filtered by name."""
    n = args.library_images
    t = time.perf_counter()
    library_dir, big = synthetic_library(work, n, args.model, args.device)
    out: dict = {"images": n + 24, "build_seconds": round(time.perf_counter() - t, 1),
                 "browse": time_browse(library_dir, big)}
    t = time.perf_counter()
    window = make_window(work, args, library_dir, "library")
    model, pane = window.library_model, window.ui.library_pane
    wait_for(lambda: model.rowCount() == n + 24, 120)
    out["shown_seconds"] = round(time.perf_counter() - t, 1)
    view = pane.view
    events: list[tuple[float, str]] = []
    probe = EventLoopProbe(10)
    probe.start()
    t0 = time.perf_counter()
    describe = describer(t0, events)

    resets = []
    model.modelReset.connect(lambda: resets.append(time.perf_counter()))

    def step(name: str, action, new_rows: bool = False) -> None:
        """Do ``action`` and, when it changes the rows, wait until they are shown."""
        events.append((time.perf_counter(), name))
        before = len(resets)
        action()
        if new_rows:
            wait_for(lambda: len(resets) > before, 60)
            wait_for(lambda: False, 0.3)  # let the grid lay out and paint

    step("scroll all", lambda: scroll_through(view, 3.0))
    step("scroll back", lambda: scroll_through(view, 2.0, 1.0, 0.0))
    step("sort by size", lambda: pane.set_sort("size"), True)
    step("scroll middle", lambda: scroll_through(view, 1.0, 0.4, 0.6))
    step("one folder", lambda: pane.folders.choose(str(big / "folder-042")), True)
    step("scroll folder", lambda: scroll_through(view, 1.0))
    step("all folders", lambda: pane.folders.choose(None), True)
    step("name filter", lambda: pane.name_edit.setText("image-0999"), True)
    step("clear filter", lambda: pane.name_edit.clear(), True)
    step("scroll all again", lambda: scroll_through(view, 3.0))
    probe.stop()
    out["scrolling"] = {**probe.summary(), "stalls": [describe(stall) for stall in probe.stalls],
                        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)}
    window.close()
    return out


if __name__ == "__main__":
    sys.exit(main())
