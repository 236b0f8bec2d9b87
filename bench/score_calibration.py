"""Does CSLS make out-of-domain retrieval better, and what do the calibrated labels mean?

Usage:
    .venv/bin/python bench/score_calibration.py [--data data/ood] [--model PATH] [--cache DIR]
        [--report OUT.json]

Galleries: the independent benchmark's icon themes and card decks (``bench/ood_benchmark.py``;
art the default model never saw), each alone and both in one library. Every image is a query
against the rest of its gallery, as ``trainer eval --split all`` does, and is ranked

- by cosine (the plain search), and
- by CSLS, ``2 cos(q, x) - r(x)`` with r(x) the mean cosine of x to its k nearest gallery images,
  through :mod:`core.calibration`'s own functions on a :class:`core.vector_index.ExactIndex`.

Reported per gallery and ranking: P@1 and mAP (the trainer's definitions; the cosine figures are
checked against ``trainer.metrics.retrieval_metrics``), the hubness of the 10-NN graph (skewness of
the k-occurrence distribution N_10, and the largest N_10), the paired difference CSLS - cosine
with a 95 % bootstrap interval over queries, and how often the full CSLS top 10 lies inside the
cosine top ``k + CSLS_POOL`` that the app re-ranks. k = 10 is the choice fixed in core; 5, 20, 50
are shown beside it. Last, the calibration table: for each label's band of calibrated score
(:class:`core.calibration.LibraryScores` on the gallery), the share of the top-20 results in the
query's style. Vectors are embedded once (the default model at its own input size) and cached.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from core.calibration import CSLS_POOL, LABELS, NEIGHBOURS, LibraryScores, csls, neighbour_scores  # noqa: E402
from core.vector_index import ExactIndex  # noqa: E402
from trainer.manifest import read_manifest  # noqa: E402
from trainer.metrics import retrieval_metrics  # noqa: E402

DOMAINS = ("icons", "cards")
KS = (5, NEIGHBOURS, 20, 50)
BOOTSTRAP = 2000
TOP = 20


def embed(data: Path, model: str | None, cache: Path) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Unit vectors and group labels per domain, embedded once with the app's embedder."""
    from core.embedder import Embedder
    from core.modelfile import load_model

    out = {}
    embedder = Embedder(load_model(model), device="cpu")
    for domain in DOMAINS:
        manifest = data / domain / "manifest.csv"
        samples = read_manifest(manifest)
        # Keyed by the model, so a run after the model changed never scores the old model's vectors.
        stored = cache / f"{domain}-{embedder.model.checksum[:12]}.npz"
        if stored.is_file():
            vectors = np.load(stored)["vectors"]
        else:
            vectors, errors = embedder.embed_paths([s.path for s in samples], batch_size=32, workers=0)
            if errors:
                raise SystemExit(f"{len(errors)} images of {manifest} could not be read")
            cache.mkdir(parents=True, exist_ok=True)
            np.savez(stored, vectors=vectors)
        out[domain] = vectors, np.array([s.group for s in samples])
    return out


def per_query(scores: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each query's top-1 hit and average precision when the gallery is ranked by ``scores`` (self left out)."""
    scores = scores.copy()
    np.fill_diagonal(scores, -np.inf)
    order = np.argsort(-scores, axis=1, kind="stable")[:, :-1]
    relevant = labels[order] == labels[:, None]
    precision = np.cumsum(relevant, axis=1) / np.arange(1, len(labels))
    return relevant[:, 0].astype(np.float64), (precision * relevant).sum(1) / np.maximum(relevant.sum(1), 1)


def k_occurrence(scores: np.ndarray, k: int = 10) -> dict:
    """Hubness: how often each image is among the others' k nearest, as its skewness and maximum."""
    scores = scores.copy()
    np.fill_diagonal(scores, -np.inf)
    nearest = np.argpartition(-scores, k, axis=1)[:, :k]
    counts = np.bincount(nearest.ravel(), minlength=len(scores)).astype(np.float64)
    spread = counts.std()
    skew = float(((counts - counts.mean()) ** 3).mean() / spread ** 3) if spread else 0.0
    return {"skewness_N10": round(skew, 3), "max_N10": int(counts.max())}


def bootstrap(delta: np.ndarray, rng: np.random.Generator) -> list[float]:
    means = [delta[rng.integers(0, len(delta), len(delta))].mean() for _ in range(BOOTSTRAP)]
    return [round(float(v), 4) for v in np.percentile(means, [2.5, 97.5])]


def inside_pool(cosine: np.ndarray, ranked: np.ndarray, k: int = 10) -> float:
    """Share of queries whose CSLS top k all lie in the cosine top ``k + CSLS_POOL`` (what the app re-ranks)."""
    cosine, ranked = cosine.copy(), ranked.copy()
    np.fill_diagonal(cosine, -np.inf)
    np.fill_diagonal(ranked, -np.inf)
    pool = np.argsort(-cosine, axis=1)[:, :k + CSLS_POOL]
    top = np.argsort(-ranked, axis=1)[:, :k]
    return float(np.mean([np.isin(t, p).all() for t, p in zip(top, pool)]))


def calibration_table(index: ExactIndex, cosine: np.ndarray, labels: np.ndarray) -> list[dict]:
    """Per label's band of calibrated score: share of the top-20 results, and of those in the query's style."""
    calibration = LibraryScores().calibration(index)
    scores = cosine.copy()
    np.fill_diagonal(scores, -np.inf)
    order = np.argsort(-scores, axis=1)[:, :TOP]
    top = np.take_along_axis(scores, order, axis=1)
    same = labels[order] == labels[:, None]
    percentile = calibration.percentile(top)
    rows, upper = [], 100.0
    for name, lower in LABELS:
        band = (percentile >= lower) & ((percentile < upper) if upper < 100 else True)
        rows.append({"label": name, "band": f"{lower:g}-{upper:g}", "share": round(float(band.mean()), 3),
                     "same_style": round(float(same[band].mean()), 3) if band.any() else None})
        upper = lower
    return rows


def gallery(vectors: np.ndarray, labels: np.ndarray, rng: np.random.Generator) -> dict:
    index = ExactIndex(vectors.shape[1])
    index.add(np.arange(len(vectors)), vectors)
    cosine = vectors @ vectors.T
    check = retrieval_metrics(vectors, labels)
    top1, ap = per_query(cosine, labels)
    if abs(top1.mean() - check["P@1"]) > 1e-9 or abs(ap.mean() - check["mAP"]) > 1e-6:
        raise SystemExit(f"ranking differs from trainer.metrics: {top1.mean()} vs {check['P@1']}")
    near = neighbour_scores(index, index.labels(), max(KS))
    report = {"images": len(labels), "groups": len(set(labels.tolist())),
              "cosine": {"P@1": round(float(top1.mean()), 4), "mAP": round(float(ap.mean()), 4),
                         **k_occurrence(cosine)}, "csls": {}}
    for k in KS:
        hubness = near[:, :k].mean(1)
        ranked = csls(cosine, hubness[None, :])
        c_top1, c_ap = per_query(ranked, labels)
        # The query's own r(q) does not change its ranking but does change who counts it a neighbour.
        report["csls"][f"k={k}"] = {
            "P@1": round(float(c_top1.mean()), 4), "mAP": round(float(c_ap.mean()), 4),
            "dP@1": round(float((c_top1 - top1).mean()), 4), "dP@1_95ci": bootstrap(c_top1 - top1, rng),
            "dmAP": round(float((c_ap - ap).mean()), 4), "dmAP_95ci": bootstrap(c_ap - ap, rng),
            **k_occurrence(ranked - hubness[:, None]), "top10_inside_pool": round(inside_pool(cosine, ranked), 4)}
    report["calibration"] = calibration_table(index, cosine, labels)
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=Path("data/ood"))
    parser.add_argument("--model", default=None, help="model file (default: the bundled default model)")
    parser.add_argument("--cache", type=Path, default=Path("/tmp/aladin-score-calibration"),
                        help="embedded vectors are kept here; delete it after changing the model")
    parser.add_argument("--report", type=Path, default=None, help="write the JSON report here")
    args = parser.parse_args(argv)
    started = time.time()
    domains = embed(args.data, args.model, args.cache)
    both = (np.concatenate([v for v, _ in domains.values()]), np.concatenate([g for _, g in domains.values()]))
    rng = np.random.default_rng(0)
    report = {"model": args.model or "resources/models/default.safetensors", "neighbours_in_core": NEIGHBOURS,
              "labels": dict(LABELS), "galleries": {name: gallery(v, g, rng)
                                                   for name, (v, g) in {**domains, "both": both}.items()}}
    report["seconds"] = round(time.time() - started, 1)
    for name, row in report["galleries"].items():
        plain = row["cosine"]
        print(f"{name} ({row['images']} images, {row['groups']} groups): cosine P@1 {plain['P@1']:.4f} "
              f"mAP {plain['mAP']:.4f} N10 skew {plain['skewness_N10']} max {plain['max_N10']}")
        for k, c in row["csls"].items():
            print(f"  CSLS {k:5s} P@1 {c['P@1']:.4f} ({c['dP@1']:+.4f} {c['dP@1_95ci']}) mAP {c['mAP']:.4f} "
                  f"({c['dmAP']:+.4f} {c['dmAP_95ci']}) N10 skew {c['skewness_N10']} max {c['max_N10']} "
                  f"top10 in pool {c['top10_inside_pool']:.3f}")
        print("  label (calibrated score): share of top-20 results / same style: " + "; ".join(
            f"{b['label']} ({b['band']}): {b['share']:.3f} / {b['same_style']}" for b in row["calibration"]))
    if args.report:
        args.report.write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
