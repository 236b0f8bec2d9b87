"""Library commands: ``aladin index``, ``remove``, ``search``, ``moodboard``, ``status`` and ``repair``.

They only parse arguments, drive the engine (core.indexer, core.search, core.repair)
and print; the GUI calls the same engine functions.
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

from core.cli.options import add_model_options, check_batch_options
from core.cli.output import print_lines
from core.embedder import Embedder
from core.errors import LibraryError, QueryError
from core.indexer import IndexSummary, index_folders
from core.library import Library
from core.modelfile import load_model
from core.query import QueryItem, SearchFilters
from core.repair import RepairReport, repair
from core.search import Searcher

FAILURES_SHOWN = 20


def register(sub: argparse._SubParsersAction) -> None:

    p = sub.add_parser("index", help="add art folders to the library and bring it up to date")
    p.add_argument("folders", nargs="*", type=Path, metavar="FOLDER",
                   help="folders to add or rescan (default: rescan every folder in the library)")
    _add_library_option(p)
    add_model_options(p)
    p.add_argument("--switch-model", action="store_true",
                   help="allow re-embedding the whole library with a different model")
    p.add_argument("--batch-size", type=int, default=32, metavar="N")
    p.add_argument("--workers", type=int, default=None, metavar="N",
                   help="decoding processes (default: cores - 1, up to 8, with a GPU; about a fifth of the "
                        "cores when the model runs on the CPU, which gets the rest; 0 decodes in-process)")
    p.set_defaults(func=run_index)

    p = sub.add_parser("remove", help="remove a folder (and its images) from the library")
    p.add_argument("folder", type=Path, metavar="FOLDER")
    _add_library_option(p)
    p.set_defaults(func=run_remove)

    p = sub.add_parser("search", help="find images in the style of one image or a moodboard of several")
    p.add_argument("images", nargs="+", metavar="IMAGE")
    p.add_argument("--negative", nargs="+", action="extend", default=[], metavar="IMAGE",
                   help="images whose style the results should be less like")
    p.add_argument("--weights", default=None, metavar="W1,W2,...",
                   help="one weight per IMAGE (default: all 1)")
    _add_search_options(p)
    p.set_defaults(func=run_search)

    p = sub.add_parser("moodboard", help="saved moodboards: create, list, show, rename, delete, search")
    msub = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    m = msub.add_parser("create", help="save (or replace) a moodboard")
    m.add_argument("name")
    m.add_argument("images", nargs="+", metavar="IMAGE")
    m.add_argument("--negative", nargs="+", action="extend", default=[], metavar="IMAGE")
    m.add_argument("--weights", default=None, metavar="W1,W2,...")
    _add_library_option(m)
    m.set_defaults(func=run_moodboard_create)
    m = msub.add_parser("list", help="list saved moodboards")
    _add_library_option(m)
    m.set_defaults(func=run_moodboard_list)
    m = msub.add_parser("show", help="show a moodboard's images")
    m.add_argument("name")
    m.add_argument("--json", action="store_true")
    _add_library_option(m)
    m.set_defaults(func=run_moodboard_show)
    m = msub.add_parser("rename", help="rename a moodboard")
    m.add_argument("name")
    m.add_argument("new_name")
    _add_library_option(m)
    m.set_defaults(func=run_moodboard_rename)
    m = msub.add_parser("delete", help="delete a moodboard")
    m.add_argument("name")
    _add_library_option(m)
    m.set_defaults(func=run_moodboard_delete)
    m = msub.add_parser("search", help="search with a saved moodboard")
    m.add_argument("name")
    _add_search_options(m)
    m.set_defaults(func=run_moodboard_search)

    p = sub.add_parser("status", help="roots, counts, failures, model and index health")
    _add_library_option(p)
    p.add_argument("--failures", action="store_true", help="list every file that could not be indexed")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=run_status)

    p = sub.add_parser("repair", help="check the library database and recover what is readable from a damaged one")
    _add_library_option(p)
    p.set_defaults(func=run_repair)


def _add_library_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--library", type=Path, default=None, metavar="DIR",
                   help="library folder (default: $ALADIN_LIBRARY or the user data folder)")


def _add_search_options(p: argparse.ArgumentParser) -> None:

    _add_library_option(p)
    add_model_options(p)
    p.add_argument("-k", type=int, default=20, help="how many results (default 20)")
    p.add_argument("--root", action="append", default=None, metavar="DIR",
                   help="only results under this library folder (repeatable)")
    p.add_argument("--folder", default=None, metavar="DIR", help="only results under this sub-folder")
    p.add_argument("--exclude-query-folder", action="store_true",
                   help="leave out results in the same folder as a query image")
    p.add_argument("--json", action="store_true", help="print a JSON object with a 'results' list")


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


def _search(args: argparse.Namespace, library: Library, items: list[QueryItem]) -> int:
    record = library.model_record()
    if record is None:
        raise LibraryError(f"the library {library.folder} is empty; index a folder first (aladin index FOLDER)")
    embedder = Embedder(load_model(_model_spec(args, library)), device=args.device, which=record.which)
    searcher = Searcher(library, embedder)
    filters = SearchFilters(roots=args.root, folder=args.folder, exclude_query_folders=args.exclude_query_folder,
                            k=args.k)
    results = searcher.search(items, filters)
    if args.json:
        print_lines([json.dumps({"model": record.name, "query": [asdict(i) for i in items],
                                 "results": [{"path": r.path, "score": round(r.score, 6), "rank": r.rank}
                                             for r in results]}, ensure_ascii=False)])
    else:
        print_lines(f"{r.rank:3d}  {r.score:.4f}  {r.path}" for r in results)
    return 0


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
