"""How many generated style recipes are near-twins of another: the same content through every recipe.

A recipe group teaches something only if no other group looks the same: two near-identical recipes
are each other's negatives. This renders the same few content pictures through the first N recipes of
the restyled clip-art source (or the procedural treatments) and reports, per recipe, the distance to its
nearest other recipe (mean absolute difference of 32 px colour thumbnails on the trainer's grey, over the
pixels that are not that grey in either: an object's margin would otherwise dilute every difference; 0-1).

    python bench/recipe_twins.py --source restyled --recipes 2000 --report runs/restyled/twins.json
    python bench/recipe_twins.py --source procedural --recipes 1200
    python bench/recipe_twins.py --recipes 8000 --queries 1000    # a sample of recipes against all 8,000

Prints one JSON line: the share of recipes closer than 0.03 to another (the corpus builder's near-duplicate
threshold), the quartiles of the nearest distance, and the same per colour mode or family.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from core.images import BACKGROUND, fit_square, to_rgb  # noqa: E402
from trainer.corpora.imaging import RenderError  # noqa: E402
from trainer.corpora.spec import Context  # noqa: E402

TWIN = 0.03


def _distinct(sample, salt: int, count: int):
    """The first ``count`` distinct recipes in the builder's order (seed 0, draw i from (0, salt, i))."""
    seen, i = set(), 0
    while len(seen) < count:
        style = sample(np.random.default_rng([0, salt, i]))
        i += 1
        if style.key not in seen:
            seen.add(style.key)
            yield style


def restyled_renders(count: int, contents: int, size: int):
    """(recipe kind, thumbnails) of the first ``count`` restyled recipes on the same drawings."""
    from trainer.corpora.restyle import drawing_pool, render_restyled, sample_restyle

    pool = drawing_pool(Context())
    rng = np.random.default_rng(1)
    drawings = []
    for index in rng.permutation(len(pool)):
        path = pool[index]
        try:
            probe = np.asarray(render_restyled(_probe_style(), path, size, 0), dtype=np.float32) / 255.0
        except RenderError:
            continue
        drawn = probe[..., 3] > 0.5
        if drawn.mean() < 0.2 or (probe[..., :3][drawn] @ [0.299, 0.587, 0.114]).std() < 0.12:
            continue  # small or single-tone drawings show little of a recipe
        drawings.append(path)
        if len(drawings) == contents:
            break
    for style in _distinct(sample_restyle, 104729, count):
        thumbs = []
        for path in drawings:
            try:
                thumbs.append(_thumb(render_restyled(style, path, size, 0)))
            except RenderError:
                thumbs.append(None)
        yield style.params["colours"], thumbs


def _probe_style():
    """Colours and strokes as drawn: probes are drawings that render, cover a fifth of the square and hold
    several tones, so a recipe's colours and lines show on them."""
    from trainer.corpora.restyle import Restyle

    return Restyle({"colours": "shift", "hue_shift": 0.0, "saturation": 1.0, "gamma": 1.0, "gradients": "keep",
                    "strokes": "none", "lines": 0, "outline": 0, "line_colour": "#141414", "rim": 0,
                    "rim_colour": "#ffffff", "shadow": [], "pixels": 0, "ground": "", "grain": 0.0})


def procedural_renders(count: int, contents: int, size: int):
    """(family, thumbnails) of the first ``count`` procedural recipes on the same content pictures."""
    from trainer.corpora.sources import content_pool
    from trainer.corpora.treatments import apply_style, sample_style

    pool = content_pool(Context())
    rng = np.random.default_rng(1)
    images = []
    for index in rng.permutation(len(pool)):
        try:
            images.append(fit_square(pool[index][2](size).convert("RGB"), size))
        except RenderError:
            continue
        if len(images) == contents:
            break
    for style in _distinct(sample_style, 7919, count):
        yield style.family, [_thumb(apply_style(style, img, 0)) for img in images]


def _thumb(img: Image.Image) -> np.ndarray:
    return np.asarray(to_rgb(img).resize((32, 32), Image.Resampling.BILINEAR), dtype=np.float32) / 255.0


def nearest_distances(thumbs: list[list[np.ndarray | None]], queries: np.ndarray | None = None) -> np.ndarray:
    """Per recipe (or per recipe in ``queries``), the mean-absolute distance to the closest other recipe over
    the contents both rendered. The comparison is quadratic: ``queries`` measures a sample against all."""
    n, k = len(thumbs), len(thumbs[0])
    stack = np.zeros((n, k, 32 * 32 * 3), np.float32)
    valid = np.zeros((n, k), bool)
    for i, row in enumerate(thumbs):
        for j, t in enumerate(row):
            if t is not None:
                stack[i, j] = t.ravel()
                valid[i, j] = True
    grey = BACKGROUND[0] / 255.0
    drawn = (np.abs(stack - grey) > 0.02).reshape(n, k, -1, 3).any(3)
    queries = np.arange(n) if queries is None else queries
    best = np.full(len(queries), np.inf)
    for q, i in enumerate(queries):
        both = valid[i][None, :] & valid
        either = (drawn | drawn[i][None]).repeat(3, axis=2)
        dist = (np.abs(stack - stack[i][None]) * either).sum(2) / np.maximum(either.sum(2), 1)
        mean = np.where(both.any(1), (dist * both).sum(1) / np.maximum(both.sum(1), 1), np.inf)
        mean[i] = np.inf
        best[q] = mean.min()
    return best


def summary(best: np.ndarray) -> dict:
    finite = best[np.isfinite(best)]
    return {"recipes": int(len(best)), "twin_share": round(float((finite < TWIN).mean()), 4),
            "nearest_quartiles": [round(float(q), 4) for q in np.percentile(finite, [25, 50, 75])]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--source", choices=("restyled", "procedural"), default="restyled")
    parser.add_argument("--recipes", type=int, default=1000)
    parser.add_argument("--contents", type=int, default=6, help="content pictures every recipe renders")
    parser.add_argument("--size", type=int, default=96)
    parser.add_argument("--queries", type=int, default=None,
                        help="measure this many recipes (a seeded sample) against all, instead of every one")
    parser.add_argument("--report", type=Path)
    args = parser.parse_args(argv)
    started = time.monotonic()
    renders = (restyled_renders if args.source == "restyled" else procedural_renders)(args.recipes, args.contents,
                                                                                        args.size)
    kinds, thumbs = zip(*renders)
    queries = None
    if args.queries is not None and args.queries < len(thumbs):
        queries = np.sort(np.random.default_rng(0).choice(len(thumbs), args.queries, replace=False))
    best = nearest_distances(list(thumbs), queries)
    kinds = np.array(kinds)[queries if queries is not None else slice(None)]
    report = {"source": args.source, **summary(best), "measured_against": len(thumbs),
              "by_kind": {k: summary(best[kinds == k]) for k in sorted(set(kinds))},
              "seconds": round(time.monotonic() - started, 1)}
    line = json.dumps(report)
    print(line)
    if args.report:
        args.report.parent.mkdir(parents=True, exist_ok=True)
        args.report.write_text(line + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
