"""Indexing throughput against what decoding allows, one row per kind of image.

Usage:
    .venv/bin/python bench/index_throughput.py [--scale 1.0] [--kinds 3mp-jpeg,12mp-jpeg,phone-jpeg,3mp-png]
        [--model PATH|NAME] [--workers N] [--batch-size 32] [--folder /tmp/aladin-bench/kinds]

Each kind is a folder of generated photo-like images (styled art from bench/styled.py,
enlarged, with fine grain whose strength sets the JPEG bits per pixel), made once and reused:

  3mp-jpeg    2048x1536 JPEG q80, about 1.4 bits/px
  12mp-jpeg   4032x3024 JPEG q80, about 1.2 bits/px
  phone-jpeg  4032x3024 JPEG q80, about 2.6 bits/px (what a phone camera writes)
  3mp-png     2048x1536 PNG

For each kind, measured in the same run (page cache warm, as the files were just read):

  now          core.indexer.index_folders into a fresh library, the `aladin index` path end to
               end (decoding processes started, hashes, vectors committed, search index saved);
  decode-only  core.images.load_array alone in one process per core, the processes already started;
  limit        the best the cores allow: decoding as fast as decode-only, plus the network on
               ready pixels (one torch thread, batch 32, timed here) spread over the same cores:
               1 / (1 / decode_only + network_s / cores).

Each kind is measured ``--rounds`` times, the three measurements interleaved, and the best of
each is kept: other work on the machine only ever slows a measurement down. ``now / limit``
is the share of the machine the indexer gets out of it; it moves less than the rates when
other work shares the cores. ``--json`` adds the phases of each run.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from styled import styled_array  # noqa: E402


@dataclass(frozen=True)
class Kind:
    key: str
    label: str
    width: int
    height: int
    ext: str
    grain: int  # amplitude of the added grain: sets how hard the codec works (bits per pixel)
    count: int


KINDS = (
    Kind("3mp-jpeg", "3 MP JPEG q80", 2048, 1536, "jpg", 10, 480),
    Kind("12mp-jpeg", "12 MP JPEG q80, 1.2 bits/px", 4032, 3024, "jpg", 10, 200),
    Kind("phone-jpeg", "12 MP JPEG q80, phone-like 2.6 bits/px", 4032, 3024, "jpg", 34, 160),
    Kind("3mp-png", "3 MP PNG", 2048, 1536, "png", 10, 120),
)
DECODE_CHUNK = 8


def make_image(kind: Kind, i: int, path: Path) -> None:
    """One photo-like image: smooth styled art enlarged, with a tiled grain the codec must keep."""
    small = Image.fromarray(styled_array(i % 40, i, 256))
    big = np.asarray(small.resize((kind.width, kind.height), Image.Resampling.BILINEAR), np.int16)
    tile = np.random.default_rng(i).integers(-kind.grain, kind.grain + 1, (241, 251, 3), dtype=np.int16)
    grain = np.tile(tile, (kind.height // 241 + 1, kind.width // 251 + 1, 1))[:kind.height, :kind.width]
    img = Image.fromarray(np.clip(big + grain, 0, 255).astype(np.uint8))
    tmp = path.with_suffix(".part")
    img.save(tmp, format="JPEG", quality=80) if kind.ext == "jpg" else img.save(tmp, format="PNG")
    tmp.rename(path)


def make_kind(root: Path, kind: Kind, count: int, pool: ProcessPoolExecutor) -> list[Path]:
    """The kind's folder of exactly ``count`` images, generating only those not there yet."""
    folder = root / f"{kind.key}-{count}"
    folder.mkdir(parents=True, exist_ok=True)
    paths = [folder / f"{i:05d}.{kind.ext}" for i in range(count)]
    todo = [(i, p) for i, p in enumerate(paths) if not p.exists()]
    list(pool.map(make_image, [kind] * len(todo), [i for i, _ in todo], [p for _, p in todo]))
    return paths


def decode_paths(paths: list[str], size: int) -> float:
    """Worker body for decode-only: what the model needs from each file, nothing else; returns CPU seconds."""
    from core.images import load_array

    cpu = time.process_time()
    for p in paths:
        load_array(p, size)
    return time.process_time() - cpu


def decode_only(pool: ProcessPoolExecutor, paths: list[Path], size: int) -> tuple[float, float]:
    """Images per second decoding ``paths`` in ``pool`` (already warm), and CPU seconds per image."""
    chunks = [[str(p) for p in paths[i:i + DECODE_CHUNK]] for i in range(0, len(paths), DECODE_CHUNK)]
    t = time.perf_counter()
    cpu = sum(pool.map(decode_paths, chunks, [size] * len(chunks)))
    return len(paths) / (time.perf_counter() - t), cpu / len(paths)


def network_s(embedder, batch: int = 32, rounds: int = 6) -> tuple[float, float]:
    """Seconds per image for the network (and colour histogram) on ready pixels, one torch thread:
    wall time and CPU time."""
    from core.cpu import torch_threads_for

    pixels = np.random.default_rng(0).integers(0, 255, (batch, embedder.size, embedder.size, 3), dtype=np.uint8)
    with torch_threads_for(1):
        embedder.raw_from_pixels(pixels)
        t, cpu = time.perf_counter(), time.thread_time()
        for _ in range(rounds):
            embedder.raw_from_pixels(pixels)
        return (time.perf_counter() - t) / (batch * rounds), (time.thread_time() - cpu) / (batch * rounds)


def cpu_seconds() -> float:
    """CPU time of this process and of its children that have ended (a run's decoders, once its pool is shut)."""
    return sum(r.ru_utime + r.ru_stime for r in map(resource.getrusage, (resource.RUSAGE_SELF,
                                                                          resource.RUSAGE_CHILDREN)))


def index_run(folder: Path, embedder, workers: int | None, batch: int) -> dict:
    """``index_folders`` into a fresh library: images per second end to end, and seconds per phase."""
    from core.indexer import index_folders
    from core.library import Library

    phases: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="aladin-index-bench-") as tmp, Library.open(tmp) as lib:
        summary, phase = None, None
        cpu = cpu_seconds()
        t0 = last = time.perf_counter()
        for progress in index_folders(lib, [folder], embedder, workers=workers, batch_size=batch):
            now = time.perf_counter()
            if phase is not None:
                phases[phase] = phases.get(phase, 0.0) + now - last
            phase, last = progress.phase, now
            summary = progress.summary or summary
        wall = time.perf_counter() - t0
        cpu = cpu_seconds() - cpu
    return {"images": summary.added, "failed": summary.failed, "wall_s": round(wall, 2),
            "cpu_s_per_image": cpu / summary.added,
            "images_per_s": summary.added / wall, "phases_s": {k: round(v, 2) for k, v in phases.items()}}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--scale", type=float, default=1.0, help="multiply every kind's image count")
    p.add_argument("--kinds", default=",".join(k.key for k in KINDS))
    p.add_argument("--model", default=None, help="model file or built-in name (default: the bundled model)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--workers", type=int, default=None, help="decoding processes (default: core.cpu.plan's)")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--folder", type=Path, default=Path(tempfile.gettempdir()) / "aladin-bench" / "kinds")
    p.add_argument("--rounds", type=int, default=2, help="measure each kind this many times, keep the best")
    p.add_argument("--json", action="store_true", help="also print every measurement as JSON")
    args = p.parse_args(argv)

    from core.embedder import Embedder
    from core.modelfile import load_model

    kinds = [k for key in args.kinds.split(",") for k in KINDS if k.key == key.strip()]
    cores = os.cpu_count() or 2
    ctx = get_context("spawn")
    with ProcessPoolExecutor(cores, mp_context=ctx) as pool:
        made = {k.key: make_kind(args.folder, k, max(8, round(k.count * args.scale)), pool) for k in kinds}
    embedder = Embedder(load_model(args.model), device=args.device)
    rows = []
    with ProcessPoolExecutor(cores, mp_context=ctx) as pool:
        list(pool.map(decode_paths, [[str(made[kinds[0].key][0])]] * cores, [embedder.size] * cores))
        for kind in kinds:
            paths = made[kind.key]
            bits = sum(p.stat().st_size for p in paths) * 8 / (len(paths) * kind.width * kind.height)
            nets, decodes, runs = [], [], []
            for _ in range(args.rounds):
                nets.append(network_s(embedder))
                decodes.append(decode_only(pool, paths, embedder.size))
                runs.append(index_run(paths[0].parent, embedder, args.workers, args.batch_size))
            net, net_cpu = min(n[0] for n in nets), min(n[1] for n in nets)
            decode, decode_cpu = max(d[0] for d in decodes), min(d[1] for d in decodes)
            run = max(runs, key=lambda r: r["images_per_s"])
            limit = 1 / (1 / decode + net / cores)
            rows.append({"kind": kind.label, "images": len(paths), "bits_per_px": round(bits, 2), "network_s": net,
                         "now": run["images_per_s"], "decode_only": decode, "limit": limit,
                         "share": run["images_per_s"] / limit,
                         "cpu_ms_now": 1000 * min(r["cpu_s_per_image"] for r in runs),
                         "cpu_ms_limit": 1000 * (decode_cpu + net_cpu),
                         "runs": runs, "decode_only_rounds": decodes, "network_rounds": nets})
    nets = ", ".join(f"{r['network_s'] * 1000:.1f}" for r in rows)
    print(f"{cores} cores, model {embedder.model.info.name} ({embedder.size} px), network ms/image on one "
          f"thread (per row): {nets}; best of {args.rounds} rounds; load average now {os.getloadavg()[0]:.1f}")
    print(f"| images | count | bits/px | now (images/s) | decode-only ({cores} processes) | limit | share of limit "
          "| CPU ms/image: now / decode + network |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['kind']} | {r['images']} | {r['bits_per_px']} | {r['now']:.0f} | {r['decode_only']:.0f} | "
              f"{r['limit']:.0f} | {r['share']:.0%} | {r['cpu_ms_now']:.1f} / {r['cpu_ms_limit']:.1f} |")
    if args.json:
        print(json.dumps({"cores": cores, "rows": rows}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
