"""Procedural style treatments: one parameter set is one style group.

A treatment turns any content image into a strongly stylised one (ink,
hatching, watercolour wash, halftone, pixel art, ...). :func:`sample_style`
draws a family *and* all of its parameters (palette, line spacing, dot size,
paper, outline weight) from a seeded generator, so every style is a fixed,
reproducible recipe; the builder applies one recipe to many different content
images to make a group whose only shared trait is the style. Because the same
content image goes through several recipes, the manifest's ``content`` column
lets an evaluation count "same content, different style" mistakes.

Everything is numpy + Pillow on small images (about 192 px), so a few
thousand images take minutes on one core.
"""

from __future__ import annotations

import colorsys
import hashlib
import json
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

Array = np.ndarray


@dataclass(frozen=True)
class Style:
    """A reproducible recipe: a treatment family and its parameters."""

    family: str
    params: dict = field(default_factory=dict)

    @property
    def key(self) -> str:
        """Stable short id of the recipe (family + parameters)."""
        blob = json.dumps([self.family, self.params], sort_keys=True).encode()
        return f"{self.family}-{hashlib.sha1(blob).hexdigest()[:8]}"


# ----------------------------------------------------------------- helpers

def _to_float(img: Image.Image) -> Array:
    return np.asarray(img.convert("RGB"), dtype=np.float32) / 255.0


def _to_image(arr: Array) -> Image.Image:
    return Image.fromarray(np.clip(arr * 255.0 + 0.5, 0, 255).astype(np.uint8), "RGB")


def _lum(arr: Array) -> Array:
    return arr @ np.array([0.299, 0.587, 0.114], dtype=np.float32)


def _box(arr: Array, r: int, axis: int) -> Array:
    """Running mean of width 2r+1 along ``axis`` (edges repeated), via a cumulative sum."""
    pad = [(0, 0)] * arr.ndim
    pad[axis] = (r + 1, r)
    c = np.cumsum(np.pad(arr, pad, mode="edge"), axis=axis, dtype=np.float64)
    n = arr.shape[axis]
    hi = np.take(c, np.arange(2 * r + 1, 2 * r + 1 + n), axis=axis)
    lo = np.take(c, np.arange(0, n), axis=axis)
    return ((hi - lo) / (2 * r + 1)).astype(np.float32)


def _blur(arr: Array, radius: float) -> Array:
    """Approximate Gaussian blur (three box passes per axis) of a 2-D or H x W x C float array.

    Pillow cannot blur float images and scipy is not a dependency; three box
    filters of radius r give a Gaussian of about that standard deviation.
    """
    r = int(round(radius))
    if r <= 0:
        return arr
    out = arr.astype(np.float32)
    for axis in (0, 1):
        for _ in range(3):
            out = _box(out, r, axis)
    return out


def _equalise(lum: Array) -> Array:
    """Spread luminance over 0-1 by rank, so dark and light photos both use every tone band."""
    flat = lum.ravel()
    ranks = np.empty(flat.size, dtype=np.float32)
    ranks[np.argsort(flat, kind="stable")] = np.linspace(0.0, 1.0, flat.size, dtype=np.float32)
    return ranks.reshape(lum.shape)


def _edges(lum: Array, blur: float = 1.0) -> Array:
    """Sobel gradient magnitude, normalised to its 98th percentile."""
    g = _blur(lum, blur)
    p = np.pad(g, 1, mode="edge")
    gx = (p[1:-1, 2:] - p[1:-1, :-2]) * 2 + (p[:-2, 2:] - p[:-2, :-2]) + (p[2:, 2:] - p[2:, :-2])
    gy = (p[2:, 1:-1] - p[:-2, 1:-1]) * 2 + (p[2:, :-2] - p[:-2, :-2]) + (p[2:, 2:] - p[:-2, 2:])
    mag = np.hypot(gx, gy)
    return np.clip(mag / (np.percentile(mag, 98) + 1e-6), 0, 1)


def _dilate(mask: Array, width: int) -> Array:
    if width <= 1:
        return mask
    img = Image.fromarray((mask * 255).astype(np.uint8), "L").filter(ImageFilter.MaxFilter(width | 1))
    return np.asarray(img, dtype=np.float32) / 255.0


def _noise(shape: tuple[int, int], rng: np.random.Generator, scale: float) -> Array:
    """Smooth value noise in 0-1 with features about ``scale`` pixels wide."""
    h, w = shape
    small = rng.random((max(2, int(h / scale) + 2), max(2, int(w / scale) + 2))).astype(np.float32)
    img = Image.fromarray(small, "F").resize((w, h), Image.Resampling.BICUBIC)
    arr = np.asarray(img, dtype=np.float32)
    return (arr - arr.min()) / (arr.max() - arr.min() + 1e-6)


def _paper(shape: tuple[int, int], rng: np.random.Generator, strength: float, fibre: float) -> Array:
    """Paper grain: fine noise plus soft blotches, as a multiplier near 1."""
    fine = _blur(rng.random(shape).astype(np.float32), fibre)
    fine = (fine - fine.mean()) / (fine.std() + 1e-6)
    blotch = _noise(shape, rng, 40.0) - 0.5
    return 1.0 + strength * (0.05 * fine + 0.15 * blotch)


def _hex(rgb) -> str:
    return "#%02x%02x%02x" % tuple(int(round(c * 255)) for c in rgb)


def _rgb(hexstr: str) -> Array:
    return np.array([int(hexstr[i:i + 2], 16) for i in (1, 3, 5)], dtype=np.float32) / 255.0


def harmonious_palette(rng: np.random.Generator, n: int) -> list[str]:
    """A harmonious palette (monochrome, analogous, complementary or triad), dark to light."""
    scheme = rng.choice(["mono", "analogous", "complementary", "triad", "warmcool"])
    base = rng.random()
    spread = {"mono": [0.0], "analogous": [0.0, 0.06, -0.06, 0.12], "complementary": [0.0, 0.5],
              "triad": [0.0, 1 / 3, 2 / 3], "warmcool": [0.05, 0.58]}[scheme]
    sat = rng.uniform(0.35, 0.95)
    colours = []
    for i in range(n):
        t = i / max(1, n - 1)
        hue = (base + spread[i % len(spread)] + rng.normal(0, 0.02)) % 1.0
        light = 0.1 + 0.8 * t
        colours.append(colorsys.hls_to_rgb(hue, light, sat * (1 - 0.5 * abs(t - 0.5))))
    return [_hex(c) for c in colours]


def _paper_colour(rng: np.random.Generator) -> str:
    return str(rng.choice(["#f7f3e8", "#ffffff", "#efe4c8", "#e8e2d6", "#f2efe6", "#dfe7ea", "#f5e6e0"]))


def _ink_colour(rng: np.random.Generator) -> str:
    return str(rng.choice(["#141414", "#1d2a5a", "#3b2414", "#5a1a1a", "#0f3b2c", "#2d2d3a", "#4a3b8c"]))


def _coords(shape: tuple[int, int], angle_deg: float) -> tuple[Array, Array]:
    """Pixel coordinates rotated by ``angle_deg`` (for line screens and dot grids)."""
    h, w = shape
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    a = np.deg2rad(angle_deg)
    return xx * np.cos(a) + yy * np.sin(a), -xx * np.sin(a) + yy * np.cos(a)


def _finish(arr: Array, p: dict, rng: np.random.Generator) -> Array:
    """Shared optional finish: paper grain multiplied in."""
    if p.get("grain", 0) > 0:
        arr = arr * _paper(arr.shape[:2], rng, p["grain"], 0.7)[..., None]
    return np.clip(arr, 0, 1)


# -------------------------------------------------------------- treatments

def posterise(arr: Array, p: dict, rng: np.random.Generator) -> Array:
    lum = _equalise(_blur(_lum(arr), p["blur"]))
    pal = np.stack([_rgb(c) for c in p["palette"]])
    bands = np.minimum((lum * len(pal)).astype(int), len(pal) - 1)
    out = pal[bands]
    if p["outline"]:
        edge = _dilate((_edges(_lum(arr), 1.2) > p["edge_threshold"]).astype(np.float32), p["outline"])
        out = out * (1 - edge[..., None]) + _rgb(p["ink"]) * edge[..., None]
    return _finish(out, p, rng)


def halftone(arr: Array, p: dict, rng: np.random.Generator) -> Array:
    paper = _rgb(p["paper"])
    h, w = arr.shape[:2]
    cell = p["cell"]
    if p["colour"]:
        out = np.ones_like(arr) * paper
        inks = {"c": np.array([0.0, 0.68, 0.94]), "m": np.array([0.93, 0.0, 0.55]), "y": np.array([1.0, 0.95, 0.0])}
        for i, (name, angle) in enumerate(zip("cmy", (15, 75, 0))):
            density = _blur(1.0 - arr[..., i], cell / 2)
            u, v = _coords((h, w), p["angle"] + angle)
            du, dv = (u % cell) - cell / 2, (v % cell) - cell / 2
            dot = (np.hypot(du, dv) < cell * 0.62 * np.sqrt(np.clip(density, 0, 1))).astype(np.float32)
            out = out * (1 - dot[..., None] * (1 - inks[name].astype(np.float32)))
        return _finish(out, p, rng)
    density = _blur(1.0 - _equalise(_lum(arr)), cell / 2) ** p["gamma"]
    u, v = _coords((h, w), p["angle"])
    du, dv = (u % cell) - cell / 2, (v % cell) - cell / 2
    if p["shape"] == "line":
        dot = (np.abs(dv) < cell * 0.5 * density).astype(np.float32)
    else:
        dot = (np.hypot(du, dv) < cell * 0.7 * np.sqrt(density)).astype(np.float32)
    out = paper * (1 - dot[..., None]) + _rgb(p["ink"]) * dot[..., None]
    return _finish(out, p, rng)


def hatching(arr: Array, p: dict, rng: np.random.Generator) -> Array:
    h, w = arr.shape[:2]
    dark = 1.0 - _equalise(_blur(_lum(arr), 1.0))
    ink = np.zeros((h, w), dtype=np.float32)
    wobble = _noise((h, w), rng, 30.0) * p["wobble"]
    for i, threshold in enumerate(p["thresholds"]):
        u, _ = _coords((h, w), p["angle"] + i * p["cross_angle"])
        line = (((u + wobble) % p["spacing"]) < p["line_width"]).astype(np.float32)
        ink = np.maximum(ink, line * (dark > threshold))
    if p["outline"]:
        ink = np.maximum(ink, _dilate((_edges(_lum(arr), 1.0) > 0.45).astype(np.float32), p["outline"]))
    out = _rgb(p["paper"]) * (1 - ink[..., None]) + _rgb(p["ink"]) * ink[..., None]
    return _finish(out, p, rng)


def ink_wash(arr: Array, p: dict, rng: np.random.Generator) -> Array:
    lum = _equalise(_blur(_lum(arr), p["blur"]))
    ink, paper = _rgb(p["ink"]), _rgb(p["paper"])
    wash = np.zeros_like(lum)
    for level, threshold in zip(p["tones"], p["thresholds"]):
        wash = np.maximum(wash, level * (lum < threshold))
    wash = _blur(wash, 1.2) * (0.85 + 0.3 * _noise(lum.shape, rng, 12.0))
    line = _dilate((_edges(_lum(arr), p["edge_blur"]) > p["edge_threshold"]).astype(np.float32), p["line_width"])
    alpha = np.clip(np.maximum(wash, line), 0, 1)[..., None]
    out = paper * (1 - alpha) + ink * alpha
    return _finish(out, p, rng)


def watercolour(arr: Array, p: dict, rng: np.random.Generator) -> Array:
    h, w = arr.shape[:2]
    img = _to_image(arr).filter(ImageFilter.ModeFilter(p["mode_size"])).filter(ImageFilter.GaussianBlur(p["soften"]))
    quant = img.quantize(p["colours"], method=Image.Quantize.MEDIANCUT).convert("RGB")
    base = _to_float(quant)
    # Bleed: displace by smooth noise, as wet pigment drifts.
    dx = ((_noise((h, w), rng, 24.0) - 0.5) * p["bleed"]).astype(int)
    dy = ((_noise((h, w), rng, 24.0) - 0.5) * p["bleed"]).astype(int)
    yy, xx = np.mgrid[0:h, 0:w]
    base = base[np.clip(yy + dy, 0, h - 1), np.clip(xx + dx, 0, w - 1)]
    # Pale, transparent washes over the paper: lift towards white, shift hue towards a tint.
    tint = _rgb(p["tint"])
    base = base * (1 - p["tint_strength"]) + tint * p["tint_strength"] * _lum(base)[..., None]
    paper = _rgb(p["paper"])
    wash = paper * (1 - p["transparency"]) + base * p["transparency"] + (base - 1) * (1 - p["transparency"]) * 0.6
    # Edge darkening where pigment pools at the border of each wash.
    pooled = _edges(_lum(base), 0.8)
    wash = wash * (1 - p["pooling"] * pooled[..., None])
    grain = _paper((h, w), rng, 1.0, 0.8) * (1 - p["granulation"] * _noise((h, w), rng, 3.0))
    return np.clip(wash * grain[..., None], 0, 1)


def pixel_art(arr: Array, p: dict, rng: np.random.Generator) -> Array:
    h, w = arr.shape[:2]
    factor = p["factor"]
    small = _to_image(arr).resize((max(4, w // factor), max(4, h // factor)), Image.Resampling.BOX)
    if p["palette"]:
        pal_img = Image.new("P", (1, 1))
        colours = [int(x) for c in p["palette"] for x in (_rgb(c) * 255).round()]
        pal_img.putpalette(colours + colours[:3] * (256 - len(p["palette"])))
        small = small.quantize(palette=pal_img, dither=Image.Dither.FLOYDSTEINBERG if p["dither"] else Image.Dither.NONE)
    else:
        small = small.quantize(p["colours"], method=Image.Quantize.MEDIANCUT,
                               dither=Image.Dither.FLOYDSTEINBERG if p["dither"] else Image.Dither.NONE)
    small_arr = _to_float(small)
    if p["outline"]:
        labels = np.asarray(small, dtype=np.int32)
        border = np.zeros(labels.shape, dtype=bool)
        border[:-1] |= labels[:-1] != labels[1:]
        border[:, :-1] |= labels[:, :-1] != labels[:, 1:]
        dark = _lum(small_arr) < np.roll(_lum(small_arr), -1, axis=0)
        small_arr[border & dark] *= 0.35
    big = _to_image(small_arr).resize((w, h), Image.Resampling.NEAREST)
    return _to_float(big)


def dither(arr: Array, p: dict, rng: np.random.Generator) -> Array:
    h, w = arr.shape[:2]
    lum = _equalise(_lum(arr))
    scale = p["scale"]
    small = np.asarray(Image.fromarray(lum, "F").resize((w // scale, h // scale), Image.Resampling.BOX), dtype=np.float32)
    pal = np.stack([_rgb(c) for c in p["palette"]])
    n = len(pal)
    if p["method"] == "bayer":
        bayer = np.array([[0, 8, 2, 10], [12, 4, 14, 6], [3, 11, 1, 9], [15, 7, 13, 5]], dtype=np.float32) / 16.0 - 0.5
        reps = (small.shape[0] // 4 + 1, small.shape[1] // 4 + 1)
        threshold = np.tile(bayer, reps)[: small.shape[0], : small.shape[1]]
        idx = np.clip(np.round(small * (n - 1) + threshold), 0, n - 1).astype(int)
    else:
        img = Image.fromarray((small * 255).astype(np.uint8), "L").convert("RGB")
        pal_img = Image.new("P", (1, 1))
        grey = [int(round(255 * i / (n - 1))) for i in range(n)]
        pal_img.putpalette([g for v in grey for g in (v, v, v)] + [0, 0, 0] * (256 - n))
        idx = np.asarray(img.quantize(palette=pal_img, dither=Image.Dither.FLOYDSTEINBERG), dtype=int)
        idx = np.clip(idx, 0, n - 1)
    out = pal[idx]
    return _to_float(_to_image(out).resize((w, h), Image.Resampling.NEAREST))


def pointillism(arr: Array, p: dict, rng: np.random.Generator) -> Array:
    h, w = arr.shape[:2]
    canvas = Image.new("RGB", (w, h), tuple(int(c * 255) for c in _rgb(p["paper"])))
    draw = ImageDraw.Draw(canvas)
    src = np.clip((arr - 0.5) * p["contrast"] + 0.5, 0, 1)
    grey = _lum(src)[..., None]
    src = np.clip(grey + (src - grey) * p["saturation"], 0, 1)
    r = p["radius"]
    count = int(w * h / (r * r) * p["density"])
    ys, xs = rng.integers(0, h, count), rng.integers(0, w, count)
    jitter = rng.normal(0, p["jitter"], (count, 3))
    colours = np.clip(src[ys, xs] + jitter, 0, 1)
    for x, y, c in zip(xs, ys, (colours * 255).astype(int)):
        draw.ellipse((x - r, y - r, x + r, y + r), fill=tuple(int(v) for v in c))
    return _to_float(canvas)


def mosaic(arr: Array, p: dict, rng: np.random.Generator) -> Array:
    h, w = arr.shape[:2]
    n = p["cells"]
    if p["layout"] == "grid":
        side = int(np.sqrt(n))
        gy, gx = np.mgrid[0:side, 0:side].astype(np.float32)
        pts = np.stack([(gy.ravel() + 0.5) * h / side, (gx.ravel() + 0.5) * w / side], axis=1)
        pts += rng.normal(0, p["jitter"] * h / side, pts.shape)
    else:
        pts = rng.random((n, 2)) * [h, w]
    # Nearest seed on a half-resolution grid, enlarged: four times fewer distances, same cells.
    yy, xx = np.mgrid[0:h:2, 0:w:2].astype(np.float32)
    flat = np.stack([yy.ravel(), xx.ravel()], axis=1)
    half = np.empty(flat.shape[0], dtype=np.int32)
    for start in range(0, flat.shape[0], 4096):
        chunk = flat[start:start + 4096]
        d = ((chunk[:, None, :] - pts[None, :, :].astype(np.float32)) ** 2).sum(-1)
        half[start:start + 4096] = d.argmin(1)
    labels = np.repeat(np.repeat(half.reshape(yy.shape), 2, 0), 2, 1)[:h, :w].ravel()
    counts = np.bincount(labels, minlength=len(pts)).astype(np.float32) + 1e-6
    means = np.stack([np.bincount(labels, arr[..., c].ravel(), minlength=len(pts)) / counts for c in range(3)], 1)
    grey = means.mean(1, keepdims=True)
    means = np.clip(grey + (means - grey) * p["saturation"], 0, 1)
    out = means[labels].reshape(h, w, 3)
    lab = labels.reshape(h, w)
    border = np.zeros((h, w), dtype=np.float32)
    border[:-1] = np.maximum(border[:-1], lab[:-1] != lab[1:])
    border[:, :-1] = np.maximum(border[:, :-1], lab[:, :-1] != lab[:, 1:])
    border = _dilate(border, p["grout_width"])
    out = out * (1 - border[..., None]) + _rgb(p["grout"]) * border[..., None]
    return _finish(out, p, rng)


def woodcut(arr: Array, p: dict, rng: np.random.Generator) -> Array:
    h, w = arr.shape[:2]
    lum = _equalise(_blur(_lum(arr), p["blur"]))
    u, v = _coords((h, w), p["angle"])
    carve = np.sin((u + 6 * _noise((h, w), rng, 25.0) * p["wave"]) * 2 * np.pi / p["spacing"]) * p["carve"]
    inked = (lum + carve * (1 - np.abs(lum - 0.5) * 2) < p["threshold"]).astype(np.float32)
    inked = np.maximum(inked, _dilate((_edges(_lum(arr), 1.5) > 0.55).astype(np.float32), 2))
    rough = _noise((h, w), rng, 2.0) < p["roughness"]
    inked = np.where(rough & (inked > 0), 0.0, inked)
    out = _rgb(p["paper"]) * (1 - inked[..., None]) + _rgb(p["ink"]) * inked[..., None]
    return _finish(out, p, rng)


def pencil(arr: Array, p: dict, rng: np.random.Generator) -> Array:
    h, w = arr.shape[:2]
    grey = _lum(arr)
    inverted = _blur(1 - grey, p["radius"])
    dodge = np.clip(grey / (1 - inverted + 1e-3), 0, 1) ** p["gamma"]
    strokes = Image.fromarray((rng.random((h, w)) * 255).astype(np.uint8), "L")
    strokes = strokes.rotate(p["angle"], resample=Image.Resampling.BILINEAR).filter(ImageFilter.BoxBlur(0))
    streak = np.asarray(strokes.resize((w, max(1, h // p["stroke_length"]))).resize((w, h), Image.Resampling.BILINEAR), dtype=np.float32) / 255.0
    shade = np.clip(dodge - (1.15 - dodge) * (0.4 + streak) * p["texture"], 0, 1)
    tint = _rgb(p["lead"])
    out = 1 - (1 - shade)[..., None] * (1 - tint)
    if p["colour"] > 0:
        colour = _blur(arr, 2.0)
        out = out * (1 - p["colour"]) + out * colour * p["colour"] * 1.4
    return _finish(out * _rgb(p["paper"]), p, rng)


def neon(arr: Array, p: dict, rng: np.random.Generator) -> Array:
    lum = _lum(arr)
    edge = _edges(lum, p["blur"])
    line = (edge > p["threshold"]).astype(np.float32)
    glow = np.clip(_blur(line, p["glow"]) * 3.0, 0, 1)
    hue = (p["hue"] + p["hue_span"] * _equalise(lum)) % 1.0
    colour = np.stack(np.vectorize(lambda x: colorsys.hsv_to_rgb(x, 0.9, 1.0), otypes=[float] * 3)(
        np.round(hue, 2)), axis=-1).astype(np.float32)
    bg = _rgb(p["background"])
    out = bg * (1 - glow[..., None]) + colour * glow[..., None]
    out = out * (1 - line[..., None]) + (0.6 + 0.4 * colour) * line[..., None]
    return np.clip(out, 0, 1)


def risograph(arr: Array, p: dict, rng: np.random.Generator) -> Array:
    h, w = arr.shape[:2]
    paper = _rgb(p["paper"])
    out = np.ones_like(arr) * paper
    layers = [1 - _equalise(_lum(arr)), np.clip(1 - arr[..., p["channel"]] * 1.2, 0, 1)]
    for i, (ink_hex, density) in enumerate(zip(p["inks"], layers)):
        density = density ** p["gamma"]
        grain = rng.random((h, w)).astype(np.float32)
        coverage = (grain < density).astype(np.float32) if p["stochastic"] else density
        shift = p["offset"] * i
        coverage = np.roll(coverage, (shift, -shift), axis=(0, 1))
        ink = _rgb(ink_hex)
        out = out * (1 - coverage[..., None] * (1 - ink))
    return _finish(out, p, rng)


def relief(arr: Array, p: dict, rng: np.random.Generator) -> Array:
    lum = _blur(_lum(arr), p["blur"])
    a = np.deg2rad(p["light"])
    gy, gx = np.gradient(lum * p["depth"])
    shade = np.clip(0.5 + (np.cos(a) * gx + np.sin(a) * gy) * 4.0, 0, 1)
    pal = np.stack([_rgb(c) for c in p["palette"]])
    idx = shade * (len(pal) - 1)
    lo = np.floor(idx).astype(int)
    hi = np.minimum(lo + 1, len(pal) - 1)
    t = (idx - lo)[..., None]
    out = pal[lo] * (1 - t) + pal[hi] * t
    return _finish(out, p, rng)


def oil(arr: Array, p: dict, rng: np.random.Generator) -> Array:
    h, w = arr.shape[:2]
    img = _to_image(arr).filter(ImageFilter.ModeFilter(p["mode_size"])).filter(ImageFilter.ModeFilter(p["mode_size"]))
    img = img.quantize(p["colours"], method=Image.Quantize.MEDIANCUT).convert("RGB")
    base = _to_float(img)
    grey = _lum(base)[..., None]
    base = np.clip(grey + (base - grey) * p["saturation"], 0, 1)
    base = np.clip((base - 0.5) * p["contrast"] + 0.5, 0, 1)
    noise = Image.fromarray((rng.random((h, w)) * 255).astype(np.uint8), "L").rotate(p["angle"], resample=Image.Resampling.BILINEAR)
    strokes = np.asarray(noise.resize((max(1, w // p["stroke"]), h)).resize((w, h), Image.Resampling.BILINEAR), dtype=np.float32) / 255.0
    gy, gx = np.gradient(_blur(strokes, 0.8))
    light = np.clip(1.0 + (gx - gy) * p["impasto"] * 14.0, 0.5, 1.5)
    return _finish(base * light[..., None], p, rng)


# ------------------------------------------------------------ the catalogue

def _sample_posterise(rng):
    n = int(rng.integers(3, 7))
    return {"palette": harmonious_palette(rng, n), "blur": float(rng.choice([0.0, 1.0, 2.0])),
            "outline": int(rng.choice([0, 2, 3])), "edge_threshold": float(rng.uniform(0.35, 0.6)),
            "ink": _ink_colour(rng), "grain": float(rng.choice([0.0, 0.6]))}


def _sample_halftone(rng):
    return {"cell": int(rng.integers(4, 10)), "angle": float(rng.choice([0, 15, 30, 45, 60])),
            "colour": bool(rng.random() < 0.4), "shape": str(rng.choice(["dot", "dot", "line"])),
            "gamma": float(rng.uniform(0.7, 1.4)), "ink": _ink_colour(rng) if rng.random() < 0.6 else harmonious_palette(rng, 3)[0],
            "paper": _paper_colour(rng), "grain": float(rng.choice([0.0, 0.5]))}


def _sample_hatching(rng):
    layers = int(rng.integers(2, 5))
    return {"angle": float(rng.uniform(0, 180)), "cross_angle": float(rng.choice([90, 60, 45, 30])),
            "thresholds": sorted(float(t) for t in rng.uniform(0.1, 0.7, layers)),
            "spacing": int(rng.integers(3, 8)), "line_width": int(rng.choice([1, 1, 2])),
            "wobble": float(rng.choice([0.0, 2.0, 5.0])), "outline": int(rng.choice([0, 2])),
            "ink": _ink_colour(rng), "paper": _paper_colour(rng), "grain": float(rng.choice([0.0, 0.5, 1.0]))}


def _sample_ink_wash(rng):
    k = int(rng.integers(1, 4))
    return {"blur": float(rng.uniform(0.5, 3.0)), "tones": [float(x) for x in np.sort(rng.uniform(0.15, 0.7, k))],
            "thresholds": [float(x) for x in np.sort(rng.uniform(0.15, 0.7, k))[::-1]],
            "edge_blur": float(rng.uniform(0.8, 2.5)), "edge_threshold": float(rng.uniform(0.3, 0.55)),
            "line_width": int(rng.choice([1, 2, 3, 4])), "ink": _ink_colour(rng), "paper": _paper_colour(rng),
            "grain": float(rng.choice([0.5, 1.0]))}


def _sample_watercolour(rng):
    return {"mode_size": int(rng.choice([3, 5, 7])), "soften": float(rng.uniform(0.5, 2.5)),
            "colours": int(rng.integers(5, 16)), "bleed": float(rng.uniform(2, 9)),
            "tint": harmonious_palette(rng, 3)[1], "tint_strength": float(rng.uniform(0.0, 0.6)),
            "transparency": float(rng.uniform(0.45, 0.85)), "pooling": float(rng.uniform(0.2, 0.6)),
            "granulation": float(rng.uniform(0.0, 0.25)), "paper": _paper_colour(rng)}


def _sample_pixel_art(rng):
    fixed = rng.random() < 0.5
    return {"factor": int(rng.integers(4, 13)), "palette": harmonious_palette(rng, int(rng.integers(3, 9))) if fixed else [],
            "colours": int(rng.integers(4, 17)), "dither": bool(rng.random() < 0.4), "outline": bool(rng.random() < 0.4)}


def _sample_dither(rng):
    n = int(rng.integers(2, 5))
    presets = [["#0f380f", "#306230", "#8bac0f", "#9bbc0f"], ["#000000", "#ffffff"], ["#2b1b0e", "#f4e9d0"],
               ["#1b1f3a", "#53354a", "#a64942", "#ff7844"]]
    pal = presets[int(rng.integers(len(presets)))] if rng.random() < 0.4 else harmonious_palette(rng, n)
    return {"palette": pal, "method": str(rng.choice(["bayer", "floyd"])), "scale": int(rng.choice([1, 2, 3]))}


def _sample_pointillism(rng):
    return {"radius": int(rng.integers(2, 6)), "density": float(rng.uniform(0.8, 2.0)),
            "jitter": float(rng.uniform(0.02, 0.12)), "saturation": float(rng.uniform(1.0, 2.2)),
            "contrast": float(rng.uniform(1.0, 1.6)), "paper": _paper_colour(rng)}


def _sample_mosaic(rng):
    return {"cells": int(rng.choice([64, 144, 256, 400, 625])), "layout": str(rng.choice(["grid", "random"])),
            "jitter": float(rng.uniform(0.0, 0.35)), "saturation": float(rng.uniform(0.8, 1.8)),
            "grout": str(rng.choice(["#202020", "#d8d2c4", "#3a2a1a", "#f0f0f0"])),
            "grout_width": int(rng.choice([1, 2, 3])), "grain": float(rng.choice([0.0, 0.6]))}


def _sample_woodcut(rng):
    return {"blur": float(rng.uniform(1.0, 3.0)), "angle": float(rng.uniform(0, 180)),
            "spacing": float(rng.uniform(4, 9)), "wave": float(rng.uniform(0, 2)),
            "carve": float(rng.uniform(0.15, 0.35)), "threshold": float(rng.uniform(0.4, 0.6)),
            "roughness": float(rng.uniform(0.0, 0.12)), "ink": str(rng.choice(["#111111", "#2a1a10", "#7a1010", "#10204a"])),
            "paper": _paper_colour(rng), "grain": float(rng.choice([0.5, 1.0]))}


def _sample_pencil(rng):
    return {"radius": float(rng.uniform(3, 10)), "gamma": float(rng.uniform(1.0, 3.0)),
            "angle": float(rng.uniform(0, 180)), "stroke_length": int(rng.integers(4, 14)),
            "texture": float(rng.uniform(0.6, 1.2)), "lead": str(rng.choice(["#000000", "#1a1a40", "#4a2a10", "#303030"])),
            "colour": float(rng.choice([0.0, 0.0, 0.5, 0.8])), "paper": _paper_colour(rng), "grain": float(rng.choice([0.5, 1.0]))}


def _sample_neon(rng):
    return {"blur": float(rng.uniform(0.8, 2.0)), "threshold": float(rng.uniform(0.3, 0.55)),
            "glow": float(rng.uniform(1.5, 5.0)), "hue": float(rng.random()), "hue_span": float(rng.uniform(0.05, 0.6)),
            "background": str(rng.choice(["#05050f", "#0a0014", "#001010", "#101010"]))}


def _sample_risograph(rng):
    inks = [["#ff48b0", "#0078bf"], ["#ff665e", "#00a95c"], ["#ffe800", "#3255a4"], ["#f15060", "#000000"],
            ["#ff6c2f", "#5ec8e5"], ["#765ba7", "#ffb511"]]
    return {"inks": inks[int(rng.integers(len(inks)))], "channel": int(rng.integers(0, 3)),
            "gamma": float(rng.uniform(0.8, 1.6)), "stochastic": bool(rng.random() < 0.6),
            "offset": int(rng.integers(1, 5)), "paper": _paper_colour(rng), "grain": float(rng.choice([0.0, 0.6]))}


def _sample_relief(rng):
    presets = [["#2b2118", "#8c6a3c", "#e8d5a8"], ["#1a1a1a", "#7a7a7a", "#f0f0f0"], ["#102030", "#4a7a9a", "#d0f0ff"],
               ["#3a1010", "#b0603a", "#ffd9a0"]]
    return {"blur": float(rng.uniform(0.5, 2.0)), "light": float(rng.uniform(0, 360)),
            "depth": float(rng.uniform(2.0, 6.0)), "palette": presets[int(rng.integers(len(presets)))],
            "grain": float(rng.choice([0.0, 0.8]))}


def _sample_oil(rng):
    return {"mode_size": int(rng.choice([5, 7, 9])), "colours": int(rng.integers(6, 20)), "saturation": float(rng.uniform(1.1, 1.8)),
            "contrast": float(rng.uniform(1.0, 1.4)), "angle": float(rng.uniform(0, 180)),
            "stroke": int(rng.integers(5, 14)), "impasto": float(rng.uniform(1.0, 2.5)), "grain": 0.0}


FAMILIES: dict[str, tuple[Callable, Callable]] = {
    "posterise": (posterise, _sample_posterise),
    "halftone": (halftone, _sample_halftone),
    "hatching": (hatching, _sample_hatching),
    "ink_wash": (ink_wash, _sample_ink_wash),
    "watercolour": (watercolour, _sample_watercolour),
    "pixel_art": (pixel_art, _sample_pixel_art),
    "dither": (dither, _sample_dither),
    "pointillism": (pointillism, _sample_pointillism),
    "mosaic": (mosaic, _sample_mosaic),
    "woodcut": (woodcut, _sample_woodcut),
    "pencil": (pencil, _sample_pencil),
    "neon": (neon, _sample_neon),
    "risograph": (risograph, _sample_risograph),
    "relief": (relief, _sample_relief),
    "oil": (oil, _sample_oil),
}


def sample_style(rng: np.random.Generator, family: str | None = None) -> Style:
    """Draw one recipe; families are chosen uniformly unless ``family`` is given."""
    if family is None:
        family = str(rng.choice(sorted(FAMILIES)))
    if family not in FAMILIES:
        raise ValueError(f"unknown treatment family {family!r}; known: {', '.join(sorted(FAMILIES))}")
    return Style(family, FAMILIES[family][1](rng))


def apply_style(style: Style, img: Image.Image, seed: int = 0) -> Image.Image:
    """``img`` rendered in ``style``; ``seed`` fixes the per-image randomness (dots, grain)."""
    func = FAMILIES[style.family][0]
    rng = np.random.default_rng(seed)
    return _to_image(func(_to_float(img), style.params, rng))
