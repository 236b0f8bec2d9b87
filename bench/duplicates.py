"""Precision and recall of the duplicate search, and its time at 100,000 vectors.

A generated collection: originals in a handful of styles (bench/styled.py's textures with a few
shapes laid out per picture, so pictures of one style differ as works of one series do), one edited
copy per original and edit (resized, JPEG re-encoded, cropped 5-10 %, rotated pixels with the EXIF
tag that turns them back), and as many same-style pictures without copies as distractors. It is
indexed with the default model and searched with :func:`core.duplicates.find_duplicates`; a found
pair is right when both files come from one original. The timing part plants near-duplicate pairs
in synthetic clustered vectors and times the candidate search on the hnswlib graph, which the
library normally has cached already (its build time is printed apart).

    .venv/bin/python bench/duplicates.py                 # both parts
    .venv/bin/python bench/duplicates.py --vectors 0     # quality only
"""

from __future__ import annotations

import argparse
import itertools
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.styled import styled_array  # noqa: E402

EXIF_ORIENTATION = 0x0112


def resized(img: Image.Image, dst: Path, rng: np.random.Generator) -> Path:
    scale = rng.uniform(0.5, 0.8)
    img.resize((round(img.width * scale), round(img.height * scale)), Image.Resampling.LANCZOS).save(dst)
    return dst


def reencoded(img: Image.Image, dst: Path, rng: np.random.Generator) -> Path:
    img.save(dst.with_suffix(".jpg"), quality=int(rng.integers(55, 85)))
    return dst.with_suffix(".jpg")


def cropped(img: Image.Image, dst: Path, rng: np.random.Generator) -> Path:
    """5-10 % of the width and of the height cut away, split at random between the two sides."""
    cut = (np.array(img.size) * rng.uniform(0.05, 0.10, 2)).astype(int)
    left = rng.integers(0, cut + 1)
    right, bottom = img.width - int(cut[0] - left[0]), img.height - int(cut[1] - left[1])
    img.crop((int(left[0]), int(left[1]), right, bottom)).save(dst)
    return dst


def exif_rotated(img: Image.Image, dst: Path, rng: np.random.Generator) -> Path:
    """Pixels stored a quarter turn anticlockwise, with orientation 6 (turn clockwise to show): upright when viewed."""
    stored = img.rotate(90, expand=True)
    exif = stored.getexif()
    exif[EXIF_ORIENTATION] = 6
    stored.save(dst.with_suffix(".jpg"), exif=exif, quality=92)
    return dst.with_suffix(".jpg")


EDITS: dict[str, Callable[[Image.Image, Path, np.random.Generator], Path]] = {
    "resize": resized, "jpeg": reencoded, "crop": cropped, "exif-rotate": exif_rotated}


def picture(style: int, variant: int, size: int = 256, shapes: bool = True) -> Image.Image:
    """A picture of ``style``: its texture with a few shapes in the style's own colours, laid out per variant
    (without ``shapes``, the bare textures: variants of one style then differ only in phase and grain)."""
    base = styled_array(style, variant, size)
    rng = np.random.default_rng(7919 * style + variant)
    img = Image.fromarray(base)
    if not shapes:
        return img
    draw = ImageDraw.Draw(img)
    colours = base.reshape(-1, 3)[rng.integers(0, size * size, 4)]
    for _ in range(int(rng.integers(3, 7))):
        x0, y0 = rng.integers(0, size - size // 6, 2)
        x1, y1 = (x0, y0) + rng.integers(size // 8, size // 2, 2)
        colour = tuple(int(c) for c in colours[rng.integers(0, len(colours))])
        (draw.ellipse if rng.random() < 0.5 else draw.rectangle)((int(x0), int(y0), int(x1), int(y1)), fill=colour)
    return img


def make_collection(folder: Path, styles: int, per_style: int, size: int = 256, seed: int = 0,
                    shapes: bool = True) -> tuple[list[set[str]], list[str]]:
    """Originals with one copy per edit (half of each style's pictures) and distractors (the other half).

    Returns:
        The true groups (an original and its copies, as paths) and every file.
    """
    rng = np.random.default_rng(seed)
    groups, files = [], []
    for style, variant in itertools.product(range(styles), range(per_style)):
        img = picture(style, variant, size, shapes)
        original = folder / f"style{style:02d}" / f"v{variant:02d}.png"
        original.parent.mkdir(parents=True, exist_ok=True)
        img.save(original)
        files.append(str(original))
        if variant % 2:
            continue  # a distractor: same style, no copies
        copies = folder / "copies" / f"s{style:02d}v{variant:02d}"
        copies.mkdir(parents=True, exist_ok=True)
        made = {str(original)} | {str(edit(img, copies / f"{name}.png", rng)) for name, edit in EDITS.items()}
        files.extend(sorted(made - {str(original)}))
        groups.append(made)
    return groups, files


def pairs_of(groups) -> set[frozenset[str]]:
    return {frozenset(p) for g in groups for p in itertools.combinations(sorted(g), 2)}


def quality(args) -> None:
    from core.duplicates import candidate_pairs, find_duplicates
    from core.embedder import Embedder
    from core.indexer import index_folders
    from core.library import Library
    from core.modelfile import load_model
    from core.search import Searcher

    with tempfile.TemporaryDirectory() as tmp:
        art = Path(tmp) / "art"
        truth, files = make_collection(art, args.styles, args.per_style, shapes=not args.plain)
        embedder = Embedder(load_model(args.model), device="cpu")
        with Library.open(Path(tmp) / "library") as library:
            list(index_folders(library, [art], embedder, workers=0))
            index = Searcher(library, embedder).cache.current()
            report = find_duplicates(library, index)
            facts = library.image_facts(library.vector_ids().tolist())
            candidates = {frozenset((facts[int(a)].path, facts[int(b)].path)) for a, b in candidate_pairs(index)}
            again = time.perf_counter()
            find_duplicates(library, index)
            cached = time.perf_counter() - again
        found = [{f.path for f in g.files} for g in report.groups]
        want, got = pairs_of(truth), pairs_of(found)
        hits = want & got
        print(f"{len(files)} files: {len(truth)} originals with {len(EDITS)} edited copies each, "
              f"{len(files) - len(truth) * (len(EDITS) + 1)} same-style distractors")
        print(f"pairs: precision {len(hits) / max(len(got), 1):.3f}, recall {len(hits) / max(len(want), 1):.3f} "
              f"({len(got)} found, {len(want)} true)")
        for name in EDITS:
            kind = {p for p in want if any(Path(x).stem == name for x in p) and any("copies" not in x for x in p)}
            print(f"  recall of original-{name} pairs: {len(kind & got) / max(len(kind), 1):.3f} ({len(kind)})")
        print(f"style-vector candidates: {len(candidates)} pairs, {len(candidates - want)} of them not copies "
              f"(left to the pixel check); {len(want - candidates)} true pairs not among them (joined through chains)")
        print(f"search: {report.pairs_checked} candidate pairs compared in {report.seconds:.2f} s "
              f"({cached:.2f} s again with cached thumbprints); {len(report.skipped)} files skipped")


def timing(args) -> None:
    from core.duplicates import candidate_pairs
    from core.vector_index import HnswIndex

    rng = np.random.default_rng(1)
    n, dim = args.vectors, args.dim
    centres = rng.normal(size=(max(n // 500, 1), dim)).astype(np.float32)
    x = centres[rng.integers(0, len(centres), n)] + 0.6 * rng.normal(size=(n, dim)).astype(np.float32)
    planted = n // 100
    x[n - planted:] = x[:planted] + 0.03 * rng.normal(size=(planted, dim)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    start = time.perf_counter()
    index = HnswIndex(dim, n)
    index.add(np.arange(n, dtype=np.int64), x)
    built = time.perf_counter() - start
    start = time.perf_counter()
    pairs = candidate_pairs(index)
    searched = time.perf_counter() - start
    found = {(int(a), int(b)) for a, b in pairs}
    recovered = sum((i, n - planted + i) in found for i in range(planted))
    print(f"{n} vectors ({dim}-D): graph built in {built:.1f} s (normally cached); candidate search "
          f"{searched:.1f} s, {len(pairs)} candidate pairs, planted pairs recovered {recovered}/{planted}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--styles", type=int, default=8)
    parser.add_argument("--per-style", type=int, default=8, help="pictures per style; half get edited copies")
    parser.add_argument("--plain", action="store_true",
                        help="bare textures: pictures of one style nearly alike (a stress test of the pixel check)")
    parser.add_argument("--model", default=None, help="model file or name (default: the bundled model)")
    parser.add_argument("--vectors", type=int, default=100_000, help="synthetic vectors for the timing (0: skip)")
    parser.add_argument("--dim", type=int, default=320, help="their length (the bundled model's is 320)")
    args = parser.parse_args(argv)
    quality(args)
    if args.vectors:
        timing(args)


if __name__ == "__main__":
    main()
