"""Style clustering time at 10k and 100k images, and how well it recovers known styles.

Usage:
    .venv/bin/python bench/clusters.py [--sizes 10000,100000] [--threads 2] [--repeats 3] [--work DIR]

Vectors are synthetic: ``n / 50`` style centres (so 50 images a style on average, sizes drawn from a
Zipf-like law, as real collections are lopsided) at the shipped model's search dimension (320), with
noise that leaves a same-style cosine of about 0.75 and a cross-style one near 0. For each size:

- ``kmeans_s``: :func:`core.clusters.spherical_kmeans` alone at the default k (median of --repeats),
  with the ARI and purity of its clusters against the true styles (k is smaller than the number of
  styles, so purity is bounded by how many styles share a cluster; ARI is reported for comparison
  between runs, not as a target);
- ``recompute_s``: the whole :meth:`core.clusters.StyleClusters.recompute` on a library holding those
  vectors (read from SQLite, finished, clustered, written to the cache file);
- ``cached_s``: :meth:`StyleClusters.current` answering from that file;
- ``assign_s``: ``current`` after 1% more images were written (they join their nearest centroid).

Clustering runs on ``core.clusters.THREADS`` torch threads (--threads overrides it, to compare). One JSON
line per size.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import core.clusters  # noqa: E402
from core.clusters import StyleClusters, adjusted_rand_index, default_k, purity, spherical_kmeans  # noqa: E402
from core.embedder import l2_normalise  # noqa: E402
from core.library import Library  # noqa: E402
from core.writer import ImageFile  # noqa: E402

DIM = 320
PER_STYLE = 50
NOISE = 0.033  # per dimension: |noise| is about 0.6, so a same-style cosine is about 0.75


def synthetic(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(unit vectors, true style of each)."""
    rng = np.random.default_rng(seed)
    styles = max(2, n // PER_STYLE)
    weights = 1.0 / np.arange(1, styles + 1) ** 0.8
    truth = rng.choice(styles, size=n, p=weights / weights.sum())
    centres = l2_normalise(rng.standard_normal((styles, DIM)))
    return l2_normalise(centres[truth] + NOISE * rng.standard_normal((n, DIM))), truth


def write_vectors(library: Library, vectors: np.ndarray, first: int) -> None:
    """Rows for images that need not exist: clustering reads only vectors and paths."""
    root = library.add_root(library.folder / "art")
    model_id = library.model_record().id
    with library.writer() as w:
        for start in range(0, len(vectors), 5000):
            part = range(start, min(start + 5000, len(vectors)))
            files = [ImageFile(f"img{first + i}.png", root.id, f"img{first + i}.png", 1, 1) for i in part]
            w.commit_batch(model_id, files, {f.path: (vectors[i], (64, 64)) for f, i in zip(files, part)}, {})


def one_size(n: int, repeats: int, work: Path) -> dict:
    x, truth = synthetic(n)
    k = default_k(n)
    times, labels = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        _, labels, _ = spherical_kmeans(x, k)
        times.append(time.perf_counter() - start)
    out = {"n": n, "k": k, "styles": int(truth.max() + 1), "kmeans_s": round(statistics.median(times), 3),
           "ari": round(adjusted_rand_index(truth, labels), 4), "purity": round(purity(truth, labels), 4)}
    extra, _ = synthetic(n // 100, seed=1)
    with Library.open(work / f"library-{n}") as library:
        with library.writer() as w:
            w.set_model(name="bench", version="1", dim=DIM, checksum="bench", which="projection", source="bench")
        write_vectors(library, x, 0)
        clusters = StyleClusters(library, l2_normalise, "bench")
        for name, step in (("recompute_s", lambda: clusters.recompute()), ("cached_s", lambda: clusters.current())):
            start = time.perf_counter()
            step()
            out[name] = round(time.perf_counter() - start, 3)
        write_vectors(library, extra, n)
        start = time.perf_counter()
        assigned = clusters.current()
        out["assign_s"] = round(time.perf_counter() - start, 3)
        out["assigned"] = assigned.assigned
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10000,100000")
    parser.add_argument("--threads", type=int, default=core.clusters.THREADS, help="torch threads for clustering")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--work", type=Path, default=None, help="folder for the libraries (default: a temp one)")
    args = parser.parse_args(argv)
    core.clusters.THREADS = args.threads
    with tempfile.TemporaryDirectory() as tmp:
        work = args.work or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        for n in (int(s) for s in args.sizes.split(",")):
            print(json.dumps(one_size(n, args.repeats, work)), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
