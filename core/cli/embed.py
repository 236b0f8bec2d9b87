"""``aladin embed``: image paths in, one L2-normalised float32 row per input line out.

This is a public contract used by benchmarks and other tools: rows are in input
order, and without ``--skip-bad`` a single unreadable image fails the command
without writing a partial file.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
from tqdm import tqdm

from core.cli.options import add_model_options
from core.embedder import Embedder
from core.errors import AladinError
from core.files import atomic_write
from core.modelfile import load_model


def register(sub: argparse._SubParsersAction) -> None:

    p = sub.add_parser("embed", help="embed images listed in a file into a .npy array")
    p.add_argument("--paths-from", required=True, type=Path, metavar="FILE",
                   help="text file with one image path per line")
    p.add_argument("--out", required=True, type=Path, metavar="OUT.npy")
    add_model_options(p)
    p.add_argument("--batch-size", type=int, default=16, metavar="N")
    p.add_argument("--workers", type=int, default=None, metavar="N",
                   help="decoding processes (default: as for aladin index; 0 decodes in-process)")
    p.add_argument("--which", choices=("style", "projection"), default=None,
                   help="vector to write: style code f or projection h(f) (default: the model's choice)")
    p.add_argument("--skip-bad", action="store_true",
                   help="write zero rows for unreadable images and list them in OUT.bad.json")
    p.set_defaults(func=run)


def read_paths(path: Path) -> list[str]:
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise AladinError(f"cannot read the path list {path}: {exc}") from exc
    while lines and not lines[-1].strip():
        lines.pop()
    return lines


def run(args: argparse.Namespace) -> int:
    if args.batch_size < 1:
        raise AladinError("--batch-size must be at least 1")
    paths = read_paths(args.paths_from)
    model = load_model(args.model)
    embedder = Embedder(model, device=args.device, which=args.which)
    with tqdm(total=len(paths), unit="img", desc="embedding", file=sys.stderr, disable=None) as bar:
        vectors, errors = embedder.embed_paths(paths, args.batch_size, args.workers, progress=bar.update)
    for path, reason in errors.items():
        print(f"aladin: cannot read {path}: {reason}", file=sys.stderr)
    if errors and not args.skip_bad:
        print(f"aladin: error: {len(errors)} of {len(paths)} images could not be read; nothing written "
              "(use --skip-bad to write zero rows for them)", file=sys.stderr)
        return 1
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(args.out) as fh:
        np.save(fh, vectors)
    if args.skip_bad:
        bad = [{"line": i + 1, "path": p, "reason": errors[p]} for i, p in enumerate(paths) if p in errors]
        sidecar = args.out.with_suffix(".bad.json")
        sidecar.write_text(json.dumps({"bad": bad, "rows": len(paths), "dim": int(vectors.shape[1])}, indent=1))
    return 0
