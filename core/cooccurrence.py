"""Co-occurring local patterns: how a picture's smallest marks are arranged beside each other.

A local binary pattern histogram (core.texture) counts what each pixel's neighbourhood looks like, but
not what lies next to it: regular dithering and random noise, hatching and scattered strokes, a
one-pixel outline and a two-pixel one can fill the same pattern bins. Counting pairs of patterns a
few pixels apart (the co-occurrence of adjacent local binary patterns, CoALBP, after Nosaka et al.)
sees that arrangement. Each pixel gets the compact four-neighbour pattern (which of the pixels
above, right, below and left are brighter by more than the plain patterns' threshold: 16 codes),
and every pair of codes ``DISTANCE`` pixels apart is counted in four directions (right, down and
the two diagonals: 4 x 256 bins), on the picture and on its half-size copy, where JPEG noise and
anti-aliasing have been averaged away and the arrangement of broader strokes shows. Each block is
L1-normalised and the blocks weigh alike; compared by Hellinger distance like the other histograms
(resources/models/MODEL.md, "Co-occurring patterns").
"""

from __future__ import annotations

import numpy as np

from core.histograms import row_counts
from core.texture import PATTERN_THRESHOLD, box_shrink, luminance

CODES = 16
# Pixels between the two patterns of a pair: at 1 the pair shares pixels, and 2 carried over best.
DISTANCE = 2
DIRECTIONS = ((0, DISTANCE), (DISTANCE, 0), (DISTANCE, DISTANCE), (DISTANCE, -DISTANCE))
SCALES = (1, 2)
BLOCK = CODES * CODES
COOCCURRENCE_DIM = len(SCALES) * len(DIRECTIONS) * BLOCK
# The smallest picture whose most shrunk copy still holds a pair of patterns: 3 + DISTANCE px there.
MIN_SIZE = max(SCALES) * (3 + DISTANCE)
_NEIGHBOURS = ((-1, 0), (0, 1), (1, 0), (0, -1))


def _codes(y: np.ndarray) -> np.ndarray:
    """(N, H, W) luminance to the (N, H - 2, W - 2) four-neighbour patterns of its inner pixels."""
    h, w = y.shape[1:]
    centre = y[:, 1:-1, 1:-1]
    codes = np.zeros(centre.shape, np.int64)
    for bit, (dy, dx) in enumerate(_NEIGHBOURS):
        codes |= (y[:, 1 + dy:h - 1 + dy, 1 + dx:w - 1 + dx] - centre > PATTERN_THRESHOLD).astype(np.int64) << bit
    return codes


def _pairs(codes: np.ndarray, dy: int, dx: int) -> np.ndarray:
    """Each code joined with the code ``(dy, dx)`` away from it: bin ``first * CODES + second``."""
    h, w = codes.shape[1:]
    first = codes[:, max(0, -dy):h - max(0, dy), max(0, -dx):w - max(0, dx)]
    second = codes[:, max(0, dy):h - max(0, -dy), max(0, dx):w - max(0, -dx)]
    return first * CODES + second


def cooccurrence_histograms(pixels: np.ndarray) -> np.ndarray:
    """(N, H, W, C) uint8 pixels (RGB, or RGBA whose opacity is ignored: the colours are composited already)
    to (N, COOCCURRENCE_DIM) histograms of pattern pairs, each block L1-normalised and the whole summing to 1.

    Raises:
        ValueError: pixels smaller than ``MIN_SIZE`` on a side.
    """
    if pixels.ndim != 4 or pixels.shape[-1] not in (3, 4) or min(pixels.shape[1:3]) < MIN_SIZE:
        raise ValueError(f"co-occurring patterns need (N, H, W, 3 or 4) pixels of at least {MIN_SIZE} px a side, "
                         f"got {pixels.shape}")
    bright = luminance(pixels[..., :3].astype(np.float32) * (1.0 / 255.0))
    blocks = []
    for scale in SCALES:
        codes = _codes(bright if scale == 1 else box_shrink(bright, scale))
        blocks += [row_counts(_pairs(codes, dy, dx), BLOCK) for dy, dx in DIRECTIONS]
    return (np.concatenate(blocks, axis=1) / len(blocks)).astype(np.float32)
