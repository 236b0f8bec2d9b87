"""A manifest whose images are partly re-encoded as JPEG: does a descriptor still find style across formats?

An artist's library mixes PNG exports with JPEG copies. Hand-made descriptors of line work can
mistake JPEG's block noise for texture, so a PNG and a JPEG of drawings in one style drift apart.
This writes a copy of MANIFEST where every other image (by row) is a JPEG at --quality, the rest
links to the originals, for ``python -m trainer eval --data OUT/manifest.csv --split all``.

    .venv/bin/python bench/jpeg_variant.py data/corpus-new/manifest.csv /tmp/aladin-jpeg --quality 80
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from core.images import open_image  # noqa: E402
from trainer.manifest import read_manifest, write_manifest  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("manifest", type=Path)
    p.add_argument("out", type=Path)
    p.add_argument("--quality", type=int, default=80)
    args = p.parse_args(argv)
    samples = read_manifest(args.manifest)
    (args.out / "images").mkdir(parents=True, exist_ok=True)
    rows = []
    for i, sample in enumerate(samples):
        if i % 2:
            rows.append(sample)
            continue
        path = args.out / "images" / f"{i:06d}.jpg"
        open_image(sample.path).save(path, "JPEG", quality=args.quality)
        rows.append(replace(sample, path=str(path.resolve())))
    write_manifest(args.out / "manifest.csv", rows)
    print(f"wrote {args.out / 'manifest.csv'}: {len(rows)} rows, {(len(rows) + 1) // 2} as JPEG q{args.quality}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
