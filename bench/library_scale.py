"""Large libraries end to end: open, search, recall, rebuild, memory and a no-op re-index at 10k-1M images.

Usage:
    .venv/bin/python bench/library_scale.py [--sizes 10000,100000] [--work /tmp/aladin-scale]
        [--files-up-to 100000] [--base 3000] [--rebuild-up-to 100000]
    .venv/bin/python bench/library_scale.py --sizes 1000000 --base 20000 --work /tmp/aladin-scale/base20k

Vectors come from the shipped default model (resources/models/default.safetensors,
loaded with core.modelfile.load_model_file): ``--base`` real images of
data/corpus/manifest.csv (generated styled images from bench/styled.py when
data/ is absent) are embedded once, and repeated with a small perturbation and
renormalisation up to each size, so the library has the clusters and
near-duplicates of a real one (random vectors make a graph look better or worse
than it is). 200 further images are the "outside" queries. Keep the copies per
real image near 30-50 (``--base 20000`` for 1M): 333 noisy copies of each of
3,000 images make clusters of points with nearly equal scores in all 128
dimensions, unlike a real collection, and in them the graph found only
two thirds of the exact top 10, whatever ef (0.65 at ef 200, 0.69 at 1600,
built with ef_construction 100).

Each library is a real one: rows and vectors go in through
core.writer.LibraryWriter.commit_batch, as core.indexer commits an embedded
batch. Up to ``--files-up-to`` images the rows are tiny real image files on disk
(created once under --work/files-N/, 10 top folders of 100-file folders), with
the size, mtime and path the scan reports, so the timed no-op re-index
(core.indexer.index_folders on the unchanged tree) reads what it would read in
use; larger libraries get paths without files and no re-index figure.

The measurements run in a fresh process per size (``--measure``), so open time
and memory are those of an app opening the library. Everything is kept under
--work and reused by later runs.
"""

from __future__ import annotations

import argparse
import csv
import json
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

MODEL = ROOT / "resources" / "models" / "default.safetensors"
MANIFEST = ROOT / "data" / "corpus" / "manifest.csv"
OUTSIDE = 200
PER_FOLDER, TOP_FOLDERS = 100, 10
COMMIT_ROWS = 5000
# Relative size of the perturbation of a repeated vector's network part. At 0.3 a copy is as
# near its original (cosine 0.97) as a real image's nearest neighbour among the real ones is
# for the closest third of them (printed as "calibration"): a series, not exact duplicates.
NOISE = 0.3


def load_embedder():
    from core.embedder import Embedder
    from core.modelfile import load_model_file

    return Embedder(load_model_file(MODEL), device="cpu")


# -- the vectors -----------------------------------------------------------------------------------------
def source_images(work: Path, count: int) -> list[str]:
    """``count`` image paths spread over the corpus's groups, or generated ones without data/."""
    if MANIFEST.is_file():
        with open(MANIFEST, newline="", encoding="utf-8") as fh:
            paths = [row["path"] for row in csv.DictReader(fh)]
        picked = np.random.default_rng(0).permutation(len(paths))[:count]
        return [paths[i] for i in picked]
    from PIL import Image

    from styled import styled_array

    folder = work / "styled"
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for i in range(count):
        path = folder / f"{i:05d}.png"
        if not path.exists():
            Image.fromarray(styled_array(i // 10, i % 10, 128)).save(path)
        out.append(str(path))
    return out


def base_file(work: Path, count: int, embedder) -> Path:
    return work / f"base-{count}-{embedder.model.checksum[:12]}.npz"


def base_vectors(work: Path, embedder, count: int) -> tuple[np.ndarray, list[str]]:
    """Raw vectors of ``count`` real images, and the paths of the outside query images (embedded once)."""
    cache = base_file(work, count, embedder)
    if cache.exists():
        data = np.load(cache)
        return data["raw"], [str(p) for p in data["outside"]]
    paths = source_images(work, count + OUTSIDE * 2)
    raw, done, t0 = [], [], time.perf_counter()
    for chunk in embedder.embed_chunks(paths[:count + OUTSIDE], batch_size=64, workers=2):
        raw.append(chunk.raw)
        done += chunk.paths
        print(f"\rembedded {len(done)} ({len(done) / (time.perf_counter() - t0):.0f}/s)", end="",
              file=sys.stderr, flush=True)
    print(file=sys.stderr)
    raw = np.concatenate(raw)
    # The outside images are the last ones that decoded; the library is made of the others.
    outside = done[-OUTSIDE:]
    raw = raw[:len(done) - OUTSIDE]
    work.mkdir(parents=True, exist_ok=True)
    np.savez(cache, raw=raw, outside=np.array(outside))
    return raw, outside


def repeated(base: np.ndarray, n: int, net_dim: int, seed: int = 0) -> np.ndarray:
    """``n`` raw vectors: the base ones in turn, each copy perturbed and renormalised.

    The network part gets Gaussian noise of ``NOISE`` times its length and is scaled back to
    that length; the colour histogram is scaled by up to 10 % per bin and made to sum as before.
    """
    rng = np.random.default_rng(seed)
    out = base[np.arange(n) % len(base)].copy()
    copies = np.arange(n) >= len(base)
    net = out[copies, :net_dim]
    length = np.linalg.norm(net, axis=1, keepdims=True)
    net = net + rng.normal(0, NOISE / np.sqrt(net_dim), net.shape).astype(np.float32) * length
    out[copies, :net_dim] = net * (length / np.linalg.norm(net, axis=1, keepdims=True))
    colour = out[copies, net_dim:]
    if colour.shape[1]:
        total = colour.sum(1, keepdims=True)
        colour = colour * rng.uniform(0.9, 1.1, colour.shape).astype(np.float32)
        out[copies, net_dim:] = colour * (total / np.maximum(colour.sum(1, keepdims=True), 1e-12))
    return out


def calibration(embedder, base: np.ndarray) -> dict:
    """How near a perturbed copy is to its original, against how near real images are to each other."""
    unit = embedder.finish(base)
    sims = unit @ unit.T
    np.fill_diagonal(sims, -1)
    nearest = np.percentile(sims.max(1), [10, 50, 90])
    copy = embedder.finish(repeated(base, 2 * len(base), embedder.net_dim, seed=9)[len(base):])
    return {"copy_to_original_cos_median": round(float(np.median((copy * unit).sum(1))), 3),
            "real_nearest_neighbour_cos_p10_p50_p90": [round(float(x), 3) for x in nearest]}


# -- the files and the library ---------------------------------------------------------------------------
def relpath(i: int) -> str:
    folder = i // PER_FOLDER
    return f"g{folder % TOP_FOLDERS}/f{folder:05d}/{i:07d}.png"


def make_files(tree: Path, n: int) -> None:
    """``n`` distinct tiny PNG files, made once (``.done`` marks a finished tree)."""
    if (tree / ".done").exists():
        return
    from PIL import Image

    rng = np.random.default_rng(3)
    t0 = time.perf_counter()
    for i in range(n):
        path = tree / relpath(i)
        if i % PER_FOLDER == 0:
            path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 256, (4, 4, 3), dtype=np.uint8)).save(path)
        if i % 10_000 == 9_999:
            print(f"\rfiles {i + 1}/{n} ({(i + 1) / (time.perf_counter() - t0):.0f}/s)", end="", file=sys.stderr,
                  flush=True)
    print(file=sys.stderr)
    (tree / ".done").touch()


def library_folder(work: Path, n: int, embedder) -> Path:
    """Each model gets its own libraries: vectors of another model must never be measured as this one's."""
    return work / f"lib-{n}-{embedder.model.checksum[:12]}"


def build_library(work: Path, n: int, raw: np.ndarray, embedder, with_files: bool) -> dict:
    """A library of ``n`` images with ``raw`` vectors, written through the library's writer."""
    from core.files import content_hash
    from core.index_cache import IndexCache, fingerprint
    from core.library import Library
    from core.scan import scan
    from core.writer import ImageFile

    folder, tree = library_folder(work, n, embedder), work / f"files-{n}"
    if (folder / "bench-built").exists():
        return json.loads((folder / "bench-built").read_text())
    shutil.rmtree(folder, ignore_errors=True)
    if with_files:
        make_files(tree, n)
        entries = {e.relpath: e for e in scan(tree)}
    else:
        tree.mkdir(parents=True, exist_ok=True)
    model = embedder.model
    t0 = time.perf_counter()
    with Library.open(folder) as lib:
        root = lib.add_root(tree)
        with lib.writer() as w:
            model_id = w.set_model(name=model.info.name, version=str(model.info.version), dim=embedder.dim,
                                   checksum=model.checksum, which=embedder.which, source=model.source)
            for start in range(0, n, COMMIT_ROWS):
                files = []
                for i in range(start, min(start + COMMIT_ROWS, n)):
                    rel = relpath(i)
                    if with_files:
                        e = entries[rel]
                        files.append(ImageFile(str(tree / rel), root.id, rel, e.size, e.mtime_ns,
                                               digest=content_hash(tree / rel)))
                    else:
                        files.append(ImageFile(str(tree / rel), root.id, rel, 100 + i % 50, i, digest=f"{i:064x}"))
                w.commit_batch(model_id, files, {f.path: (raw[start + j], (4, 4)) for j, f in enumerate(files)}, {})
                print(f"\rlibrary {n}: {start + len(files)} rows", end="", file=sys.stderr, flush=True)
        print(file=sys.stderr)
        fill = time.perf_counter() - t0
        t0 = time.perf_counter()
        # As the indexer ends a run: the search index is built and saved for the next process to load.
        IndexCache(lib, embedder.finish, fingerprint(embedder), embedder.dim).save()
    info = {"fill_s": round(fill, 1), "first_index_build_s": round(time.perf_counter() - t0, 1), "files": with_files}
    (folder / "bench-built").write_text(json.dumps(info))
    return info


# -- measuring, in a fresh process -----------------------------------------------------------------------
def rss_mb() -> float:
    with open("/proc/self/status", encoding="ascii") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def percentiles(times: list[tuple[float, float]]) -> dict:
    """p50/p95 of wall time, and of this process's CPU time: on a shared machine the wall time
    measures the other processes too, the CPU time what a search costs."""
    wall, cpu = (np.array(x) * 1000 for x in zip(*times))
    return {"p50_ms": round(float(np.percentile(wall, 50)), 1), "p95_ms": round(float(np.percentile(wall, 95)), 1),
            "cpu_p50_ms": round(float(np.percentile(cpu, 50)), 1),
            "cpu_p95_ms": round(float(np.percentile(cpu, 95)), 1)}


class Timer:
    """Wall and CPU time of a ``with`` block, appended to ``times``."""

    def __init__(self, times: list[tuple[float, float]]) -> None:
        self.times = times

    def __enter__(self) -> None:
        self.wall, self.cpu = time.perf_counter(), time.process_time()

    def __exit__(self, *exc) -> None:
        self.times.append((time.perf_counter() - self.wall, time.process_time() - self.cpu))


def recall(index, unit: np.ndarray, ids: np.ndarray, queries: np.ndarray, allowed: np.ndarray | None,
           k: int = 10) -> float:
    """recall@k of ``index`` against exact search over ``unit`` (rows labelled ``ids``)."""
    from core.vector_index import scores, top_k

    mask = np.isin(ids, allowed) if allowed is not None else slice(None)
    hits = 0
    for q in queries:
        want = set(top_k(ids[mask], scores(unit[mask], q), k)[0].tolist())
        got = set(index.query(q, k, allowed)[0].tolist())
        hits += len(want & got)
    return round(hits / (k * len(queries)), 4)


def measure(work: Path, n: int, outside: list[str], queries: int, rebuild_up_to: int) -> dict:
    """Open the library as an app would, then time searches, check recall, rebuild and re-index."""
    import torch

    from core.index_cache import IndexCache, fingerprint
    from core.indexer import index_folders
    from core.library import Library
    from core.query import QueryItem, SearchFilters
    from core.search import Searcher

    torch.set_num_threads(1)
    out: dict = {"images": n}
    t0 = time.perf_counter()
    embedder = load_embedder()
    folder, tree = library_folder(work, n, embedder), work / f"files-{n}"
    out["model_load_s"] = round(time.perf_counter() - t0, 2)
    base_rss = rss_mb()
    opening: list[tuple[float, float]] = []
    with Timer(opening):
        lib = Library.open(folder)
        searcher = Searcher(lib, embedder)
        index = searcher.cache.current()
    out["open_s"], out["open_cpu_s"] = (round(x, 2) for x in opening[0])
    out["index"] = index.kind
    out["rss_library_mb"] = round(rss_mb() - base_rss)
    rng = np.random.default_rng(5)
    picks = [int(i) for i in rng.integers(1, n + 1, queries)]
    big, small = str(tree / "g3"), str(tree / relpath(int(n * 0.37)) .rsplit("/", 1)[0])
    runs = {"library_image": SearchFilters(k=20), "folder_10pct": SearchFilters(k=20, folder=big),
            "folder_100": SearchFilters(k=20, folder=small)}
    for name, filters in runs.items():
        times = []
        for image_id in picks:
            with Timer(times):
                results = searcher.more_like(image_id, filters)
        assert len(results) == 20, (name, len(results))
        out[f"search_{name}"] = percentiles(times)
    times = []
    for path in outside[:min(50, queries)]:
        with Timer(times):
            searcher.search([QueryItem(path)], SearchFilters(k=20))
    out["search_outside_incl_embed"] = percentiles(times)

    ids, parts = [], []
    for part_ids, raw, _ in lib.iter_vectors(0):
        ids.append(part_ids)
        parts.append(embedder.finish(raw))
    ids, unit = np.concatenate(ids), np.concatenate(parts)
    del parts
    position = {int(i): p for p, i in enumerate(ids)}
    library_q = unit[[position[i] for i in picks[:100]]]
    outside_q = embedder.embed_paths(outside[:100], batch_size=50, workers=0)[0]
    allowed = np.fromiter(lib.ids_under([big]), np.int64)
    out["recall@10_library"] = recall(index, unit, ids, library_q, None)
    out["recall@10_outside"] = recall(index, unit, ids, outside_q, None)
    out["recall@10_folder_10pct"] = recall(index, unit, ids, library_q, allowed)
    del unit
    out["rss_peak_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    disk = sum(p.stat().st_size for p in folder.iterdir() if p.is_file())
    out["disk_mb"] = round(disk / 2**20)
    if n <= rebuild_up_to:
        rebuild: list[tuple[float, float]] = []
        with Timer(rebuild):
            IndexCache(lib, embedder.finish, fingerprint(embedder), embedder.dim).rebuild()
        out["rebuild_s"], out["rebuild_cpu_s"] = (round(x, 1) for x in rebuild[0])
    if json.loads((folder / "bench-built").read_text())["files"]:
        reindex: list[tuple[float, float]] = []
        with Timer(reindex):
            summary = list(index_folders(lib, [], embedder))[-1].summary
        out["noop_reindex_s"], out["noop_reindex_cpu_s"] = (round(x, 2) for x in reindex[0])
        assert summary.unchanged == n and summary.embedded == 0 and summary.removed == 0, summary
    lib.close()
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", default="10000,100000")
    p.add_argument("--work", type=Path, default=Path("/tmp/aladin-scale"))
    p.add_argument("--files-up-to", type=int, default=100_000, help="larger libraries get no files on disk")
    p.add_argument("--base", type=int, default=3000, help="real images embedded")
    p.add_argument("--queries", type=int, default=200)
    p.add_argument("--rebuild-up-to", type=int, default=100_000,
                   help="larger libraries report their first build (and save) instead of a second, timed rebuild")
    p.add_argument("--measure", type=int, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    args.work.mkdir(parents=True, exist_ok=True)
    if args.measure:
        outside = [str(x) for x in np.load(base_file(args.work, args.base, load_embedder()))["outside"]]
        print(json.dumps(measure(args.work, args.measure, outside, args.queries, args.rebuild_up_to)))
        return 0
    embedder = load_embedder()
    base, _ = base_vectors(args.work, embedder, args.base)
    report = {"model": str(MODEL.relative_to(ROOT)), "dim": embedder.dim, "real_images": len(base),
              "calibration": calibration(embedder, base), "sizes": []}
    print(json.dumps(report["calibration"]), file=sys.stderr)
    for n in [int(x) for x in args.sizes.split(",") if x]:
        built = build_library(args.work, n, repeated(base, n, embedder.net_dim), embedder, n <= args.files_up_to)
        child = subprocess.run([sys.executable, __file__, "--work", str(args.work), "--base", str(args.base),
                                "--queries", str(args.queries), "--rebuild-up-to", str(args.rebuild_up_to),
                                "--measure", str(n)],
                               capture_output=True, text=True, check=False)
        if child.returncode:
            print(child.stderr, file=sys.stderr)
            return child.returncode
        row = {**built, **json.loads(child.stdout.strip().splitlines()[-1])}
        report["sizes"].append(row)
        print(json.dumps(row), file=sys.stderr)
    print(json.dumps(report, indent=1))
    print(table(report["sizes"]))
    return 0


def table(rows: list[dict]) -> str:
    """The figures as a Markdown table, one column per size."""
    fields = [("open_s", "open (s)"), ("open_cpu_s", "open, CPU (s)"),
              ("search_library_image", "search, library image p50/p95 ms (CPU)"),
              ("search_folder_10pct", "search, 10 % folder filter p50/p95 ms (CPU)"),
              ("search_folder_100", "search, 100-image folder p50/p95 ms (CPU)"),
              ("search_outside_incl_embed", "search, outside image incl. embedding p50/p95 ms (CPU)"),
              ("recall@10_library", "recall@10, library images"), ("recall@10_outside", "recall@10, outside images"),
              ("recall@10_folder_10pct", "recall@10, 10 % folder filter"), ("rebuild_s", "index rebuild (s)"),
              ("rebuild_cpu_s", "index rebuild, CPU (s)"),
              ("rss_library_mb", "RSS of the open library (MB)"), ("rss_peak_mb", "peak RSS of the run (MB)"),
              ("disk_mb", "library folder on disk (MB)"), ("noop_reindex_s", "no-op re-index (s)"),
              ("noop_reindex_cpu_s", "no-op re-index, CPU (s)"),
              ("fill_s", "writing the rows (s)"), ("first_index_build_s", "first index build and save (s)")]
    head = "| | " + " | ".join(f"{r['images']:,}" for r in rows) + " |"
    lines = [head, "|---" * (len(rows) + 1) + "|"]
    for key, label in fields:
        cells = []
        for r in rows:
            v = r.get(key, "-")
            cells.append(f"{v['p50_ms']} / {v['p95_ms']} ({v['cpu_p50_ms']} / {v['cpu_p95_ms']})"
                         if isinstance(v, dict) else str(v))
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
