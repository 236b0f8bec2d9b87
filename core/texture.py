"""An explicit texture descriptor: histograms of local gradients, the line work of a picture.

How strokes are drawn (hard pixel edges or soft anti-aliased ones, thin outlines, smooth shading,
hatching in one direction) is much of what tells drawn styles apart, and it is what a style
network trained on one corpus carries over worst to art from other sources (MODEL.md,
"Independent benchmark"). A model file can fuse this descriptor with its style code, as it can
the colour histogram (core.colour).

Each histogram counts pixels by gradient magnitude (log-spaced, so faint shading and hard edges
both get bins) and orientation (modulo 180 degrees): of the luminance at full, half and quarter
resolution (fine line work, and the shape of larger strokes), and of two opponent-colour channels
(red-green, yellow-blue) at full resolution, which see edges between colours of equal brightness.
Each block is L1-normalised; :func:`texture_vector` compares them by Hellinger distance, as the
colour histogram is.

A second descriptor, :func:`pattern_histograms`, counts local binary patterns (compared by Hellinger distance too): for each pixel, which of
its eight neighbours are brighter by more than 2.5 grey levels. Where gradients say how strong and which
way edges run, patterns say how they are arranged at the finest scale (dithering, hatching, hard pixel
steps, smooth ramps). The threshold was chosen on out-of-domain validation with half of the images
re-encoded as JPEG q80: a threshold within JPEG's noise makes a JPEG and a PNG of one drawing look
different (MODEL.md, "Fusion weights").

A third, :func:`contrast_histograms`, counts the same patterns joined with their local contrast (LBP/C, after
Ojala et al.): the largest step from the pixel to any neighbour, in three levels. A soft anti-aliased edge
and a hard black outline can make the same pattern; how far the light steps across it tells them apart.
It sits beside the plain patterns, which weigh every edge alike (MODEL.md, "Contrast patterns and a shorter
whitening").
"""

from __future__ import annotations

import numpy as np

from core.histograms import row_counts

MAGNITUDE_BINS = 8
ORIENTATION_BINS = 8
BLOCK = MAGNITUDE_BINS * ORIENTATION_BINS
LUMINANCE_SCALES = (1, 2, 4)
# Luminance at each scale, then the two opponent-colour channels at full resolution.
BLOCKS = len(LUMINANCE_SCALES) + 2
TEXTURE_DIM = BLOCKS * BLOCK
# A Sobel magnitude on [0, 1] values reaches about 4.5 at most; the log spacing spreads 0..4.5 over the bins.
_GAIN = 20.0
_TOP = float(np.log1p(_GAIN * 4.5))
PATTERN_DIM = 256
# Halfway between grey levels, so float rounding never decides a bit of a grey picture.
PATTERN_THRESHOLD = 2.5 / 255.0
# Contrast levels of contrast_histograms: the largest step to a neighbour below 16 grey levels (shading,
# anti-aliasing), below 64 (soft edges), or above (outlines, hard pixel steps).
CONTRAST_STEPS = (16 / 255.0, 64 / 255.0)
CONTRAST_DIM = PATTERN_DIM * (len(CONTRAST_STEPS) + 1)
# The eight neighbours, clockwise from the top left: bit k of a pixel's pattern is neighbour k.
_NEIGHBOURS = ((-1, -1), (-1, 0), (-1, 1), (0, 1), (1, 1), (1, 0), (1, -1), (0, -1))
# The smallest picture whose quarter-resolution view still has a gradient: 3 x 3 pixels there.
MIN_SIZE = 3 * max(LUMINANCE_SCALES)


def _rgb(pixels: np.ndarray) -> np.ndarray:
    return pixels.astype(np.float32) * (1.0 / 255.0)


def luminance(rgb: np.ndarray) -> np.ndarray:
    """Rec. 601 brightness of float RGB (..., 3): what every luminance block and pattern reads."""
    return 0.299 * rgb[..., 0] + 0.587 * rgb[..., 1] + 0.114 * rgb[..., 2]


def _check(pixels: np.ndarray) -> None:
    if pixels.ndim != 4 or min(pixels.shape[1:3]) < MIN_SIZE:
        raise ValueError(f"texture needs (N, H, W, 3) pixels of at least {MIN_SIZE} px a side, got {pixels.shape}")


def _gradient_histogram(channel: np.ndarray) -> np.ndarray:
    """(N, H, W) float in [0, 1] to (N, BLOCK) L1-normalised counts of Sobel magnitude x orientation."""
    y = np.pad(channel, ((0, 0), (1, 1), (1, 1)), mode="edge")
    gx = 2 * (y[:, 1:-1, 2:] - y[:, 1:-1, :-2]) + (y[:, :-2, 2:] - y[:, :-2, :-2]) + (y[:, 2:, 2:] - y[:, 2:, :-2])
    gy = 2 * (y[:, 2:, 1:-1] - y[:, :-2, 1:-1]) + (y[:, 2:, :-2] - y[:, :-2, :-2]) + (y[:, 2:, 2:] - y[:, :-2, 2:])
    magnitude = np.log1p(_GAIN * np.hypot(gx, gy)) * (MAGNITUDE_BINS / _TOP)
    orientation = np.arctan2(gy, gx) * (ORIENTATION_BINS / np.pi) % ORIENTATION_BINS
    bins = (np.minimum(magnitude.astype(np.int64), MAGNITUDE_BINS - 1) * ORIENTATION_BINS
            + np.minimum(orientation.astype(np.int64), ORIENTATION_BINS - 1))
    return row_counts(bins, BLOCK)


def box_shrink(channel: np.ndarray, factor: int) -> np.ndarray:
    """Box-filtered downscale by a whole factor (the edge rows that do not fill a box are dropped)."""
    n, h, w = channel.shape
    h, w = h - h % factor, w - w % factor
    return channel[:, :h, :w].reshape(n, h // factor, factor, w // factor, factor).mean((2, 4))


def texture_histograms(pixels: np.ndarray) -> np.ndarray:
    """(N, H, W, 3) uint8 RGB to (N, TEXTURE_DIM) raw histograms (each block L1-normalised).

    Raises:
        ValueError: pixels smaller than ``MIN_SIZE`` on a side.
    """
    _check(pixels)
    rgb = _rgb(pixels)
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    bright = luminance(rgb)
    # Opponent channels scaled into [0, 1] like the luminance, so one set of magnitude bins fits all.
    channels = [bright if f == 1 else box_shrink(bright, f) for f in LUMINANCE_SCALES]
    channels += [(r - g) * 0.5 + 0.5, (r + g - 2 * b) * 0.25 + 0.5]
    return np.concatenate([_gradient_histogram(c) for c in channels], axis=1).astype(np.float32)


def texture_vector(histograms: np.ndarray) -> np.ndarray:
    """Raw histograms to unit vectors: the square root of each block, every block weighted alike."""
    n = len(histograms)
    root = np.sqrt(np.maximum(histograms.reshape(n, BLOCKS, BLOCK), 0.0))
    root /= np.maximum(np.linalg.norm(root, axis=2, keepdims=True), 1e-12)
    return (root.reshape(n, TEXTURE_DIM) / np.sqrt(BLOCKS)).astype(np.float32)


def _patterns(pixels: np.ndarray, steps: bool) -> tuple[np.ndarray, np.ndarray | None]:
    """Each inner pixel's local binary pattern, and (when ``steps``) its largest step to a neighbour."""
    _check(pixels)
    y = luminance(_rgb(pixels))
    h, w = y.shape[1:]
    centre = y[:, 1:-1, 1:-1]
    codes = np.zeros(centre.shape, np.int64)
    largest = np.zeros(centre.shape, np.float32) if steps else None
    for bit, (dy, dx) in enumerate(_NEIGHBOURS):
        step = y[:, 1 + dy:h - 1 + dy, 1 + dx:w - 1 + dx] - centre
        codes |= (step > PATTERN_THRESHOLD).astype(np.int64) << bit
        if steps:
            np.maximum(largest, np.abs(step), out=largest)
    return codes, largest


def pattern_histograms(pixels: np.ndarray) -> np.ndarray:
    """(N, H, W, 3) uint8 RGB to (N, PATTERN_DIM) L1-normalised counts of local binary patterns.

    Raises:
        ValueError: pixels smaller than ``MIN_SIZE`` on a side.
    """
    codes, _ = _patterns(pixels, steps=False)
    return row_counts(codes, PATTERN_DIM).astype(np.float32)


def contrast_histograms(pixels: np.ndarray) -> np.ndarray:
    """(N, H, W, 3) uint8 RGB to (N, CONTRAST_DIM) L1-normalised counts of local binary patterns by contrast
    level: bin ``pattern * 3 + level``, so summing each pattern's three bins gives :func:`pattern_histograms`.

    Raises:
        ValueError: pixels smaller than ``MIN_SIZE`` on a side.
    """
    codes, largest = _patterns(pixels, steps=True)
    levels = np.digitize(largest, CONTRAST_STEPS)
    return row_counts(codes * (len(CONTRAST_STEPS) + 1) + levels, CONTRAST_DIM).astype(np.float32)


def patterns_from_contrast(histograms: np.ndarray) -> np.ndarray:
    """(N, CONTRAST_DIM) contrast-pattern histograms to the (N, PATTERN_DIM) plain ones they hold: a model that
    fuses both describes the pixels once."""
    return histograms.reshape(len(histograms), PATTERN_DIM, -1).sum(2, dtype=np.float32)

