"""The library commands behind :mod:`core.cli.library`'s parsers.

They only drive the engine (core.indexer, core.search, core.repair) and print;
the GUI calls the same engine functions.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import signal
import sys
from dataclasses import asdict
from pathlib import Path

from tqdm import tqdm

from core.cli.options import check_batch_options
from core.calibration import parse_min_score
from core.cli.output import print_lines
from core.clusters import StyleClusters
from core.duplicates import find_duplicates
from core.embedder import Embedder
from core.errors import LibraryError, QueryError
from core.indexer import IndexSummary, index_folders
from core.library import Library, ModelRecord
from core.modelfile import load_model
from core.query import QueryItem, SearchFilters
from core.repair import RepairReport, repair
from core.search import Searcher

FAILURES_SHOWN = 20


def _model_spec(args: argparse.Namespace, library: Library) -> str | None:
    """``--model`` if given, else the model the library was built with."""
    if args.model is not None:
        return args.model
    record = library.model_record()
    if record is None:
        return None
    return record.source.removeprefix("builtin:")


@contextlib.contextmanager
def _cancel_on_ctrl_c():
    """First Ctrl-C asks the job to stop after the current batch; a second one aborts at once."""
    flag = {"stop": False}

    def handler(signum, frame):
        if flag["stop"]:
            raise KeyboardInterrupt
        flag["stop"] = True
        print("\naladin: stopping after the current batch (Ctrl-C again to abort)", file=sys.stderr)

    try:
        previous = signal.signal(signal.SIGINT, handler)
    except ValueError:  # not the main thread
        yield lambda: False
        return
    try:
        yield lambda: flag["stop"]
    finally:
        signal.signal(signal.SIGINT, previous)


def run_index(args: argparse.Namespace) -> int:
    check_batch_options(args)
    with Library.open(args.library) as library:
        library.check_writable()  # before minutes of model loading and scanning
        record = library.model_record()
        spec = _model_spec(args, library)
        if not args.folders and not library.roots():
            raise LibraryError("the library has no folders yet; name one: aladin index FOLDER")
        model = load_model(spec)
        embedder = Embedder(model, device=args.device,
                            which=record.which if record and args.model is None else None)
        summary = None
        bar = None
        phase = None
        with _cancel_on_ctrl_c() as cancel:
            try:
                for progress in index_folders(library, args.folders, embedder, cancel, switch_model=args.switch_model,
                                              batch_size=args.batch_size, workers=args.workers):
                    if progress.phase != phase:
                        if bar is not None:
                            bar.close()
                        phase = progress.phase
                        bar = tqdm(total=progress.total or None, desc=progress.phase, unit="img",
                                   file=sys.stderr, disable=None, dynamic_ncols=True)
                    bar.total = progress.total or None
                    bar.n = progress.done
                    bar.refresh()
                    summary = progress.summary or summary
            finally:
                if bar is not None:
                    bar.close()
    _print_summary(summary)
    return 130 if summary.cancelled else 0


def _print_summary(s: IndexSummary) -> None:
    print(f"added {s.added}, updated {s.updated}, moved {s.moved}, removed {s.removed}, failed {s.failed}, "
          f"unchanged {s.unchanged} in {s.seconds:.1f} s" + (" (stopped early; run again to continue)"
                                                             if s.cancelled else ""), file=sys.stderr)
    for failure in s.failures[:FAILURES_SHOWN]:
        print(f"  failed: {failure.path}: {failure.reason}", file=sys.stderr)
    if len(s.failures) > FAILURES_SHOWN:
        print(f"  ... and {len(s.failures) - FAILURES_SHOWN} more (aladin status --failures)", file=sys.stderr)
    for root in s.missing_roots:
        print(f"  missing folder (kept, not rescanned): {root}", file=sys.stderr)


def run_remove(args: argparse.Namespace) -> int:
    with Library.open(args.library) as library:
        n = library.remove_root(args.folder)
    print(f"removed {n} images under {args.folder.resolve()}", file=sys.stderr)
    return 0


def _items(images: list[str], negatives: list[str], weights: str | None) -> list[QueryItem]:
    if weights is None:
        values = [1.0] * len(images)
    else:
        try:
            values = [float(w) for w in weights.split(",")]
        except ValueError as exc:
            raise QueryError(f"--weights must be numbers separated by commas, got {weights!r}") from exc
        if len(values) != len(images):
            raise QueryError(f"--weights has {len(values)} values for {len(images)} images")
    return ([QueryItem(str(Path(p).resolve()), w) for p, w in zip(images, values)]
            + [QueryItem(str(Path(p).resolve()), 1.0, negative=True) for p in negatives])


def _open_searcher(args: argparse.Namespace, library: Library) -> tuple[ModelRecord, Searcher]:
    """The library's model record and a searcher with its model (or ``--model``, which must match it)."""
    record = library.model_record()
    if record is None:
        raise LibraryError(f"the library {library.folder} is empty; index a folder first (aladin index FOLDER)")
    embedder = Embedder(load_model(_model_spec(args, library)), device=args.device, which=record.which)
    return record, Searcher(library, embedder)


def _search(args: argparse.Namespace, library: Library, items: list[QueryItem]) -> int:
    min_score = parse_min_score(args.min_score) if args.min_score is not None else None
    record, searcher = _open_searcher(args, library)
    filters = SearchFilters(roots=args.root, folder=args.folder, exclude_query_folders=args.exclude_query_folder,
                            k=args.k, min_score=min_score, csls=args.csls,
                            expand=args.expand)
    results = searcher.search(items, filters)
    if args.json:
        print_lines([json.dumps({"model": record.name, "query": [asdict(i) for i in items],
                                 "results": [{"path": r.path, "score": round(r.score, 6), "rank": r.rank,
                                              "calibrated": _rounded(r.percentile), "label": r.label}
                                             for r in results]}, ensure_ascii=False)])
    else:
        print_lines(f"{r.rank:3d}  {r.score:.4f}  {_calibrated(r)}  {r.path}" for r in results)
    return 0


def _rounded(percentile: float | None) -> float | None:
    return None if percentile is None else round(percentile, 1)


def _calibrated(result) -> str:
    """The calibrated score and its label in fixed-width columns ("-" where there is none)."""
    if result.percentile is None:
        return f"{'-':>5s} {'':10s}"
    return f"{result.percentile:5.1f} {result.label:10s}"


def run_search(args: argparse.Namespace) -> int:
    with Library.open(args.library) as library:
        return _search(args, library, _items(args.images, args.negative, args.weights))


def run_moodboard_create(args: argparse.Namespace) -> int:
    items = _items(args.images, args.negative, args.weights)
    for item in items:
        if not Path(item.path).is_file():
            raise QueryError(f"{item.path}: no such image file")
    with Library.open(args.library) as library:
        library.save_moodboard(args.name, items)
    print(f"saved moodboard {args.name!r} with {len(items)} images", file=sys.stderr)
    return 0


def run_moodboard_list(args: argparse.Namespace) -> int:
    with Library.open(args.library) as library:
        for name in library.moodboards():
            print(name)
    return 0


def run_moodboard_show(args: argparse.Namespace) -> int:
    with Library.open(args.library) as library:
        items = library.load_moodboard(args.name)
    if args.json:
        print(json.dumps({"name": args.name, "items": [asdict(i) for i in items]}, ensure_ascii=False))
    else:
        for item in items:
            mark = "-" if item.negative else "+"
            print(f"{mark} {item.weight:g}  {item.path}")
    return 0


def run_moodboard_rename(args: argparse.Namespace) -> int:
    with Library.open(args.library) as library:
        library.rename_moodboard(args.name, args.new_name)
    return 0


def run_moodboard_delete(args: argparse.Namespace) -> int:
    with Library.open(args.library) as library:
        library.delete_moodboard(args.name)
    return 0


def run_moodboard_search(args: argparse.Namespace) -> int:
    with Library.open(args.library) as library:
        return _search(args, library, library.load_moodboard(args.name))


def run_status(args: argparse.Namespace) -> int:
    with Library.open(args.library) as library:
        status = library.status()
        failures = library.failures() if args.failures else []
    if args.json:
        out = asdict(status)
        if args.failures:
            out["failures"] = [asdict(f) for f in failures]
        print(json.dumps(out, ensure_ascii=False))
        return 0
    model = status.model
    print(f"library: {status.folder} (schema {status.schema_version})")
    print(f"model: {model.name} v{model.version}, {model.which} vectors, {model.dim}-D ({model.source})"
          if model else "model: none yet")
    print(f"images: {status.images} ({status.indexed} indexed, {status.failed} failed, {status.pending} pending)")
    print(f"index: {status.index.get('state')}: {status.index.get('detail')}")
    for root in status.roots:
        missing = "" if root.exists else "  [folder missing]"
        print(f"  {root.path}: {root.images} images, {root.failed} failed{missing}")
    for failure in failures:
        print(f"failed: {failure.path}: {failure.reason}")
    return 0


def run_clusters(args: argparse.Namespace) -> int:
    with Library.open(args.library) as library:
        clusters = StyleClusters.for_searcher(_open_searcher(args, library)[1])
        with _cancel_on_ctrl_c() as cancel:
            styles = (clusters.recompute if args.recompute else clusters.current)(args.k, cancel)
    if styles is None:
        print("aladin: stopped before the clusters were computed", file=sys.stderr)
        return 130
    if args.json:
        print_lines([json.dumps({"k": styles.k, "requested_k": styles.requested_k, "images": styles.count,
                                 "assigned": styles.assigned,
                                 "clusters": [{"id": c.id, "size": c.size, "cohesion": round(c.cohesion, 6),
                                               "representatives": c.representatives} for c in styles.clusters]},
                                ensure_ascii=False)])
        return 0
    since = f"; {styles.assigned} changed since, placed in their nearest style" if styles.assigned else ""
    lines = [f"{len(styles.clusters)} styles in {styles.count} images{since}"]
    for c in styles.clusters:
        lines.append(f"{c.title} (id {c.id}): {c.size} images, cohesion {c.cohesion:.3f}")
        lines.extend(f"  {path}" for path in c.representatives)
    print_lines(lines)
    return 0


def run_duplicates(args: argparse.Namespace) -> int:
    with Library.open(args.library) as library:
        index = _open_searcher(args, library)[1].cache.current() if library.model_record() else None
        with _cancel_on_ctrl_c() as cancel:
            report = find_duplicates(library, index, cancel=cancel)
    if report is None:
        print("aladin: stopped before the duplicates were found", file=sys.stderr)
        return 130
    if args.json:
        print_lines([json.dumps({"groups": [asdict(g) for g in report.groups],
                                 "skipped": [asdict(f) for f in report.skipped],
                                 "pairs_checked": report.pairs_checked, "seconds": round(report.seconds, 3)},
                                ensure_ascii=False)])
        return 0
    lines = []
    for n, group in enumerate(report.groups, 1):
        lines.append(f"group {n}: {len(group.files)} {'identical files' if group.exact else 'copies'}")
        lines.extend(f"  {_dimensions(f.width, f.height):>11s}  {f.size:>11,d} B  {f.path}" for f in group.files)
    print_lines(lines)
    files = sum(len(g.files) for g in report.groups)
    print(f"{len(report.groups)} groups of duplicates ({files} files); {report.pairs_checked} similar pairs "
          f"compared in {report.seconds:.1f} s", file=sys.stderr)
    for failure in report.skipped:
        print(f"  skipped: {failure.path}: {failure.reason}", file=sys.stderr)
    return 0


def _dimensions(width: int | None, height: int | None) -> str:
    return f"{width}x{height}" if width and height else "?"


def run_repair(args: argparse.Namespace) -> int:
    _print_repair(repair(args.library))
    return 0


def _print_repair(report: RepairReport) -> None:
    if report.kept is None:
        print(f"{report.database}: no damage found, nothing to repair")
        return
    more = f" (and {len(report.problems) - 1} more)" if len(report.problems) > 1 else ""
    print(f"{report.database}: {report.problems[0]}{more}")
    if not report.tables:
        print("  nothing in it could be read")
    for table in report.tables:
        lost = "how many were lost is unreadable" if table.lost is None else f"{table.lost} lost"
        print(f"  {table.name}: {table.recovered} recovered, {lost}")
    print(f"repaired; the damaged database is kept as {report.kept}")
    if report.reembed:
        print(f"{report.reembed} images lost their vectors: the next `aladin index` embeds them again")
