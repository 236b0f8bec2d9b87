"""``aladin embed``: image paths in, one L2-normalised float32 row per input line out.

This is a public contract used by benchmarks and other tools: rows are in input
order and always finite (an image the model turns into NaN or infinity counts as
unreadable), and without ``--skip-bad`` a single unreadable image fails the command
without writing a partial file.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from core.cli.options import add_model_options, check_batch_options
from core.errors import AladinError


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
    """The path list, one image per line; trailing blank lines are not inputs.

    Raises:
        AladinError: the list cannot be read, or names no image (a 0-row file would look like success).
    """
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise AladinError(f"cannot read the path list {path}: {exc}") from exc
    while lines and not lines[-1].strip():
        lines.pop()
    if not lines:
        raise AladinError(f"the path list {path} names no images; nothing to embed")
    return lines


def _make_out_folder(out: Path) -> None:
    """Create the folder ``--out`` goes in before any embedding, so a bad path fails at once, not after the work.

    Raises:
        AladinError: the folder cannot be created (a file stands in its way, no permission).
    """
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        blocker = next((folder for folder in reversed(out.parents) if folder.is_file()), None)
        reason = f"{blocker} is a file, not a folder" if blocker else f"cannot create its folder ({exc.strerror})"
        raise AladinError(f"cannot write {out}: {reason}") from exc


def run(args: argparse.Namespace) -> int:
    # Imported here, not above: the parser must not load torch (see core.cli.library).
    import numpy as np
    from tqdm import tqdm

    from core.embedder import Embedder
    from core.files import atomic_write
    from core.modelfile import load_model

    check_batch_options(args)
    paths = read_paths(args.paths_from)
    _make_out_folder(args.out)
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
    try:
        with atomic_write(args.out) as fh:
            np.save(fh, vectors)
        if args.skip_bad:
            bad = [{"line": i + 1, "path": p, "reason": errors[p]} for i, p in enumerate(paths) if p in errors]
            sidecar = args.out.with_suffix(".bad.json")
            sidecar.write_text(json.dumps({"bad": bad, "rows": len(paths), "dim": int(vectors.shape[1])}, indent=1))
    except OSError as exc:
        raise AladinError(f"cannot write {args.out}: {exc.strerror}") from exc
    return 0
