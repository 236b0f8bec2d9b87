"""``python -m trainer gallery``: one picture of what a model retrieves, to judge it by eye.

P@1 says how often the top result shares the query's style; a gallery says what
the misses look like (the same picture in another style, the same colours, the
same subject). Queries, vectors and ranking are the ones ``trainer eval``
scores (:func:`trainer.evaluate.embed_subject`, :func:`trainer.metrics.rank_others`),
so a gallery illustrates the reported numbers rather than a look-alike search.
"""

from __future__ import annotations

import argparse
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from core.errors import ImageError
from core.files import atomic_write
from core.images import fit_square, open_image
from trainer.errors import DataError
from trainer.evaluate import Embedded, add_data_arguments, add_subject_arguments, select_and_embed
from trainer.manifest import Sample
from trainer.metrics import rank_others

QUERY_FRAME = (40, 110, 230)
MATCH_FRAME = (30, 160, 70)
MISS_FRAME = (210, 45, 45)
CANVAS = (255, 255, 255)
PLACEHOLDER = (200, 200, 200)
TEXT = (40, 40, 40)
FRAME = 4
PAD = 8
# Extra space between a query and its results, so a row reads as "this -> these".
GAP = 8
LABEL = 14
HEADER = 20


@dataclass
class Row:
    """One query and its top results (indices into the embedded samples), best first."""

    query: int
    results: list[int]
    scores: list[float]
    same_group: list[bool]


def pick_queries(samples: list[Sample], count: int, rng: np.random.Generator) -> list[int]:
    """Queries from distinct groups, taking sources in turn so that every source shows before any repeats.

    Only groups with another member in the set are eligible: for a singleton
    no result could be right, and its row would say nothing about the model.
    """
    sizes = Counter(s.group for s in samples)
    members: dict[str, dict[str, list[int]]] = {}
    for i, s in enumerate(samples):
        if sizes[s.group] > 1:
            members.setdefault(s.source, {}).setdefault(s.group, []).append(i)
    sources = sorted(members)
    sources = [sources[j] for j in rng.permutation(len(sources))]
    pools = {}
    for source in sources:
        groups = sorted(members[source])
        pools[source] = [groups[j] for j in rng.permutation(len(groups))]
    picked: list[int] = []
    while len(picked) < count and any(pools.values()):
        for source in sources:
            if pools[source] and len(picked) < count:
                group = pools[source].pop()
                picked.append(int(rng.choice(members[source][group])))
    return picked


def retrieve(embedded: Embedded, queries: list[int], top: int) -> list[Row]:
    order, scores = rank_others(embedded.vectors, np.asarray(queries))
    groups = [s.group for s in embedded.samples]
    rows = []
    for q, found, score in zip(queries, order[:, :top], scores[:, :top]):
        rows.append(Row(query=q, results=[int(i) for i in found], scores=[float(x) for x in score],
                        same_group=[groups[i] == groups[q] for i in found]))
    return rows


def canvas_size(rows: int, columns: int, tile: int) -> tuple[int, int]:
    cell = tile + 2 * FRAME
    return PAD + columns * (cell + PAD) + GAP, HEADER + PAD + rows * (cell + LABEL + PAD)


def frame_origin(row: int, column: int, tile: int) -> tuple[int, int]:
    """Top-left corner of a tile's frame; column 0 is the query."""
    cell = tile + 2 * FRAME
    return (PAD + column * (cell + PAD) + (GAP if column else 0), HEADER + PAD + row * (cell + LABEL + PAD))


def _tile(path: str, tile: int) -> Image.Image:
    """The image as the model saw it (shorter side scaled, centre square); a grey square if it went unreadable."""
    try:
        return fit_square(open_image(path, min_side=tile), tile)
    except ImageError:
        return Image.new("RGB", (tile, tile), PLACEHOLDER)


def _fit_text(draw: ImageDraw.ImageDraw, text: str, width: int, font: ImageFont.FreeTypeFont) -> str:
    while text and draw.textlength(text, font=font) > width:
        text = text[:-2] + "…" if len(text) > 2 else ""
    return text


def render(embedded: Embedded, rows: list[Row], tile: int, title: str) -> Image.Image:
    """One row per query: the query framed blue, then its results framed green (same group) or red."""
    columns = 1 + max((len(r.results) for r in rows), default=0)
    image = Image.new("RGB", canvas_size(len(rows), columns, tile), CANVAS)
    draw = ImageDraw.Draw(image)
    font = ImageFont.load_default(size=11)
    draw.text((PAD, 4), _fit_text(draw, title, image.width - 2 * PAD, font), fill=TEXT, font=font)
    cell = tile + 2 * FRAME
    for r, row in enumerate(rows):
        query = embedded.samples[row.query]
        tiles = [(query.path, QUERY_FRAME, query.group)]
        tiles += [(embedded.samples[i].path, MATCH_FRAME if same else MISS_FRAME, f"{score:.3f}")
                  for i, same, score in zip(row.results, row.same_group, row.scores)]
        for c, (path, colour, label) in enumerate(tiles):
            x, y = frame_origin(r, c, tile)
            draw.rectangle((x, y, x + cell - 1, y + cell - 1), fill=colour)
            image.paste(_tile(path, tile), (x + FRAME, y + FRAME))
            draw.text((x, y + cell + 1), _fit_text(draw, label, cell, font), fill=TEXT, font=font)
    return image


def save_png(image: Image.Image, out: Path) -> None:
    """Write atomically, so a reader never sees half a picture."""
    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(out) as fh:
        image.save(fh, format="PNG")


def make_gallery(args: argparse.Namespace) -> tuple[Image.Image, list[Row], Embedded]:
    """The picture, its rows and the embedded set it was drawn from.

    Raises:
        DataError: bad sizes, or no group in the split has two readable images.
    """
    if args.queries < 1 or args.top < 1 or args.tile < 16:
        raise DataError("--queries and --top must be at least 1 and --tile at least 16")
    selection, embedded = select_and_embed(args)
    queries = pick_queries(embedded.samples, args.queries, np.random.default_rng(args.seed))
    if not queries:
        raise DataError(f"no group in the {selection.split} split has two readable images to query with")
    rows = retrieve(embedded, queries, args.top)
    title = f"{embedded.subject}; {selection.split} split of {args.data.name}, {len(embedded.samples)} images"
    return render(embedded, rows, args.tile, title), rows, embedded


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("gallery", help="PNG of queries and their top results, framed green (same group) or red")
    add_data_arguments(p, test=0.1)
    add_subject_arguments(p)
    p.add_argument("--queries", type=int, default=6, help="rows: queries from distinct groups (default 6)")
    p.add_argument("--top", type=int, default=6, help="results per query (default 6)")
    p.add_argument("--seed", type=int, default=0, help="which queries are picked")
    p.add_argument("--tile", type=int, default=128, metavar="PX", help="tile side in pixels (default 128)")
    p.add_argument("--out", type=Path, required=True, metavar="OUT.png")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    image, rows, _ = make_gallery(args)
    save_png(image, args.out)
    right = sum(sum(r.same_group) for r in rows)
    shown = sum(len(r.results) for r in rows)
    print(f"wrote {args.out} ({image.width}x{image.height}): {len(rows)} queries, "
          f"{right} of {shown} results from the query's group")
    return 0
