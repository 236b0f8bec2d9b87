"""An explicit colour descriptor: the HSV histogram of the model's input pixels.

Colour distribution is a strong style cue that a short training run does not
learn well; the paper fuses complementary embeddings by concatenation (sec. 5.6),
and a model file can ask for this descriptor to be fused with its style code.
Compared by Hellinger distance: the square root of an L1-normalised histogram
is a unit vector whose dot products are the Bhattacharyya coefficient, which
stops a few dominant bins (a flat background) from swamping the rest.
"""

from __future__ import annotations

import math

import numpy as np

from core.histograms import row_counts

DEFAULT_BINS = (12, 4, 4)
# Limits on a model's bins: the models so far use 12 x 4 x 4 = 192. These leave ample room while
# keeping a vector's colour part at most 4096 floats (16 KB per image in the library).
MAX_CHANNEL_BINS = 64
MAX_BINS = 4096


def check_bins(bins: object) -> tuple[int, int, int]:
    """A model's ``colour_bins`` as a tuple, refused when a histogram of that shape would not fit.

    Raises:
        ValueError: not three whole numbers from 1 to ``MAX_CHANNEL_BINS`` whose product is at most ``MAX_BINS``.
    """
    if (not isinstance(bins, (list, tuple)) or len(bins) != 3
            or not all(type(n) is int and 1 <= n <= MAX_CHANNEL_BINS for n in bins) or math.prod(bins) > MAX_BINS):
        raise ValueError(f"colour bins must be three whole numbers from 1 to {MAX_CHANNEL_BINS} with a product "
                         f"of at most {MAX_BINS}, got {bins!r}")
    return tuple(bins)


def rgb_to_hsv(pixels: np.ndarray) -> np.ndarray:
    """uint8 RGB (..., 3) to float HSV in [0, 1), vectorised (Pillow's per-image convert is slower)."""
    rgb = pixels.astype(np.float32) / 255.0
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    top = rgb.max(-1)
    span = top - rgb.min(-1)
    safe = np.where(span > 0, span, 1.0)
    hue = np.where(top == r, (g - b) / safe, np.where(top == g, 2.0 + (b - r) / safe, 4.0 + (r - g) / safe))
    hue = np.where(span > 0, (hue / 6.0) % 1.0, 0.0)
    sat = np.where(top > 0, span / np.where(top > 0, top, 1.0), 0.0)
    return np.stack([hue, sat, top], -1)


def colour_histogram(pixels: np.ndarray, bins: tuple[int, int, int] = DEFAULT_BINS) -> np.ndarray:
    """(N, H, W, 3) uint8 to (N, prod(bins)) L1-normalised HSV histograms (raw, before Hellinger)."""
    hsv = rgb_to_hsv(pixels)
    idx = [np.minimum((hsv[..., c] * n).astype(np.int64), n - 1) for c, n in enumerate(bins)]
    flat = (idx[0] * bins[1] + idx[1]) * bins[2] + idx[2]
    return row_counts(flat, int(np.prod(bins))).astype(np.float32)


def hellinger(histograms: np.ndarray) -> np.ndarray:
    """Square-root map: unit vectors whose dot product is the Bhattacharyya coefficient."""
    root = np.sqrt(np.maximum(histograms, 0.0))
    return (root / np.maximum(np.linalg.norm(root, axis=-1, keepdims=True), 1e-12)).astype(np.float32)
