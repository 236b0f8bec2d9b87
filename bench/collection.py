"""A generated, colourful art collection for screenshots and benchmarks.

Each "style" is a drawing procedure with its own palette (stripes, dots,
watercolour blobs, pixel art, line art, gradients, mosaics), so a page of
results looks like an artist's folder rather than noise. Everything is drawn
with Pillow from a seed: no data is downloaded or shipped.
"""

from __future__ import annotations

import math
import random
from pathlib import Path

from PIL import Image, ImageDraw, ImageFilter

PALETTES = [
    ["#264653", "#2a9d8f", "#e9c46a", "#f4a261", "#e76f51"],
    ["#03071e", "#6a040f", "#d00000", "#e85d04", "#faa307"],
    ["#f1faee", "#a8dadc", "#457b9d", "#1d3557", "#e63946"],
    ["#fefae0", "#dda15e", "#bc6c25", "#606c38", "#283618"],
    ["#ffbe0b", "#fb5607", "#ff006e", "#8338ec", "#3a86ff"],
    ["#edf2f4", "#8d99ae", "#2b2d42", "#ef233c", "#d90429"],
    ["#d8f3dc", "#95d5b2", "#52b788", "#2d6a4f", "#081c15"],
    ["#f8edeb", "#fcd5ce", "#f9dcc4", "#fec89a", "#ffb5a7"],
]


def _stripes(d: ImageDraw.ImageDraw, w, h, pal, r):
    step = r.randint(10, 40)
    angle = r.uniform(-1, 1)
    for i, x in enumerate(range(-h, w + h, step)):
        d.polygon([(x, 0), (x + step // 2, 0), (x + step // 2 + angle * h, h), (x + angle * h, h)], fill=pal[i % 5])


def _dots(d, w, h, pal, r):
    d.rectangle((0, 0, w, h), fill=pal[0])
    for _ in range(r.randint(40, 160)):
        x, y, s = r.uniform(0, w), r.uniform(0, h), r.uniform(4, 28)
        d.ellipse((x - s, y - s, x + s, y + s), fill=r.choice(pal[1:]))


def _blobs(d, w, h, pal, r):
    d.rectangle((0, 0, w, h), fill=pal[0])
    for _ in range(r.randint(8, 20)):
        x, y, s = r.uniform(0, w), r.uniform(0, h), r.uniform(30, 120)
        d.ellipse((x - s, y - s * 0.7, x + s, y + s * 0.7), fill=r.choice(pal[1:]))


def _pixels(d, w, h, pal, r):
    cell = r.choice([8, 12, 16])
    for y in range(0, h, cell):
        for x in range(0, w, cell):
            d.rectangle((x, y, x + cell, y + cell), fill=pal[int((math.sin(x * 0.05 + r.random()) + math.cos(y * 0.04)) * 1.2 + 2.5) % 5])


def _lines(d, w, h, pal, r):
    d.rectangle((0, 0, w, h), fill=pal[0])
    for _ in range(r.randint(20, 60)):
        pts = [(r.uniform(0, w), r.uniform(0, h)) for _ in range(r.randint(2, 5))]
        d.line(pts, fill=pal[-1], width=r.randint(1, 4))


def _gradient(d, w, h, pal, r):
    a, b = Image.new("RGB", (1, 1), pal[r.randint(0, 4)]).getpixel((0, 0)), \
        Image.new("RGB", (1, 1), pal[r.randint(0, 4)]).getpixel((0, 0))
    for y in range(h):
        t = y / max(1, h - 1)
        d.line([(0, y), (w, y)], fill=tuple(round(a[i] * (1 - t) + b[i] * t) for i in range(3)))
    for _ in range(r.randint(2, 6)):
        x, s = r.uniform(0, w), r.uniform(20, 90)
        d.polygon([(x - s, h), (x, h - s * 2), (x + s, h)], fill=pal[r.randint(2, 4)])


def _mosaic(d, w, h, pal, r):
    for _ in range(r.randint(60, 200)):
        x, y = r.uniform(0, w), r.uniform(0, h)
        pts = [(x + r.uniform(-40, 40), y + r.uniform(-40, 40)) for _ in range(3)]
        d.polygon(pts, fill=r.choice(pal), outline=pal[-1])


DRAWERS = [_stripes, _dots, _blobs, _pixels, _lines, _gradient, _mosaic]


def draw(style: int, variant: int, size: tuple[int, int] = (320, 240)) -> Image.Image:
    r = random.Random(style * 1000 + variant)
    pal = PALETTES[style % len(PALETTES)]
    drawer = DRAWERS[style % len(DRAWERS)]
    img = Image.new("RGB", size, pal[0])
    drawer(ImageDraw.Draw(img), size[0], size[1], pal, r)
    if style % 3 == 0:
        img = img.filter(ImageFilter.GaussianBlur(r.uniform(0.5, 2.5)))
    return img


def make_collection(root: Path, styles: int = 14, per_style: int = 8, size: tuple[int, int] = (320, 240),
                    broken: int = 0) -> list[Path]:
    """``styles`` x ``per_style`` JPEGs in one folder per style, plus ``broken`` unreadable files."""
    paths = []
    for s in range(styles):
        folder = root / f"style-{s:02d}-{DRAWERS[s % len(DRAWERS)].__name__.strip('_')}"
        folder.mkdir(parents=True, exist_ok=True)
        for v in range(per_style):
            w, h = size if v % 3 else (size[1], size[0])
            path = folder / f"piece-{v:03d}.jpg"
            if not path.exists():
                draw(s, v, (w, h)).save(path, quality=90)
            paths.append(path)
    for i in range(broken):
        bad = root / f"damaged-{i}.jpg"
        bad.write_bytes(b"\xff\xd8\xff\xe0" + bytes(200))
    return paths
