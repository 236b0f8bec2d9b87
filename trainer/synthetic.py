"""Procedural styles: groups of images that share *how* they are drawn, not *what*.

A :class:`Style` fixes a palette, a stroke kind and width, a texture, a
shading and a line quality; each image of the group draws different content
(a fresh layout of shapes and marks) in that style. Tests and quick
experiments get a style-retrieval task with known groups, generated in
milliseconds and free of any licence.
"""

from __future__ import annotations

import colorsys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from trainer.manifest import Sample, write_manifest

STROKES = ("line", "curve", "dot", "rect", "hatch")
TEXTURES = ("none", "grain", "paper", "stripes")
SHADINGS = ("flat", "gradient", "vignette")


@dataclass(frozen=True)
class Style:
    palette: tuple[tuple[int, int, int], ...]
    background: tuple[int, int, int]
    stroke: str
    width: float
    texture: str
    texture_strength: float
    shading: str
    jitter: float
    blur: float


def _colour(h: float, s: float, v: float) -> tuple[int, int, int]:
    r, g, b = colorsys.hsv_to_rgb(h % 1.0, min(max(s, 0), 1), min(max(v, 0), 1))
    return int(r * 255), int(g * 255), int(b * 255)


def random_style(rng: np.random.Generator, colours: np.random.Generator | None = None) -> Style:
    """A style from ``rng``; its palette and background from ``colours`` when given.

    Passing one of a few shared colour generators makes groups that agree in
    colour and differ only in marks, texture, shading and line quality: the
    harder, less colour-driven task.
    """
    c = colours or rng
    hue = c.random()
    spread = c.uniform(0.03, 0.35)
    sat = c.uniform(0.2, 1.0)
    val = c.uniform(0.35, 1.0)
    palette = tuple(_colour(hue + spread * k, sat * c.uniform(0.8, 1.1), val * c.uniform(0.7, 1.1))
                    for k in range(4))
    background = _colour(hue + 0.5 * c.integers(0, 2), sat * c.uniform(0, 0.4), c.uniform(0.1, 1.0))
    return Style(palette=palette, background=background, stroke=str(rng.choice(STROKES)),
                 width=float(rng.uniform(0.01, 0.06)), texture=str(rng.choice(TEXTURES)),
                 texture_strength=float(rng.uniform(0.04, 0.2)), shading=str(rng.choice(SHADINGS)),
                 jitter=float(rng.choice([0.0, rng.uniform(0.005, 0.03)])), blur=float(rng.choice([0, 0, 0.6, 1.2])))


def _wobble(points: np.ndarray, jitter: float, size: int, rng: np.random.Generator) -> list[tuple[float, float]]:
    """Subdivide a polyline and displace it: the 'line quality' of a shaky or confident hand."""
    if jitter <= 0:
        return [tuple(p) for p in points]
    fine = []
    for a, b in zip(points[:-1], points[1:]):
        for t in np.linspace(0, 1, 6, endpoint=False):
            fine.append(a + (b - a) * t)
    fine.append(points[-1])
    fine = np.array(fine) + rng.normal(0, jitter * size, (len(fine), 2))
    return [tuple(p) for p in fine]


def _mark(draw: ImageDraw.ImageDraw, style: Style, size: int, rng: np.random.Generator) -> None:
    colour = style.palette[rng.integers(0, len(style.palette))]
    width = max(1, round(style.width * size))
    x, y = rng.uniform(0, size, 2)
    length = rng.uniform(0.1, 0.4) * size
    angle = rng.uniform(0, np.pi)
    if style.stroke == "line":
        pts = np.array([[x, y], [x + length * np.cos(angle), y + length * np.sin(angle)]])
        draw.line(_wobble(pts, style.jitter, size, rng), fill=colour, width=width)
    elif style.stroke == "curve":
        t = np.linspace(0, 1, 12)[:, None]
        bend = rng.uniform(-0.5, 0.5) * length
        pts = np.hstack([x + t * length * np.cos(angle) - np.sin(np.pi * t) * bend * np.sin(angle),
                         y + t * length * np.sin(angle) + np.sin(np.pi * t) * bend * np.cos(angle)])
        draw.line(_wobble(pts, style.jitter, size, rng), fill=colour, width=width)
    elif style.stroke == "dot":
        r = width * rng.uniform(0.8, 1.6)
        draw.ellipse((x - r, y - r, x + r, y + r), fill=colour)
    elif style.stroke == "rect":
        w, h = rng.uniform(0.05, 0.25, 2) * size
        pts = np.array([[x, y], [x + w, y], [x + w, y + h], [x, y + h], [x, y]])
        draw.line(_wobble(pts, style.jitter, size, rng), fill=colour, width=width)
    else:
        for k in range(4):
            off = k * width * 2.5
            pts = np.array([[x + off, y], [x + off + length * 0.4, y + length * 0.4]])
            draw.line(_wobble(pts, style.jitter, size, rng), fill=colour, width=width)


def _shade(size: int, style: Style, rng: np.random.Generator) -> np.ndarray:
    yy, xx = np.mgrid[0:size, 0:size] / max(size - 1, 1)
    if style.shading == "gradient":
        a = rng.uniform(0, 2 * np.pi)
        ramp = (np.cos(a) * (xx - 0.5) + np.sin(a) * (yy - 0.5))
        return 1.0 + 0.5 * ramp
    if style.shading == "vignette":
        cx, cy = rng.uniform(0.3, 0.7, 2)
        return 1.15 - 0.7 * ((xx - cx) ** 2 + (yy - cy) ** 2)
    return np.ones((size, size))


def _texture(size: int, style: Style, rng: np.random.Generator) -> np.ndarray:
    s = style.texture_strength
    if style.texture == "grain":
        return rng.normal(0, s, (size, size))
    if style.texture == "paper":
        coarse = rng.normal(0, s, (size // 8 + 2, size // 8 + 2))
        img = Image.fromarray(((coarse + 1) * 127.5).clip(0, 255).astype(np.uint8))
        return np.asarray(img.resize((size, size), Image.Resampling.BICUBIC), np.float64) / 127.5 - 1
    if style.texture == "stripes":
        yy, xx = np.mgrid[0:size, 0:size]
        return s * np.sign(np.sin((xx + yy) * (2 * np.pi / max(3, size // 16))))
    return np.zeros((size, size))


def render(style: Style, size: int, rng: np.random.Generator) -> np.ndarray:
    """One image (size x size x 3 uint8) of new content drawn in ``style``."""
    img = Image.new("RGB", (size, size), style.background)
    draw = ImageDraw.Draw(img)
    # Content: one or two large silhouettes in a palette colour, placed anew each time.
    for _ in range(rng.integers(1, 3)):
        x0, y0 = rng.uniform(-0.1, 0.6, 2) * size
        w, h = rng.uniform(0.25, 0.6, 2) * size
        fill = style.palette[rng.integers(0, len(style.palette))]
        if rng.random() < 0.5:
            draw.ellipse((x0, y0, x0 + w, y0 + h), fill=fill)
        else:
            draw.polygon([(x0, y0 + h), (x0 + w / 2, y0), (x0 + w, y0 + h)], fill=fill)
    for _ in range(rng.integers(8, 25)):
        _mark(draw, style, size, rng)
    if style.blur:
        img = img.filter(ImageFilter.GaussianBlur(style.blur * size / 128))
    arr = np.asarray(img, np.float64) / 255.0
    arr = arr * _shade(size, style, rng)[..., None] + _texture(size, style, rng)[..., None]
    return (arr.clip(0, 1) * 255).round().astype(np.uint8)


def style_set(groups: int, per_group: int, size: int = 64, seed: int = 0,
              palettes: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """In-memory set: images (G*P, size, size, 3) uint8 and their group labels.

    ``palettes`` limits the set to that many shared colour schemes (see :func:`random_style`).
    """
    images, labels = [], []
    for g in range(groups):
        colours = np.random.default_rng([seed, 1 << 20, g % palettes]) if palettes else None
        style = random_style(np.random.default_rng([seed, g]), colours)
        for i in range(per_group):
            images.append(render(style, size, np.random.default_rng([seed, g, i + 1])))
            labels.append(g)
    return np.stack(images), np.array(labels)


def write_style_set(root: str | Path, groups: int, per_group: int, size: int = 64, seed: int = 0,
                    palettes: int | None = None) -> Path:
    """Write PNGs under ``root/<group>/`` and ``root/manifest.csv``; returns the manifest."""
    root = Path(root)
    images, labels = style_set(groups, per_group, size, seed, palettes)
    samples = []
    for k, (img, g) in enumerate(zip(images, labels)):
        folder = root / f"style{g:04d}"
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{k:06d}.png"
        Image.fromarray(img).save(path)
        samples.append(Sample(str(path), f"style{g:04d}"))
    return write_manifest(root / "manifest.csv", samples)
