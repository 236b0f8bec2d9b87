"""Granulometry: how much of a picture's light and shade lies in structures of each width.

Line weight is a trait of a hand: a one-pixel outline or a three-pixel one, fine hatching or
broad strokes, small highlights or large flat areas. Gradients and local patterns see only the
finest scale, and the colour histogram none. A morphological opening with a square of side
2k + 1 removes every bright structure narrower than the square; what the k-th opening removes
beyond the (k-1)-th is the light held in bright structures 2k - 1 or 2k pixels wide.
Closings do the same for dark structures (outlines, ink lines, shadows). The spectrum of both
(the "pattern spectrum" of mathematical morphology), as a share of all the light in the picture,
is the descriptor; Hellinger-compared like the other histograms.
"""

from __future__ import annotations

import numpy as np

GRANULOMETRY_SCALES = 6  # squares of 3, 5, ... 13 px on the 128 px cue picture
GRANULOMETRY_DIM = 2 * GRANULOMETRY_SCALES


def _min3(y: np.ndarray) -> np.ndarray:
    """3 x 3 minimum of each picture of (N, H, W), edges repeated."""
    p = np.pad(y, ((0, 0), (1, 1), (1, 1)), mode="edge")
    rows = np.minimum(np.minimum(p[:, :, :-2], p[:, :, 1:-1]), p[:, :, 2:])
    return np.minimum(np.minimum(rows[:, :-2], rows[:, 1:-1]), rows[:, 2:])


def _max3(y: np.ndarray) -> np.ndarray:
    """3 x 3 maximum of each picture of (N, H, W), edges repeated."""
    p = np.pad(y, ((0, 0), (1, 1), (1, 1)), mode="edge")
    rows = np.maximum(np.maximum(p[:, :, :-2], p[:, :, 1:-1]), p[:, :, 2:])
    return np.maximum(np.maximum(rows[:, :-2], rows[:, 1:-1]), rows[:, 2:])


def granulometry_histograms(pixels: np.ndarray) -> np.ndarray:
    """(N, H, W, C) uint8 pixels (RGB, or RGBA whose opacity is ignored) to (N, GRANULOMETRY_DIM).

    Values 0..k-1: the share of the picture's light removed by the k-th opening only (bright
    structures of growing width); k..2k-1: the share added by the k-th closing only (dark ones).
    Luminance in whole grey levels (ITU-R 601, as Pillow's "L"), so the arithmetic is exact.

    Raises:
        ValueError: pixels that are not (N, H, W, 3 or 4), or an empty picture.
    """
    if pixels.ndim != 4 or pixels.shape[-1] not in (3, 4) or min(pixels.shape[1:3]) < 1:
        raise ValueError(f"granulometry needs (N, H, W, 3 or 4) pixels, got {pixels.shape}")
    rgb = pixels[..., :3].astype(np.uint32)
    y = ((rgb[..., 0] * 299 + rgb[..., 1] * 587 + rgb[..., 2] * 114 + 500) // 1000).astype(np.uint8)
    total = float(y.shape[1] * y.shape[2] * 255)
    out = np.zeros((len(y), GRANULOMETRY_DIM), np.float32)
    eroded, dilated = y, y
    last_open, last_close = y.astype(np.int32), y.astype(np.int32)
    for k in range(GRANULOMETRY_SCALES):
        eroded, dilated = _min3(eroded), _max3(dilated)
        opened, closed = eroded, dilated
        for _ in range(k + 1):
            opened, closed = _max3(opened), _min3(closed)
        opened, closed = opened.astype(np.int32), closed.astype(np.int32)
        out[:, k] = (last_open - opened).sum((1, 2)) / total
        out[:, GRANULOMETRY_SCALES + k] = (closed - last_close).sum((1, 2)) / total
        last_open, last_close = opened, closed
    return out
