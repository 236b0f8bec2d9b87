"""Indexing throughput on a generated tree of mixed-size images, with where the time goes.

Usage:
    .venv/bin/python bench/index_throughput.py [--count 2000] [--model PATH|NAME] [--device auto]
        [--workers N] [--batch-size 32] [--tree /tmp/aladin-bench/tree-2000]

The tree (made once, then reused) holds styled art (bench/styled.py) as JPEG
(70 %), PNG (20 %) and WebP (10 %) at 0.3, 1, 3 and 8 megapixels (40/30/20/10 %).

Reported:
  decode      - core.images.load_array alone on a sample, one process (s per image, per core),
  model       - Embedder.raw_from_pixels on ready pixels, batch 32 (s per image),
  end_to_end  - core.indexer.index_folders into a fresh library: images/s, seconds per
                phase, and the share of the embed phase the main process spent in the model
                (the rest is waiting for decoding workers and committing batches),
  rerun       - the same call again: nothing changed, so nothing is decoded.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
from styled import styled_array  # noqa: E402

SIZES = ((640, 480, 0.4), (1155, 866, 0.3), (2000, 1500, 0.2), (3264, 2448, 0.1))
FORMATS = (("jpg", 0.7), ("png", 0.2), ("webp", 0.1))


def make_tree(folder: Path, count: int) -> list[Path]:
    rng = random.Random(0)
    paths = []
    for i in range(count):
        w, h, _ = rng.choices(SIZES, weights=[s[2] for s in SIZES])[0]
        ext = rng.choices([f[0] for f in FORMATS], weights=[f[1] for f in FORMATS])[0]
        path = folder / f"series{i % 40:02d}" / f"{i:05d}.{ext}"
        paths.append(path)
        if path.exists():
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        small = Image.fromarray(styled_array(i % 40, i, 256))
        big = small.resize((w, h), Image.Resampling.BILINEAR)
        # Fine grain on top so the codec has real detail to work through (a tiled noise
        # patch: drawing 24 M normals per 8 MP image would dominate the generation time).
        tile = np.random.default_rng(i).integers(-12, 13, (241, 251, 3), dtype=np.int16)
        grain = np.tile(tile, (h // 241 + 1, w // 251 + 1, 1))[:h, :w]
        big = Image.fromarray(np.clip(np.asarray(big, np.int16) + grain, 0, 255).astype(np.uint8))
        big.save(path, quality=90) if ext == "jpg" else big.save(path)
    return paths


def time_decode(paths: list[Path], size: int, sample: int = 100) -> float:
    from core.images import load_array

    picked = random.Random(1).sample(paths, min(sample, len(paths)))
    t = time.perf_counter()
    for p in picked:
        load_array(p, size)
    return (time.perf_counter() - t) / len(picked)


def time_model(embedder, batch: int = 32, rounds: int = 4) -> float:
    pixels = np.random.default_rng(0).integers(0, 255, (batch, embedder.size, embedder.size, 3), dtype=np.uint8)
    embedder.raw_from_pixels(pixels[:4])
    t = time.perf_counter()
    for _ in range(rounds):
        embedder.raw_from_pixels(pixels)
    return (time.perf_counter() - t) / (batch * rounds)


def end_to_end(tree: Path, embedder, workers: int | None, batch: int) -> dict:
    from core.indexer import index_folders
    from core.library import Library

    model_time = [0.0]
    real = embedder.raw_from_pixels

    def timed(pixels):
        t = time.perf_counter()
        try:
            return real(pixels)
        finally:
            model_time[0] += time.perf_counter() - t

    embedder.raw_from_pixels = timed
    phases: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="aladin-index-bench-") as tmp, Library.open(tmp) as lib:
        last, phase, summary = time.perf_counter(), None, None
        t0 = last
        for progress in index_folders(lib, [tree], embedder, workers=workers, batch_size=batch):
            now = time.perf_counter()
            if phase is not None:
                phases[phase] = phases.get(phase, 0.0) + now - last
            phase, last = progress.phase, now
            summary = progress.summary or summary
        wall = time.perf_counter() - t0
        t = time.perf_counter()
        rerun = list(index_folders(lib, [tree], embedder, workers=workers, batch_size=batch))[-1].summary
        rerun_s = time.perf_counter() - t
    embedder.raw_from_pixels = real
    embed_s = phases.get("embed", 0.0)
    return {"images": summary.added, "failed": summary.failed, "wall_s": round(wall, 1),
            "images_per_s": round(summary.added / wall, 2),
            "phases_s": {k: round(v, 2) for k, v in phases.items()},
            "model_share_of_embed_phase": round(model_time[0] / embed_s, 3) if embed_s else None,
            "rerun": {"seconds": round(rerun_s, 2), "embedded": rerun.embedded, "unchanged": rerun.unchanged}}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--count", type=int, default=2000)
    p.add_argument("--model", default=None, help="model file or built-in name (default: the bundled model)")
    p.add_argument("--device", default="auto")
    p.add_argument("--workers", type=int, default=None)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--tree", type=Path, default=None)
    p.add_argument("--torch-threads", type=int, default=None,
                   help="torch intra-op threads for the model (default: core.cpu.plan's split); set "
                        "through OMP_NUM_THREADS, which the plan honours")
    args = p.parse_args(argv)
    if args.torch_threads:
        os.environ["OMP_NUM_THREADS"] = str(args.torch_threads)  # before torch starts its thread pool

    from core.cpu import plan
    from core.embedder import Embedder
    from core.modelfile import load_model

    tree = args.tree or Path(tempfile.gettempdir()) / "aladin-bench" / f"tree-{args.count}"
    t = time.perf_counter()
    paths = make_tree(tree, args.count)
    made = time.perf_counter() - t
    embedder = Embedder(load_model(args.model), device=args.device)
    decode_s = time_decode(paths, embedder.size)
    model_s = time_model(embedder)
    cpu = plan(device=embedder.device.type, decoders=args.workers)
    report = {
        "machine": {"cpus": os.cpu_count(), "device": str(embedder.device), "torch_threads": cpu.torch_threads},
        "tree": {"path": str(tree), "images": len(paths), "megabytes": round(sum(p.stat().st_size for p in paths) / 1e6),
                 "generated_s": round(made, 1)},
        "model": {"name": embedder.model.info.name, "input_size": embedder.size, "dim": embedder.dim},
        "decode_s_per_image_one_core": round(decode_s, 4),
        "model_s_per_image": round(model_s, 4),
        "decode_share_of_work": round(decode_s / (decode_s + model_s), 3),
        "workers": cpu.decoders,
        "end_to_end": end_to_end(tree, embedder, args.workers, args.batch_size),
    }
    print(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
