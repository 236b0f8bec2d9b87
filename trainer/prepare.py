"""Data preparation commands: ``import-bamfg``, ``split`` and ``synth``."""

from __future__ import annotations

import argparse
from pathlib import Path

from trainer.bamfg import import_bamfg
from trainer.manifest import at_consensus, read_manifest, write_manifest
from trainer.splits import SPLITS, plan_by_project
from trainer.synthetic import write_style_set


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("import-bamfg", help="manifest from an already downloaded BAM-FG release")
    p.add_argument("--images", required=True, type=Path, metavar="DIR", help="folder holding the BAM-FG images")
    p.add_argument("--raw", type=Path, default=None, metavar="FILE", help="BAM-FG-Raw project group list")
    p.add_argument("--cleaned", type=Path, default=None, metavar="FILE", help="BAM-FG-C_N cleaned group list")
    p.add_argument("--consensus", type=int, default=None, metavar="N",
                   help="keep one consensus level (or: the level of a single-level cleaned list)")
    p.add_argument("--max-missing", type=float, default=0.2, metavar="FRACTION",
                   help="fail when more than this share of listed images is absent (default 0.2)")
    p.add_argument("--out", required=True, type=Path, metavar="MANIFEST.csv")
    p.set_defaults(func=run_import)

    p = sub.add_parser("split", help="write train/val/test manifests split by project (else group)")
    p.add_argument("--data", required=True, type=Path, metavar="MANIFEST|FOLDER")
    p.add_argument("--consensus", type=int, default=None)
    p.add_argument("--val", type=float, default=0.1)
    p.add_argument("--test", type=float, default=0.0)
    p.add_argument("--split-seed", type=int, default=0)
    p.add_argument("--out", required=True, type=Path, metavar="DIR")
    p.set_defaults(func=run_split)

    p = sub.add_parser("synth", help="generate a procedural style set (groups share a style, content varies)")
    p.add_argument("out", type=Path, metavar="DIR")
    p.add_argument("--groups", type=int, default=100)
    p.add_argument("--per-group", type=int, default=8)
    p.add_argument("--size", type=int, default=96)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--palettes", type=int, default=None, metavar="K",
                   help="share K colour schemes between styles (harder: colour alone cannot tell groups apart)")
    p.set_defaults(func=run_synth)


def run_import(args: argparse.Namespace) -> int:
    r = import_bamfg(args.images, args.out, args.raw, args.cleaned, args.consensus, args.max_missing)
    levels = f", consensus levels {r.levels}" if r.levels else ""
    print(f"wrote {r.manifest}: {r.rows - r.missing} rows, {r.images} images, {r.groups} groups in "
          f"{r.projects} projects{levels}; "
          f"{r.missing} listed images missing")
    return 0


def run_split(args: argparse.Namespace) -> int:
    everything = read_manifest(args.data)
    plan = plan_by_project(everything, args.val, args.test, args.split_seed)
    split = plan.apply(at_consensus(everything, args.consensus))
    for name in SPLITS:
        part = split.of(name)
        if part:
            path = write_manifest(args.out / f"{name}.csv", part)
            print(f"wrote {path}: {len(part)} images, {len({s.group for s in part})} groups")
    return 0


def run_synth(args: argparse.Namespace) -> int:
    path = write_style_set(args.out, args.groups, args.per_group, args.size, args.seed, args.palettes)
    print(f"wrote {path}: {args.groups} styles x {args.per_group} images")
    return 0
