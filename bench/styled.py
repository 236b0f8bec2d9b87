"""Procedural "art" for the library benchmarks: families of images sharing a style.

Each style has a palette, a stripe frequency and angle, a blob scale and a
grain; its variants change phase, layout and noise. Collections of real art
are clustered the same way (a few hundred images per artist or series), which
is what makes approximate search easier or harder than on random vectors.
"""

from __future__ import annotations

import numpy as np


def styled_array(style: int, variant: int, size: int = 32) -> np.ndarray:
    """A ``size`` x ``size`` x 3 uint8 image of ``style``."""
    s = np.random.default_rng(style)
    palette = s.random((3, 3)) * 255
    freq, angle = s.uniform(0.05, 0.8), s.uniform(0, np.pi)
    blob, grain, mix = s.uniform(2, 10), s.uniform(0, 60), s.uniform(0, 1)
    v = np.random.default_rng(1_000_003 * (style + 1) + variant)
    yy, xx = np.mgrid[0:size, 0:size] * (32.0 / size)
    wave = 0.5 + 0.5 * np.sin(freq * (xx * np.cos(angle) + yy * np.sin(angle)) + v.uniform(0, 6.3))
    coarse = v.random((int(size / blob) + 2, int(size / blob) + 2))
    ys = np.minimum((yy / blob).astype(int), coarse.shape[0] - 1)
    xs = np.minimum((xx / blob).astype(int), coarse.shape[1] - 1)
    blobs = coarse[ys, xs]
    jitter = v.normal(0, 12, (3, 3))
    p = np.clip(palette + jitter, 0, 255)
    img = (p[0] * (wave * (1 - mix))[..., None] + p[1] * (blobs * mix)[..., None]
           + p[2] * (1 - wave * (1 - mix) - blobs * mix)[..., None])
    img = img + v.normal(0, grain, img.shape)
    return np.clip(img, 0, 255).astype(np.uint8)
