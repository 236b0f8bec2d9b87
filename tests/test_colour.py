"""The HSV colour descriptor used as a baseline and for fusion."""

from __future__ import annotations

import colorsys

import numpy as np

from core.colour import colour_histogram, hellinger, rgb_to_hsv


def test_hsv_matches_colorsys():
    pixels = (np.random.default_rng(0).random((3, 7, 7, 3)) * 255).astype(np.uint8)
    pixels[0, 0, 0] = (40, 40, 40)  # grey: zero saturation, hue defined as 0
    ours = rgb_to_hsv(pixels).reshape(-1, 3)
    ref = np.array([colorsys.rgb_to_hsv(*(p / 255.0)) for p in pixels.reshape(-1, 3)])
    assert np.abs(ours - ref).max() < 1e-5


def test_histogram_counts_the_right_bins():
    img = np.zeros((1, 4, 4, 3), np.uint8)
    img[0, :2] = (255, 0, 0)      # pure red: hue 0, full saturation and value
    img[0, 2:] = (0, 0, 255)      # pure blue: hue 2/3
    hist = colour_histogram(img, bins=(6, 2, 2))[0]
    red = (0 * 2 + 1) * 2 + 1
    blue = (4 * 2 + 1) * 2 + 1
    assert hist[red] == 0.5 and hist[blue] == 0.5 and hist.sum() == 1.0


def test_hellinger_similarity_is_bhattacharyya():
    a = np.array([[0.5, 0.5, 0.0, 0.0]], np.float32)
    b = np.array([[0.0, 0.5, 0.5, 0.0]], np.float32)
    sim = (hellinger(a) @ hellinger(b).T)[0, 0]
    assert abs(sim - 0.5) < 1e-6
    assert np.allclose(np.linalg.norm(hellinger(np.vstack([a, b])), axis=1), 1)
