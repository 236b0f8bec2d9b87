"""Command line: ``python -m trainer.corpora build|sources|card|check|select|pack|unpack``."""

from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path

from core.cli.runner import run_command
from core.logs import setup_logging
from trainer.corpora.build import BuildConfig, run_build
from trainer.corpora.card import card_from, install_command
from trainer.corpora.pack import pack, pack_info, unpack
from trainer.corpora.provenance import package_info
from trainer.corpora.reserved import reserved_reason
from trainer.corpora.select import parse_caps, select
from trainer.corpora.sources import SOURCE_NAMES, SOURCES
from trainer.errors import DataError
from trainer.manifest import write_manifest


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m trainer.corpora", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    b = sub.add_parser("build", help="build or update a corpus folder")
    b.add_argument("--out", type=Path, default=Path("data/corpus"))
    b.add_argument("--seed", type=int, default=0)
    b.add_argument("--size", type=int, default=160, help="shorter side of every image (160-256 sensible)")
    b.add_argument("--max-per-group", type=int, default=40)
    b.add_argument("--min-per-group", type=int, default=4)
    b.add_argument("--limit", type=int, default=None, help="at most N groups per source (quick builds)")
    b.add_argument("--sources", default="", help=f"comma-separated subset of: {','.join(SOURCE_NAMES)}")
    b.add_argument("--procedural-styles", type=int, default=1200)
    b.add_argument("--procedural-per-group", type=int, default=12)
    b.add_argument("--restyled-styles", type=int, default=8000, help="recipes of the restyled clip-art source")
    b.add_argument("--root", type=Path, default=Path("/"), help="file-system root packages are read from")
    sub.add_parser("sources", help="list sources, their packages, versions and licences")
    d = sub.add_parser("card", help="print the data card tables of a built corpus (for DATA.md)")
    d.add_argument("corpus", type=Path, help="corpus folder or its sources.json")
    c = sub.add_parser("check", help="verify a manifest has no reserved (evaluation-only) rows")
    c.add_argument("manifest", type=Path)
    s = sub.add_parser("select", help="join manifests into a training manifest without reserved rows, "
                                      "optionally capping images per group of some sources")
    s.add_argument("manifests", type=Path, nargs="+")
    s.add_argument("--out", type=Path, required=True, metavar="OUT.csv")
    s.add_argument("--cap", action="append", default=[], metavar="SOURCE=N",
                   help="keep at most N images per group of SOURCE (repeatable)")
    k = sub.add_parser("pack", help="one WebP tar of a manifest's training pixels, for a machine without the sources")
    k.add_argument("manifest", type=Path)
    k.add_argument("out", type=Path, metavar="OUT.tar")
    k.add_argument("--input-size", type=int, default=96, help="the training input size the pack serves")
    k.add_argument("--quality", type=int, default=80, help="WebP quality 1-99, or 100 for lossless")
    k.add_argument("--workers", type=int, default=None)
    u = sub.add_parser("unpack", help="extract a pack; prints its manifest path and origin data card")
    u.add_argument("archive", type=Path)
    u.add_argument("folder", type=Path)
    return parser.parse_args(argv)


def _sources(args: argparse.Namespace) -> int:
    for source in SOURCES:
        print(f"{source.name}:")
        for name in source.packages:
            p = package_info(name)
            print(f"  {p.name} {p.version or '(not installed)'}  [{p.licence}]")
    return 0


def _card(args: argparse.Namespace) -> int:
    print(card_from(args.corpus))
    print(f"Install the sources: `{install_command()}`")
    return 0


def _unpack(args: argparse.Namespace) -> int:
    manifest = unpack(args.archive, args.folder)
    print(json.dumps({"manifest": str(manifest.resolve()), "origin_card": pack_info(args.folder)["origin_card"]}))
    return 0


def _pack(args: argparse.Namespace) -> int:
    from trainer.data import load_size_for

    def show(done, total):
        print(f"\rpacked {done}/{total}", end="", file=sys.stderr, flush=True)

    result = pack(args.manifest, args.out, load_size_for(args.input_size), args.quality, args.workers, show)
    print(file=sys.stderr)
    for path, reason in result.failed.items():
        print(f"skipped {path}: {reason}", file=sys.stderr)
    print(json.dumps({"images": result.images, "failed": len(result.failed), "bytes": result.bytes}))
    return 0


def _check(args: argparse.Namespace) -> int:
    bad = 0
    with open(args.manifest, newline="", encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            reason = reserved_reason(row["path"])
            if reason:
                bad += 1
                print(reason, file=sys.stderr)
    print(f"{bad} reserved rows")
    return 1 if bad else 0


def _select(args: argparse.Namespace) -> int:
    chosen = select(args.manifests, parse_caps(args.cap))
    if not chosen.samples:
        raise DataError("no rows left to write")
    write_manifest(args.out, chosen.samples)
    print(json.dumps({"images": len(chosen.samples), "groups": len({s.group for s in chosen.samples}),
                      "reserved_dropped": chosen.reserved, "capped": dict(chosen.capped),
                      "repeated": chosen.repeated, "manifest": str(args.out)}))
    return 0


def _build(args: argparse.Namespace) -> int:
    sources = tuple(s for s in args.sources.split(",") if s)
    cfg = BuildConfig(out=args.out, seed=args.seed, size=args.size, max_per_group=args.max_per_group,
                      min_per_group=args.min_per_group, limit=args.limit, sources=sources, root=args.root,
                      procedural_styles=args.procedural_styles, procedural_per_group=args.procedural_per_group,
                      restyled_styles=args.restyled_styles)

    def show(p):
        print(f"[{p.groups_done} groups, {p.images_done} images] {p.source}/{p.group}: "
              f"{p.images if p.kept else 'dropped'}", file=sys.stderr, flush=True)

    try:
        result = run_build(cfg, show)
    except ValueError as exc:
        raise DataError(str(exc)) from exc
    print(json.dumps({"groups": result.groups, "images": result.images, "seconds": result.seconds,
                      "per_source": result.per_source, "manifest": str((args.out / "manifest.csv").resolve())}, indent=1))
    return 0


COMMANDS = {"build": _build, "sources": _sources, "card": _card, "check": _check, "select": _select, "pack": _pack, "unpack": _unpack}


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    setup_logging(False)
    return run_command("python -m trainer.corpora", lambda: COMMANDS[args.command](args))


if __name__ == "__main__":
    sys.exit(main())
