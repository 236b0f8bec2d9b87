"""Does keeping raw vectors in half precision (core.schema.vector_blob) change what search finds?

Embeds each manifest once with a model (the bundled one by default), then scores the vectors finished
from the raw ones as computed and from the same raw ones after a round trip through the library's blob
format: P@1 and mAP pooled and as the mean over sources, the largest change of a finished value, and how
far a vector's cosine to its own round-tripped copy falls below 1.

Use::

    .venv/bin/python bench/half_precision.py data/corpus-new/manifest.csv data/ood/icons/manifest.csv \
        data/ood/cards/manifest.csv
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from core.embedder import Embedder  # noqa: E402
from core.modelfile import load_model  # noqa: E402
from core.schema import vector_blob, vector_from_blob  # noqa: E402
from trainer.data import decode_for_eval  # noqa: E402
from trainer.evaluate import raw_in_batches  # noqa: E402
from trainer.manifest import read_manifest  # noqa: E402
from trainer.metrics import by_source, mean_over, score_queries, summarise  # noqa: E402


def figures(vectors: np.ndarray, labels: np.ndarray, sources: np.ndarray) -> str:
    results = score_queries(vectors, labels)
    pooled = summarise(results)
    per_source = mean_over(list(by_source(results, sources, labels).values()))
    return (f"pooled P@1 {pooled['P@1']:.4f} mAP {pooled['mAP']:.4f}; "
            f"mean over sources P@1 {per_source['P@1']:.4f} mAP {per_source['mAP']:.4f}")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("manifests", type=Path, nargs="+")
    p.add_argument("--model", default=None, help="model file or built-in name (default: the bundled model)")
    p.add_argument("--workers", type=int, default=None)
    args = p.parse_args(argv)
    embedder = Embedder(load_model(args.model), device="cpu")
    for manifest in args.manifests:
        rows = read_manifest(manifest)
        pixels, kept, _ = decode_for_eval([r.path for r in rows], embedder.model.info.decode_size,
                                          workers=args.workers, alpha=embedder.reads_alpha)
        rows = [rows[i] for i in kept]
        labels = np.array([r.group for r in rows])
        sources = np.array([r.source or "" for r in rows])
        raw = raw_in_batches(embedder, pixels)
        stored = np.stack([vector_from_blob(vector_blob(v)) for v in raw])
        direct, kept_vectors = embedder.finish(raw), embedder.finish(stored)
        print(f"{manifest} ({len(rows)} images)")
        print(f"  as computed: {figures(direct, labels, sources)}")
        print(f"  as stored:   {figures(kept_vectors, labels, sources)}")
        print(f"  largest change of a finished value {np.abs(direct - kept_vectors).max():.2e}; "
              f"largest cosine loss to itself {float(1 - (direct * kept_vectors).sum(1).min()):.1e}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
