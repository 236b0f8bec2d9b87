"""Restyled clip art: one recipe of vector-illustration choices redraws many different drawings.

The procedural treatments (``treatments.py``) imitate media (ink, watercolour,
halftone) on photos and stamps, and their recipes stop being distinct after
about a thousand draws. Illustration styles differ along other axes: the
palette, flat fills or gradients, whether lines are drawn and how heavy, an
outline around the figure, a drop shadow or a sticker rim, pixel-art rendering,
the ground. A :class:`Restyle` fixes one choice on each axis; applied to Open
Clip Art drawings by many artists (recorded as ``content``), it makes a group
whose only shared trait is that set of choices, and the same drawing under
other recipes gives the "same subject, other style" negatives that matter most.

Colours and gradients are rewritten in the SVG itself (so a gradient can be
flattened and every fill recoloured by its lightness); lines, outlines,
shadows, rims and pixel rendering are drawn on the rendered picture, because
librsvg 2.54 ignores ``vector-effect`` and a stroke width in user units would
vary with each drawing's transforms.
"""

from __future__ import annotations

import colorsys
import gzip
import hashlib
import json
import re
import xml.etree.ElementTree as ET
from collections import Counter
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np
from PIL import Image, ImageChops, ImageColor, ImageFilter

from trainer.corpora.imaging import RenderError, fit_object, run_rsvg, visible_fraction
from trainer.corpora.reserved import reserved_reason
from trainer.corpora.spec import (
    CLIPART, KDE_GAMES, KDE_PACKAGES, VECTOR, Context, GroupSpec, Item, Source, clipart_drawings, files,
)
from trainer.corpora.treatments import harmonious_palette

# Drawings larger than this are mostly traced photos or scenes of thousands of paths: slow, and not
# illustrations whose fills a recipe can restate.
MAX_SVG_BYTES = 150_000
MAX_SHEET_BYTES = 300_000
CANDIDATES_PER_GROUP = 12
IMAGES_PER_GROUP = 8
COLOUR_PROPERTIES = ("fill", "stroke", "stop-color", "flood-color", "lighting-color")


@dataclass(frozen=True)
class Restyle:
    """One illustration style: a choice on every axis, reproducible from its parameters."""

    params: dict = field(default_factory=dict)

    @property
    def key(self) -> str:
        blob = json.dumps(self.params, sort_keys=True).encode()
        return f"{self.params['colours']}-{hashlib.sha1(blob).hexdigest()[:8]}"


# ------------------------------------------------------------------ recipes

def sample_restyle(rng: np.random.Generator) -> Restyle:
    """Draw every axis independently, so palettes recur under other line and finish choices."""
    mode = str(rng.choice(["palette", "duotone", "tint", "shift"], p=[0.4, 0.15, 0.15, 0.3]))
    if mode == "palette":
        colours: dict = {"palette": harmonious_palette(rng, int(rng.integers(3, 7)))}
    elif mode == "duotone":
        colours = {"palette": harmonious_palette(rng, 5)[::4]}
    elif mode == "tint":
        colours = {"hue": round(float(rng.random()), 3), "saturation": round(float(rng.uniform(0.25, 0.9)), 2)}
    else:
        colours = {"hue_shift": round(float(rng.uniform(-0.5, 0.5)), 3),
                   "saturation": round(float(rng.choice([0.0, 0.4, 0.7, 1.3, 1.8])), 2),
                   "gamma": round(float(rng.uniform(0.6, 1.6)), 2)}
    line_colours = ["#141414", "#ffffff", "darkest", "#3b2414", "#1d2a5a"]
    params = {
        "colours": mode, **colours,
        "gradients": str(rng.choice(["keep", "flat"])),
        "strokes": str(rng.choice(["keep", "none"])),
        "lines": int(rng.choice([0, 0, 1, 3])),
        "outline": int(rng.choice([0, 0, 1, 2, 3, 5])),
        "line_colour": str(rng.choice(line_colours)),
        "rim": int(rng.choice([0, 0, 0, 0, 4, 7])),
        "rim_colour": str(rng.choice(["#ffffff", "#f7f3e8", "lightest"])),
        "shadow": [int(rng.integers(-5, 6)), int(rng.integers(1, 7)), int(rng.integers(0, 4)),
                   round(float(rng.uniform(0.3, 0.7)), 2)] if rng.random() < 0.25 else [],
        "pixels": int(rng.choice([20, 28, 36, 48])) if rng.random() < 0.2 else 0,
        "ground": str(rng.choice(["", "", "", "lightest", "darkest", "#f7f3e8", "#202020"])),
        "grain": round(float(rng.uniform(0.02, 0.08)), 3) if rng.random() < 0.2 else 0.0,
    }
    return Restyle(params)


def _lightness(rgb: tuple[float, float, float]) -> float:
    return 0.299 * rgb[0] + 0.587 * rgb[1] + 0.114 * rgb[2]


def _hex(rgb) -> str:
    return "#%02x%02x%02x" % tuple(int(round(min(1.0, max(0.0, c)) * 255)) for c in rgb)


def _unit(colour: str) -> tuple[float, float, float]:
    r, g, b = ImageColor.getrgb(colour)[:3]
    return r / 255, g / 255, b / 255


def recolour(style: Restyle, colour: tuple[float, float, float]) -> tuple[float, float, float]:
    """A source colour in the recipe's colours, chosen by its lightness (dark stays dark)."""
    p = style.params
    light = _lightness(colour)
    if p["colours"] == "palette":
        pal = p["palette"]
        return _unit(pal[min(len(pal) - 1, int(light * len(pal)))])
    if p["colours"] == "duotone":
        dark, bright = (np.array(_unit(c)) for c in p["palette"])
        return tuple(float(x) for x in dark + (bright - dark) * light)
    if p["colours"] == "tint":
        return colorsys.hls_to_rgb(p["hue"], 0.12 + 0.8 * light, p["saturation"])
    h, s, v = colorsys.rgb_to_hsv(*colour)
    return colorsys.hsv_to_rgb((h + p["hue_shift"]) % 1.0, min(1.0, s * p["saturation"]), v ** p["gamma"])


def _named(style: Restyle, name: str) -> tuple[int, int, int]:
    """A recipe colour by name: a literal, or the recipe's own darkest / lightest colour."""
    if name in ("darkest", "lightest"):
        source = (0.0, 0.0, 0.0) if name == "darkest" else (1.0, 1.0, 1.0)
        return tuple(int(round(c * 255)) for c in recolour(style, source))
    return ImageColor.getrgb(name)[:3]


# --------------------------------------------------------------- SVG rewrite

_URL = re.compile(r"url\(\s*['\"]?#([^)'\"]+)['\"]?\s*\)")
_CSS_DECL = re.compile(r"\b(fill|stroke|stop-color|flood-color|lighting-color)\s*:\s*([^;}]+)")
_HREF = ("href", "{http://www.w3.org/1999/xlink}href")


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _gradient_colours(root: ET.Element) -> dict[str, list[str]]:
    """Stop colours per gradient id, following ``xlink:href`` to the gradient that holds the stops."""
    gradients = {el.get("id"): el for el in root.iter() if _local(el.tag) in ("linearGradient", "radialGradient")
                 and el.get("id")}

    def stops(el: ET.Element, depth: int = 0) -> list[str]:
        own = [_declared(s).get("stop-color", "#000000") for s in el if _local(s.tag) == "stop"]
        if own or depth > 8:
            return own
        ref = next((el.get(h) for h in _HREF if el.get(h)), "")
        target = gradients.get(ref.lstrip("#"))
        return stops(target, depth + 1) if target is not None else []

    return {gid: stops(el) for gid, el in gradients.items()}


def _declared(el: ET.Element) -> dict[str, str]:
    """Presentation attributes with the ``style`` attribute's declarations over them (CSS order)."""
    values = {k: v for k, v in el.attrib.items() if k in COLOUR_PROPERTIES}
    for decl in (el.get("style") or "").split(";"):
        if ":" in decl:
            name, value = decl.split(":", 1)
            values[name.strip()] = value.strip()
    return values


def _parse_colour(value: str) -> tuple[float, float, float] | None:
    try:
        return _unit(value)
    except ValueError:
        return None


def restyle_svg(style: Restyle, data: bytes) -> bytes:
    """The drawing's SVG with every colour restated in the recipe and gradients kept or flattened.

    Raises:
        RenderError: the file is not SVG XML or embeds raster pictures (which no recolouring reaches).
    """
    try:
        root = ET.fromstring(data)
    except ET.ParseError as exc:
        raise RenderError(f"not SVG XML: {exc}") from exc
    if any(_local(el.tag) == "image" for el in root.iter()):
        raise RenderError("embeds a raster picture")
    p = style.params
    flat = {gid: _hex(np.mean([recolour(style, c) for c in map(_parse_colour, cols) if c] or [(0.5, 0.5, 0.5)], 0))
            for gid, cols in _gradient_colours(root).items()}

    def restate(prop: str, value: str) -> str:
        value = value.strip()
        if prop == "stroke" and p["strokes"] == "none" and value != "none":
            return "none"
        match = _URL.fullmatch(value.strip())
        if match:
            return flat.get(match.group(1), value) if p["gradients"] == "flat" else value
        colour = _parse_colour(value)
        return _hex(recolour(style, colour)) if colour else value

    for el in root.iter():
        if _local(el.tag) == "style" and el.text:
            el.text = _CSS_DECL.sub(lambda m: f"{m.group(1)}:{restate(m.group(1), m.group(2))}", el.text)
        for prop in COLOUR_PROPERTIES:
            if prop in el.attrib:
                el.set(prop, restate(prop, el.get(prop)))
        if el.get("style"):
            decls = []
            for decl in el.get("style").split(";"):
                name, sep, value = decl.partition(":")
                if sep and name.strip() in COLOUR_PROPERTIES:
                    decl = f"{name.strip()}:{restate(name.strip(), value)}"
                decls.append(decl)
            el.set("style", ";".join(decls))
    return ET.tostring(root)


# ------------------------------------------------------------ raster finish

def _mask(img: Image.Image) -> Image.Image:
    return img.getchannel("A").point(lambda a: 255 if a > 127 else 0)


def _grow(mask: Image.Image, width: int) -> Image.Image:
    return mask.filter(ImageFilter.MaxFilter(2 * width + 1)) if width > 0 else mask


def _under(img: Image.Image, mask: Image.Image, colour: tuple[int, int, int], opacity: float = 1.0) -> Image.Image:
    """``img`` over a flat layer of ``colour`` shaped by ``mask``."""
    layer = Image.new("RGBA", img.size, colour + (0,))
    layer.putalpha(mask.point(lambda a: int(a * opacity)))
    layer.alpha_composite(img)
    return layer


def _inner_lines(img: Image.Image, width: int, colour: tuple[int, int, int]) -> Image.Image:
    """Ink lines ``width`` px wide (odd) where neighbouring fills differ clearly, as an inked drawing's borders."""
    arr = np.asarray(img, dtype=np.int16)
    rgb, alpha = arr[..., :3], arr[..., 3] > 127
    diff = np.zeros(alpha.shape, dtype=bool)
    diff[:, 1:] |= np.abs(rgb[:, 1:] - rgb[:, :-1]).sum(2) > 60
    diff[1:, :] |= np.abs(rgb[1:] - rgb[:-1]).sum(2) > 60
    lines = Image.fromarray((diff & alpha).astype(np.uint8) * 255, "L")
    lines = ImageChops.multiply(_grow(lines, (width - 1) // 2), _mask(img))
    out = img.copy()
    out.paste(Image.new("RGBA", img.size, colour + (255,)), (0, 0), lines)
    return out


def finish(style: Restyle, img: Image.Image, size: int, seed: int) -> Image.Image:
    """Lines, outline, rim, shadow, ground and grain of the recipe on a rendered RGBA drawing."""
    p = style.params
    pad = max(12, size // 8)
    canvas = Image.new("RGBA", (img.width + 2 * pad, img.height + 2 * pad), (0, 0, 0, 0))
    canvas.paste(img, (pad, pad))
    line = _named(style, p["line_colour"])
    if p["lines"]:
        canvas = _inner_lines(canvas, p["lines"], line)
    if p["outline"]:
        canvas = _under(canvas, _grow(_mask(canvas), p["outline"]), line)
    if p["rim"]:
        canvas = _under(canvas, _grow(_mask(canvas), p["rim"]), _named(style, p["rim_colour"]))
    if p["shadow"]:
        dx, dy, blur, opacity = p["shadow"]
        shadow = ImageChops.offset(_mask(canvas), dx, dy)
        if blur:
            shadow = shadow.filter(ImageFilter.GaussianBlur(blur))
        canvas = _under(canvas, shadow, (20, 20, 28), opacity)
    out = fit_object(canvas, size)
    if p["ground"]:
        ground = Image.new("RGBA", out.size, _named(style, p["ground"]) + (255,))
        ground.alpha_composite(out)
        out = ground
    if p["grain"]:
        arr = np.asarray(out, dtype=np.float32)
        noise = np.random.default_rng(seed).normal(0, 255 * p["grain"], arr.shape[:2])[..., None]
        arr[..., :3] = np.clip(arr[..., :3] + noise, 0, 255)
        out = Image.fromarray(arr.astype(np.uint8), "RGBA")
    return out


def render_restyled(style: Restyle, path: Path, size: int, seed: int, element: str | None = None) -> Image.Image:
    """One drawing (or one sprite of a sheet, by id) in one recipe, as a corpus object image of ``size`` px."""
    svg = restyle_svg(style, _read(path))
    box = style.params["pixels"] or int(size * 0.86)
    img = run_rsvg(path, ["--keep-aspect-ratio", "-w", str(box), "-h", str(box)]
                   + (["--export-id", element] if element else []), element, stdin=svg)
    if max(img.size) < 12 or visible_fraction(img) < 0.02:
        raise RenderError(f"{path}{'#' + element if element else ''}: renders (almost) nothing")
    if style.params["pixels"]:
        img = img.convert("RGBA")
        img.putalpha(_mask(img))
    return finish(style, img, size, seed)


@lru_cache(maxsize=64)
def _read(path: Path) -> bytes:
    data = path.read_bytes()
    return gzip.decompress(data) if data[:2] == b"\x1f\x8b" else data


# ---------------------------------------------------------------- the source

def drawing_pool(ctx: Context) -> list[Path]:
    """Open Clip Art drawings a recipe may redraw: no flags, nothing reserved, no huge or raster-holding files."""
    pool = []
    for path in clipart_drawings(ctx):
        try:
            if reserved_reason(str(path)) or path.stat().st_size > MAX_SVG_BYTES:
                continue
        except OSError:
            continue
        pool.append(path)
    return pool


def sprite_pool(ctx: Context) -> list[tuple[Path, str]]:
    """Named sprites of the KDE game themes (the kde-games source's sheets), nothing reserved, no huge sheet.

    A recipe restates a whole sheet to draw one sprite of it, so sheets over MAX_SHEET_BYTES (a tenth of them,
    a third of the sprites) would make the build several times slower.
    """
    from trainer.corpora.sources import svg_sprite_ids  # sources.py imports this module: import at call time

    pool = []
    for game in KDE_GAMES:
        for path in files(ctx.path(f"usr/share/{game}"), VECTOR):
            try:
                if reserved_reason(str(path)) or path.stat().st_size > MAX_SHEET_BYTES:
                    continue
                pool += [(path, sprite) for sprite in svg_sprite_ids(path)]
            except (OSError, RenderError):
                continue
    return pool


def _groups(ctx: Context, stream: int, pool: list, item: Callable[[Restyle, Any, int], Item],
            weights: np.ndarray | None = None) -> Iterator[GroupSpec]:
    """``ctx.restyled_styles`` groups, recipe ``i`` drawn from seed (seed, stream, i); repeats of a recipe skipped.

    Each source has its own ``stream``, so a recipe on clip art and one on sprites are independent draws;
    ``weights`` (summing to 1) make some of the pool likelier.
    """
    if len(pool) < CANDIDATES_PER_GROUP:
        return
    used: set[str] = set()
    i = 0
    while len(used) < ctx.restyled_styles:
        rng = np.random.default_rng([ctx.seed, stream, i])
        style = sample_restyle(rng)
        if style.key not in used:
            used.add(style.key)
            chosen = rng.choice(len(pool), size=CANDIDATES_PER_GROUP, replace=False, p=weights)
            yield GroupSpec(f"{i:05d}-{style.key}", [item(style, pool[j], int(rng.integers(2**31))) for j in chosen],
                            max_images=IMAGES_PER_GROUP)
        i += 1


def _item(style: Restyle, path: Path, content: str, seed: int, element: str | None = None) -> Item:
    return Item(f"{style.key}:{content}", path, lambda size: render_restyled(style, path, size, seed, element),
                content=content)


def discover_restyled(ctx: Context) -> Iterator[GroupSpec]:
    """Recipes redrawing Open Clip Art drawings."""
    base = ctx.path(CLIPART)

    def item(style: Restyle, path: Path, seed: int) -> Item:
        return _item(style, path, f"openclipart:{path.relative_to(base)}", seed)

    yield from _groups(ctx, 104729, drawing_pool(ctx), item)


def discover_restyled_sprites(ctx: Context) -> Iterator[GroupSpec]:
    """Recipes redrawing KDE game sprites: style variety on game-art content, as the clip art gives it on
    illustrations (MODEL.md, "The restyled clip art at GPU length")."""
    base = ctx.path("usr/share")

    def item(style: Restyle, sprite: tuple[Path, str], seed: int) -> Item:
        path, element = sprite
        return _item(style, path, f"kde:{path.relative_to(base)}#{element}", seed, element)

    # One game (KGoldrunner: a quarter of the sprites) would otherwise fill a third of every group.
    pool = sprite_pool(ctx)
    games = [path.relative_to(base).parts[0] for path, _ in pool]
    count = Counter(games)
    weights = np.array([1.0 / count[g] for g in games]) / max(len(count), 1)
    yield from _groups(ctx, 130363, pool, item, weights)


RESTYLED_SOURCES: tuple[Source, ...] = (
    Source("restyled", ("openclipart-svg",),
           "One group per illustration recipe (palette or colour shift, flat or graded fills, line and outline "
           "weight, rim, shadow, pixel rendering, ground) redrawing Open Clip Art drawings by many artists; the "
           "same drawing appears under several recipes (manifest column content).", discover_restyled),
    Source("restyled-sprites", KDE_PACKAGES,
           "The same recipes redrawing sprites of the KDE games' SVG themes (the kde-games source's sheets); "
           "the same sprite appears under several recipes (manifest column content).", discover_restyled_sprites),
)
