"""Search latency and hnswlib recall@10 against exact search, at 10k and 100k vectors.

Usage:
    .venv/bin/python bench/search_latency.py [--sizes 10000,100000] [--cache /tmp/aladin-bench]
        [--M 16,32] [--ef 50,100,200,400] [--library-size 100000]

Vectors are real ALADIN style codes (896-D, untrained-s at a 32 px input so
100k images embed in minutes on two cores) of procedurally generated art
(bench/styled.py: 2,000 styles x 50 variants), post-processed the way a model
file does it (per-dimension standardisation fitted on the collection) and
L2-normalised. Queries are 200 further variants of corpus styles, not in the
index, and 200 images of styles the corpus does not hold (their neighbours
spread over many clusters: the hard case). All are embedded once and cached in --cache.

Reported per size: exact (numpy) search p50/p95 per query; for each M the
graph build time, and for each ef recall@10 and p50/p95 per query (one thread).
Then the whole engine: a library of --library-size images searched through
core.search.Searcher (stored-vector "more like this" and an outside query
image), p50/p95 including SQLite lookups, after the model is loaded; "more like this" also
without the query expansion (core.expansion), to show what the expansion costs.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from styled import styled_array  # noqa: E402

STYLES, VARIANTS, QUERIES, EMBED_SIZE = 2000, 50, 200, 32


def bench_model():
    from core.model import ModelConfig, build_model
    from core.modelfile import BUILTIN_SEED, LoadedModel, ModelInfo

    info = ModelInfo(name="bench-32px", config=ModelConfig(input_size=EMBED_SIZE), trained=False)
    return LoadedModel(net=build_model(info.config, seed=BUILTIN_SEED).eval(), info=info, post=None,
                       source="bench", checksum="bench-32px")


def embedded(cache: Path) -> tuple[np.ndarray, np.ndarray]:
    """(corpus raw vectors, query raw vectors), embedding them on first use."""
    path = cache / f"raw-{STYLES}x{VARIANTS}-{EMBED_SIZE}px.npy"
    if path.exists():
        raw = np.load(path)
    else:
        from core.embedder import Embedder

        embedder = Embedder(bench_model(), device="auto")
        rng = np.random.default_rng(0)
        jobs = [(s, v) for s in range(STYLES) for v in range(VARIANTS)]
        jobs += [(int(s), VARIANTS + i) for i, s in enumerate(rng.integers(0, STYLES, QUERIES))]
        raw = np.zeros((len(jobs), embedder.raw_dim), np.float32)
        t0 = time.perf_counter()
        for start in range(0, len(jobs), 512):
            part = jobs[start:start + 512]
            raw[start:start + len(part)] = embedder.raw_from_pixels(
                np.stack([styled_array(s, v, EMBED_SIZE) for s, v in part]))
            done = start + len(part)
            print(f"\rembedded {done}/{len(jobs)} ({done / (time.perf_counter() - t0):.0f}/s)",
                  end="", file=sys.stderr, flush=True)
        print(file=sys.stderr)
        cache.mkdir(parents=True, exist_ok=True)
        np.save(path, raw)
    corpus, queries = raw[:-QUERIES], raw[-QUERIES:]
    order = np.random.default_rng(1).permutation(len(corpus))
    return corpus[order], queries


def novel_queries(cache: Path) -> np.ndarray:
    """Raw vectors of 200 images in styles the corpus does not hold: their neighbours spread
    over many clusters, the hard case for a graph (a query from outside the library)."""
    path = cache / f"novel-{QUERIES}-{EMBED_SIZE}px.npy"
    if not path.exists():
        from core.embedder import Embedder

        pixels = np.stack([styled_array(STYLES + i, 0, EMBED_SIZE) for i in range(QUERIES)])
        cache.mkdir(parents=True, exist_ok=True)
        np.save(path, Embedder(bench_model(), device="auto").raw_from_pixels(pixels))
    return np.load(path)


def finish(raw: np.ndarray, post) -> np.ndarray:
    x = post.apply(raw) if post is not None else raw
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def percentiles(times: list[float]) -> dict:
    ms = np.array(times) * 1000
    return {"p50_ms": round(float(np.percentile(ms, 50)), 3), "p95_ms": round(float(np.percentile(ms, 95)), 3)}


def exact_topk(corpus: np.ndarray, q: np.ndarray, k: int) -> np.ndarray:
    """What core.vector_index.ExactIndex does: sliced single-thread products, then argpartition."""
    from core.vector_index import scores, top_k

    return top_k(np.arange(len(corpus)), scores(corpus, q.astype(np.float32)), k)[0]


def sweep(corpus: np.ndarray, query_sets: dict[str, np.ndarray], ms: list[int], efs: list[int],
          k: int = 10) -> dict:
    import hnswlib

    from core.vector_index import HNSW_EF_CONSTRUCTION

    truth, times = {}, []
    for name, queries in query_sets.items():
        truth[name] = []
        for q in queries:
            t = time.perf_counter()
            truth[name].append(set(exact_topk(corpus, q, k).tolist()))
            times.append(time.perf_counter() - t)
    out = {"n": len(corpus), "dim": corpus.shape[1], "exact": percentiles(times), "hnsw": []}
    for m in ms:
        graph = hnswlib.Index(space="cosine", dim=corpus.shape[1])
        graph.init_index(max_elements=len(corpus), M=m, ef_construction=HNSW_EF_CONSTRUCTION)
        t = time.perf_counter()
        graph.add_items(corpus, np.arange(len(corpus)), num_threads=-1)
        build = time.perf_counter() - t
        for ef in efs:
            graph.set_ef(max(ef, k))
            row = {"M": m, "ef_construction": HNSW_EF_CONSTRUCTION, "ef": ef, "build_s": round(build, 1)}
            times = []
            for name, queries in query_sets.items():
                hits = 0
                for q, want in zip(queries, truth[name]):
                    t = time.perf_counter()
                    labels, _ = graph.knn_query(q[None, :], k=k, num_threads=1)
                    times.append(time.perf_counter() - t)
                    hits += len(want & set(labels[0].tolist()))
                row[f"recall@10_{name}"] = round(hits / (k * len(queries)), 4)
            row.update(percentiles(times))
            out["hnsw"].append(row)
            print(json.dumps(row), file=sys.stderr)
    return out


def engine_latency(raw: np.ndarray, post) -> dict:
    """The real Searcher on a library of len(raw) images (paths are fake; vectors are real)."""
    from PIL import Image

    from core.embedder import Embedder
    from core.library import Library
    from core.query import QueryItem, SearchFilters
    from core.search import Searcher
    from core.writer import ImageFile

    model = bench_model()
    model.post = post
    embedder = Embedder(model, device="cpu")
    tmp = Path(tempfile.mkdtemp(prefix="aladin-search-bench-"))
    lib = Library.open(tmp / "lib")
    t = time.perf_counter()
    root = lib.add_root(tmp / "art")
    with lib.writer() as w:
        model_id = w.set_model(name=model.info.name, version="1", dim=embedder.dim, checksum=model.checksum,
                               which=embedder.which, source="bench")
        for start in range(0, len(raw), 5000):
            # A fresh library numbers images from 1 in insertion order: image i holds raw[i - 1].
            ids = range(start + 1, min(start + 5000, len(raw)) + 1)
            files = [ImageFile(str(tmp / "art" / f"s{i % 997}/img{i}.jpg"), root.id, f"s{i % 997}/img{i}.jpg",
                               size=i, mtime_ns=i, digest=f"{i:064x}") for i in ids]
            w.commit_batch(model_id, files, {f.path: (raw[i - 1], (0, 0)) for i, f in zip(ids, files)}, {})
    fill = time.perf_counter() - t
    searcher = Searcher(lib, embedder)
    t = time.perf_counter()
    kind = searcher.cache.current().kind
    build = time.perf_counter() - t
    t = time.perf_counter()
    Searcher(lib, embedder).cache.current()  # a second process loading the saved graph
    load = time.perf_counter() - t
    rng = np.random.default_rng(2)
    times, plain = [], []
    # Other images for the run without expansion: each first search of an image also measures r(x)
    # for its candidates, which a second search of the same image would find remembered.
    for image_id, other_id in rng.integers(1, len(raw) + 1, (200, 2)):
        for filters, spent, i in ((SearchFilters(k=20), times, image_id),
                                  (SearchFilters(k=20, expand=False), plain, other_id)):
            t = time.perf_counter()
            results = searcher.more_like(int(i), filters)
            spent.append(time.perf_counter() - t)
            assert len(results) == 20
    query = tmp / "query.png"
    Image.fromarray(styled_array(7, 999, 256)).save(query)
    outside = []
    for _ in range(50):
        t = time.perf_counter()
        searcher.search([QueryItem(str(query))], SearchFilters(k=20))
        outside.append(time.perf_counter() - t)
    folder = []
    for image_id in rng.integers(1, len(raw) + 1, 50):
        t = time.perf_counter()
        searcher.more_like(int(image_id), SearchFilters(k=20, folder=str(tmp / "art" / "s5")))
        folder.append(time.perf_counter() - t)
    lib.close()
    return {"images": len(raw), "index": kind, "fill_s": round(fill, 1), "first_build_s": round(build, 1),
            "load_saved_s": round(load, 2), "more_like_k20": percentiles(times),
            "more_like_k20_not_expanded": percentiles(plain),
            "outside_query_k20_incl_decode_embed_32px": percentiles(outside),
            "sub_folder_filter_k20": percentiles(folder)}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", default="10000,100000")
    p.add_argument("--M", default="16,32")
    p.add_argument("--ef", default="50,100,200,400")
    p.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "aladin-bench")
    p.add_argument("--no-post", action="store_true", help="skip post-processing (raw style codes, normalised)")
    p.add_argument("--library-size", type=int, default=100_000, help="0 skips the whole-engine measurement")
    args = p.parse_args(argv)
    from core.modelfile import PostProcess

    corpus_raw, queries_raw = embedded(args.cache)
    post = None if args.no_post else PostProcess.fit(corpus_raw[:10_000])
    query_sets = {"same_styles": finish(queries_raw, post), "novel_styles": finish(novel_queries(args.cache), post)}
    corpus = finish(corpus_raw, post)
    report = {"vectors": f"untrained-s style codes at {EMBED_SIZE} px of {STYLES}x{VARIANTS} styled images",
              "post": not args.no_post, "sizes": []}
    for n in [int(x) for x in args.sizes.split(",") if x]:
        report["sizes"].append(sweep(corpus[:n], query_sets, [int(m) for m in args.M.split(",")],
                                     [int(e) for e in args.ef.split(",")]))
    if args.library_size:
        report["engine"] = engine_latency(corpus_raw[:args.library_size], post)
    print(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
