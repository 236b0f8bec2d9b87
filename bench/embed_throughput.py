"""Images per second for ``aladin embed`` on generated 1-12 MP JPEGs, split into decode and model time.

Usage:
    .venv/bin/python bench/embed_throughput.py [--count 24] [--model untrained-s] [--workers N]

Three measurements per megapixel size:
  decode  - core.images.load_array alone (one process: JPEG draft decode, EXIF, fit),
  model   - Embedder.raw_from_pixels on ready pixels (batch 16),
  end2end - the real ``aladin embed`` command in a subprocess (model load excluded by
            timing a one-image run and subtracting it).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from core.embedder import Embedder
from core.images import load_array
from core.modelfile import DEFAULT_MODEL, load_model

SIZES_MP = (1, 4, 12)


def make_jpegs(folder: Path, megapixels: int, count: int) -> list[str]:
    """Photo-like JPEGs (smooth gradients plus noise) so the codec does realistic work."""
    width = int((megapixels * 1e6 * 4 / 3) ** 0.5)
    height = int(width * 3 / 4)
    rng = np.random.default_rng(megapixels)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    paths = []
    for i in range(count):
        base = np.stack([(xx / (3 + i)) % 255, (yy / (5 + i)) % 255, ((xx + yy) / 7) % 255], -1)
        img = np.clip(base + rng.normal(0, 12, base.shape), 0, 255).astype(np.uint8)
        path = folder / f"{megapixels}mp_{i}.jpg"
        Image.fromarray(img).save(path, quality=90)
        paths.append(str(path))
    return paths


def _model_pass(embedder: Embedder, pixels: np.ndarray) -> float:
    start = time.perf_counter()
    for i in range(0, len(pixels), 16):
        embedder.raw_from_pixels(pixels[i:i + 16])
    return time.perf_counter() - start


def run_embed(paths: list[str], folder: Path, model: str, workers: int | None) -> float:
    listing = folder / "list.txt"
    listing.write_text("\n".join(paths) + "\n")
    cmd = [sys.executable, "-m", "app.launcher", "embed", "--paths-from", str(listing), "--out", str(folder / "out.npy"),
           "--model", model]
    if workers is not None:
        cmd += ["--workers", str(workers)]
    start = time.perf_counter()
    subprocess.run(cmd, check=True, capture_output=True)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--count", type=int, default=24, help="images per size")
    parser.add_argument("--model", default=str(DEFAULT_MODEL), help="model file or built-in name (default: bundled)")
    parser.add_argument("--workers", type=int, default=None)
    args = parser.parse_args()
    embedder = Embedder(load_model(args.model), device="cpu")
    size = embedder.size
    report = {"machine": f"{os.cpu_count()} CPU cores", "model": args.model, "input_size": size, "rows": []}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        for mp in SIZES_MP:
            paths = make_jpegs(folder, mp, args.count)
            start = time.perf_counter()
            pixels = np.stack([load_array(p, size)[0] for p in paths])
            decode_s = (time.perf_counter() - start) / len(paths)
            embedder.raw_from_pixels(pixels[:16])  # warm-up at the timed batch size
            model_s = min(_model_pass(embedder, pixels) for _ in range(3)) / len(paths)
            # Process start (imports, model load, worker spawn) is a fixed cost: the fastest of two
            # one-image runs, subtracted from the full run, leaves the per-image rate.
            startup = min(run_embed(paths[:1], folder, args.model, args.workers) for _ in range(2))
            total = run_embed(paths, folder, args.model, args.workers)
            per_image = max(total - startup, 1e-9) / (len(paths) - 1)
            row = {"megapixels": mp, "decode_ms": round(decode_s * 1000, 1), "model_ms": round(model_s * 1000, 1),
                   "end2end_img_per_s": round(1 / per_image, 2), "startup_s": round(startup, 2),
                   "whole_command_img_per_s": round(len(paths) / total, 2),
                   "decode_share": round(decode_s / (decode_s + model_s), 2)}
            report["rows"].append(row)
            print(json.dumps(row), flush=True)
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
