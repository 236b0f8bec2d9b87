"""Non-learned descriptors for the comparison table and for fusion.

The colour baseline is a joint HSV histogram compared by the Hellinger
kernel: the square root of a normalised histogram is already a unit vector,
and the cosine of two such vectors is their Bhattacharyya coefficient, so it
drops into the same cosine search as the ALADIN vectors.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

HSV_BINS = (16, 4, 4)


def colour_histogram(pixels: np.ndarray, bins: tuple[int, int, int] = HSV_BINS) -> np.ndarray:
    """(N, H, W, 3) uint8 RGB to (N, prod(bins)) unit Hellinger vectors."""
    out = np.zeros((len(pixels), int(np.prod(bins))), np.float32)
    for i, rgb in enumerate(pixels):
        hsv = np.asarray(Image.fromarray(np.ascontiguousarray(rgb)).convert("HSV")).reshape(-1, 3)
        idx = [(hsv[:, c].astype(np.int64) * b) // 256 for c, b in enumerate(bins)]
        flat = (idx[0] * bins[1] + idx[1]) * bins[2] + idx[2]
        hist = np.bincount(flat, minlength=out.shape[1]).astype(np.float64)
        out[i] = np.sqrt(hist / hist.sum())
    return out


def fuse(a: np.ndarray, b: np.ndarray, weight_b: float) -> np.ndarray:
    """Concatenate unit vectors ``a`` and ``weight_b * b`` and renormalise (sec. 5.6 'Fused').

    The fused cosine is (a.a' + w^2 b.b') / (1 + w^2): a weighted mix of the two similarities.
    """
    fused = np.concatenate([a, weight_b * b], axis=1)
    return (fused / np.maximum(np.linalg.norm(fused, axis=1, keepdims=True), 1e-12)).astype(np.float32)
