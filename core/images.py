"""Decoding any image file the user has into the tensor the model expects.

All preprocessing lives here so that indexing, search queries, training and
evaluation see exactly the same pixels.
"""

from __future__ import annotations

import io
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
from PIL import Image, ImageFile, ImageOps, UnidentifiedImageError

from core.errors import ImageError

# Refuse images larger than this many pixels before decoding them (about 16k x 16k).
MAX_PIXELS = 268_000_000
# A downscale first shrinks by whole factors (box filter) while that leaves at least this many
# times the final size, then Lanczos does the rest: Pillow's docs call the result
# indistinguishable from Lanczos alone from 3 up, and a 3 MP PNG fits 8x faster.
REDUCING_GAP = 3.0
# Alpha is composited onto mid grey: neither white nor black, so transparent
# sprites and line art on transparency keep their own colours as the style cue.
BACKGROUND = (128, 128, 128)
# Modes whose last channel is opacity.
TRANSPARENT_MODES = ("RGBA", "LA", "PA", "RGBa", "La")

EXIF_ORIENTATION = 0x0112

Image.MAX_IMAGE_PIXELS = MAX_PIXELS
ImageFile.LOAD_TRUNCATED_IMAGES = False


def _check_size(img: Image.Image, path: Path) -> None:
    width, height = img.size
    if width <= 0 or height <= 0:
        raise ImageError(path, "image has no pixels")
    if width * height > MAX_PIXELS:
        raise ImageError(path, f"image is too large ({width}x{height} pixels; limit {MAX_PIXELS:,})")


def to_rgb(img: Image.Image) -> Image.Image:
    """Any Pillow mode to RGB; transparency is composited onto a neutral grey."""
    if img.mode == "RGB":
        return img
    if img.mode == "P":
        img = img.convert("RGBA") if "transparency" in img.info else img.convert("RGB")
    if img.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        arr = np.asarray(img, dtype=np.float64)
        top = 65535.0 if img.mode.startswith("I;16") else max(float(arr.max()), 1.0)
        arr = np.clip(arr / top * 255.0, 0, 255).astype(np.uint8)
        img = Image.fromarray(arr, "L")
    if img.mode in TRANSPARENT_MODES:
        rgba = img.convert("RGBA")
        base = Image.new("RGBA", rgba.size, BACKGROUND + (255,))
        return Image.alpha_composite(base, rgba).convert("RGB")
    return img.convert("RGB")


def open_image(path: str | Path, min_side: int | None = None) -> Image.Image:
    """Decode ``path`` to an upright RGB image (see :func:`decode`)."""
    return decode(path, min_side)[0]


def decode(path: str | Path, min_side: int | None = None,
           data: bytes | None = None) -> tuple[Image.Image, tuple[int, int]]:
    """Decode ``path`` to an upright RGB image and its full upright size (see :func:`decode_upright`).

    Raises:
        ImageError: the file is missing, unreadable, not an image, truncated or too large.
    """
    img, original = decode_upright(path, min_side, data)
    with _image_errors(Path(path)):
        return to_rgb(img), original


def decode_upright(path: str | Path, min_side: int | None = None,
                   data: bytes | None = None) -> tuple[Image.Image, tuple[int, int]]:
    """Decode ``path`` to an upright image in its own mode (transparency kept) and its full upright size.

    With ``min_side`` a JPEG is decoded at the smallest DCT scale (1/2, 1/4,
    1/8) that keeps its shorter side at least twice ``min_side``: the following
    Lanczos resize then sees enough pixels that the result barely changes,
    while decoding a 12 MP photo becomes several times faster.

    ``data``, when given, is the file's content already read (a decoding worker
    hashes the same bytes); ``path`` then only names the file in errors.

    Raises:
        ImageError: the file is missing, unreadable, not an image, truncated or too large.
    """
    path = Path(path)
    with _image_errors(path), warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        img = Image.open(path if data is None else io.BytesIO(data))
        _check_size(img, path)
        original = img.size
        if min_side and img.format == "JPEG":
            w, h = img.size
            scale = max(min_side * 2 / min(w, h), 1 / 8)
            if scale < 1:
                img.draft("RGB", (max(1, int(w * scale)), max(1, int(h * scale))))
        if getattr(img, "n_frames", 1) > 1:
            img.seek(0)
        img.load()
        orientation = img.getexif().get(EXIF_ORIENTATION, 1)
        if orientation in (5, 6, 7, 8):
            original = original[::-1]
        if orientation != 1:  # exif_transpose copies even an upright image: a full-size copy for nothing
            img = ImageOps.exif_transpose(img) or img
        return img, original


@contextmanager
def _image_errors(path: Path) -> Iterator[None]:
    """Whatever goes wrong while reading or converting ``path`` becomes one :class:`ImageError` that says what."""
    try:
        yield
    except ImageError:
        raise
    except FileNotFoundError as exc:
        raise ImageError(path, "file not found") from exc
    except IsADirectoryError as exc:
        raise ImageError(path, "is a folder, not an image") from exc
    except PermissionError as exc:
        raise ImageError(path, "permission denied") from exc
    except UnidentifiedImageError as exc:
        raise ImageError(path, "not a recognised image format") from exc
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageError(path, "image is too large (decompression bomb guard)") from exc
    except (OSError, SyntaxError, ValueError, EOFError, MemoryError) as exc:
        raise ImageError(path, f"damaged or truncated image ({exc})") from exc


def alpha_channel(img: Image.Image) -> Image.Image | None:
    """The opacity of each pixel (mode L) for the modes :func:`to_rgb` composites; None for an opaque image."""
    if img.mode == "P" and "transparency" in img.info:
        img = img.convert("RGBA")
    # The last band is the opacity: "A", or "a" in the premultiplied modes.
    return img.getchannel(img.getbands()[-1]) if img.mode in TRANSPARENT_MODES else None


def fit_square(img: Image.Image, size: int) -> Image.Image:
    """Resize the shorter side to ``size`` and centre-crop a square.

    Cropping keeps brush strokes and line widths at their true aspect; squashing
    the whole picture would change exactly the cues a style model reads.
    """
    w, h = img.size
    scale = size / min(w, h)
    nw, nh = max(size, round(w * scale)), max(size, round(h * scale))
    if scale < 1:
        img = img.resize((nw, nh), Image.Resampling.LANCZOS, reducing_gap=REDUCING_GAP)
    else:
        img = img.resize((nw, nh), Image.Resampling.BICUBIC)
    left, top = (nw - size) // 2, (nh - size) // 2
    return img.crop((left, top, left + size, top + size))


def load_array(path: str | Path, size: int, data: bytes | None = None,
               alpha: bool = False) -> tuple[np.ndarray, tuple[int, int]]:
    """The model input for one file as ``size`` x ``size`` x 3 uint8, plus the upright original size.

    Workers return uint8 rather than normalised floats: a quarter of the bytes to
    pass between processes, and normalisation is one vectorised step per batch.
    ``data`` is the file's content when the caller has read it already (see :func:`decode`).
    With ``alpha`` a fourth channel holds each pixel's opacity, cropped and resized like the
    colours (255 throughout for an opaque file), for a model that reads how transparency is drawn
    (:mod:`core.silhouette`); the colours are composited onto grey either way.
    """
    img, original = decode_upright(path, min_side=size, data=data)
    with _image_errors(Path(path)):
        if alpha and img.mode == "P" and "transparency" in img.info:
            img = img.convert("RGBA")  # once, for both the colours and the opacity
        rgb = np.asarray(fit_square(to_rgb(img), size), dtype=np.uint8)
        if not alpha:
            return rgb, original
        mask = alpha_channel(img)
        opacity = (np.full(rgb.shape[:2], 255, np.uint8) if mask is None
                   else np.asarray(fit_square(mask, size), dtype=np.uint8))
        return np.dstack([rgb, opacity]), original
