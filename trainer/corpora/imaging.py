"""Turning source art into corpus images of one size class.

Two shapes of art need two treatments. *Objects* (sprites, clip art, emoji,
tiles) are padded to a square with the object centred, so the trainer's
centre crop (core.images.fit_square) never cuts them; tiny pixel art is
enlarged by a whole factor with nearest-neighbour so its pixels stay crisp,
because blockiness is the style. *Scenes* (wallpapers, procedural output) keep
their aspect and get their shorter side set to the corpus size.
"""

from __future__ import annotations

import hashlib
import subprocess
from io import BytesIO
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from core.images import decode

RSVG = "rsvg-convert"
# Objects fill this fraction of the square canvas, leaving a margin like a sticker sheet.
OBJECT_FILL = 0.86
# Sprites at most this big (longer side) count as pixel art and are enlarged with NEAREST.
PIXEL_ART_MAX = 96


class RenderError(Exception):
    """One source item could not be turned into an image (logged and skipped)."""


def alpha_bbox(img: Image.Image) -> tuple[int, int, int, int] | None:
    """Bounding box of the visible pixels (alpha above 8), None when nothing is visible."""
    if img.mode != "RGBA":
        return (0, 0, img.width, img.height)
    return img.getchannel("A").point(lambda a: 255 if a > 8 else 0).getbbox()


def visible_fraction(img: Image.Image) -> float:
    """Share of pixels that are not transparent: tells empty sprite-sheet cells apart."""
    if img.mode != "RGBA":
        return 1.0
    return float(np.count_nonzero(np.asarray(img.getchannel("A")) > 8)) / max(1, img.width * img.height)


def fit_object(img: Image.Image, size: int, pixel_art: bool = True) -> Image.Image:
    """Trim transparent margins, scale the object into ``OBJECT_FILL`` of a square, centre it.

    Keeps alpha (RGBA) so the trainer's one decode path (core.images.to_rgb)
    decides the background, as it does for the user's own sprites. With
    ``pixel_art`` small sprites are enlarged by a whole factor, nearest-neighbour;
    without it (icons, cards) every picture is resampled smoothly.
    """
    img = img.convert("RGBA")
    box = alpha_bbox(img)
    if box is None:
        raise RenderError("image is fully transparent")
    img = img.crop(box)
    target = size * OBJECT_FILL
    longest = max(img.size)
    if pixel_art and longest <= PIXEL_ART_MAX:
        factor = max(1, int(target // longest))
        img = img.resize((img.width * factor, img.height * factor), Image.Resampling.NEAREST)
    else:
        scale = target / longest
        img = img.resize((max(1, round(img.width * scale)), max(1, round(img.height * scale))),
                         Image.Resampling.LANCZOS if scale < 1 else Image.Resampling.BICUBIC)
    canvas = Image.new("RGBA", (size, size), (0, 0, 0, 0))
    # A plain paste: pasting with the image as its own mask would square every soft edge's alpha.
    canvas.paste(img, ((size - img.width) // 2, (size - img.height) // 2))
    return canvas


def fit_scene(img: Image.Image, size: int) -> Image.Image:
    """Shorter side to ``size``; aspect kept (at most 2:1, centre-cropped beyond that)."""
    img = img.convert("RGB")
    w, h = img.size
    if max(w, h) > 2 * min(w, h):
        if w > h:
            left = (w - 2 * h) // 2
            img = img.crop((left, 0, left + 2 * h, h))
        else:
            top = (h - 2 * w) // 2
            img = img.crop((0, top, w, top + 2 * w))
        w, h = img.size
    scale = size / min(w, h)
    return img.resize((max(size, round(w * scale)), max(size, round(h * scale))),
                      Image.Resampling.LANCZOS if scale < 1 else Image.Resampling.BICUBIC)


def load_raster(path: Path) -> Image.Image:
    """A raster file as RGBA (transparency kept) through Pillow, errors as RenderError."""
    try:
        with Image.open(path) as img:
            img.seek(0)
            img.load()
            return img.convert("RGBA")
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
        raise RenderError(f"{path}: {exc}") from exc


def load_photo(path: Path, min_side: int) -> Image.Image:
    """A large photo or wallpaper as RGB via core.images (JPEG draft decoding for speed)."""
    from core.errors import ImageError

    try:
        return decode(path, min_side=min_side)[0]
    except ImageError as exc:
        raise RenderError(str(exc)) from exc


def render_svg(path: Path, box: int, element: str | None = None, timeout: float = 30.0) -> Image.Image:
    """Render an SVG (or one element of it, by id) with rsvg-convert to fit a ``box`` square."""
    size = ["--keep-aspect-ratio", "-w", str(box), "-h", str(box)]
    return run_rsvg(path, size + (["--export-id", element] if element else []), element, timeout)


def run_rsvg(path: Path, options: list[str], element: str | None = None, timeout: float = 30.0,
             stdin: bytes | None = None) -> Image.Image:
    """rsvg-convert ``options`` on ``path`` (or on the SVG bytes ``stdin``, ``path`` naming them), as RGBA.

    rsvg-convert (librsvg) is the lightest offline renderer that handles the
    gradients, filters and svgz files game themes use; it runs as a
    subprocess, so a pathological file is killed by the timeout instead of
    hanging the build.

    Raises:
        RenderError: rsvg-convert is missing, timed out, failed or wrote no PNG; the
            message names the file and ``element``.
    """
    label = f"{path}{'#' + element if element else ''}"
    try:
        done = subprocess.run([RSVG, *options, "-f", "png", *([] if stdin is not None else [str(path)])],
                              input=stdin, capture_output=True, timeout=timeout, check=False)
    except FileNotFoundError as exc:
        raise RenderError(f"{RSVG} not found (apt-get install librsvg2-bin)") from exc
    except subprocess.TimeoutExpired as exc:
        raise RenderError(f"{label}: rsvg-convert timed out after {timeout:.0f} s") from exc
    if done.returncode != 0 or not done.stdout:
        message = done.stderr.decode("utf-8", "replace").strip().splitlines()
        raise RenderError(f"{label}: {message[-1] if message else 'no output'}")
    try:
        with Image.open(BytesIO(done.stdout)) as img:
            return img.convert("RGBA")
    except OSError as exc:
        raise RenderError(f"{label}: rsvg-convert wrote no readable PNG ({exc})") from exc


def render_text(font_path: Path, text: str, size: int, ink=(20, 20, 20), paper=(245, 245, 240)) -> Image.Image:
    """Lines of ``text`` in one font, scaled to fill a ``size`` square (a glyph sheet tile)."""
    try:
        probe = ImageFont.truetype(str(font_path), 64)
    except OSError as exc:
        raise RenderError(f"{font_path}: {exc}") from exc
    lines = text.split("\n")
    draw = ImageDraw.Draw(Image.new("L", (1, 1)))
    box = draw.multiline_textbbox((0, 0), text, font=probe, spacing=8)
    width, height = box[2] - box[0], box[3] - box[1]
    if width <= 4 or height <= 4:
        raise RenderError(f"{font_path}: renders nothing for {lines[0]!r}")
    scale = size * 0.84 / max(width, height)
    font = ImageFont.truetype(str(font_path), max(8, int(64 * scale)))
    canvas = Image.new("RGB", (size, size), paper)
    draw = ImageDraw.Draw(canvas)
    box = draw.multiline_textbbox((0, 0), text, font=font, spacing=int(8 * scale))
    origin = ((size - (box[2] - box[0])) // 2 - box[0], (size - (box[3] - box[1])) // 2 - box[1])
    draw.multiline_text(origin, text, font=font, fill=ink, spacing=int(8 * scale), align="center")
    return canvas


def pixel_digest(img: Image.Image) -> str:
    """Exact-duplicate key: the same pixels from two files or two sources count once."""
    small = img.convert("RGBA").resize((32, 32), Image.Resampling.BILINEAR)
    quantised = (np.asarray(small, dtype=np.uint8) // 8).tobytes()
    return hashlib.sha1(quantised).hexdigest()
