"""The recipe-distinctness benchmark's distance: nearest other recipe over the contents both rendered."""

from __future__ import annotations

import numpy as np

from bench.recipe_twins import TWIN, nearest_distances, summary


def _thumb(value: float, drawn: slice = slice(8, 24)) -> np.ndarray:
    t = np.full((32, 32, 3), 128 / 255, np.float32)  # the trainer's grey ground
    t[drawn, drawn] = value
    return t


def test_twins_are_found_over_the_drawn_pixels_and_missing_renders_are_skipped():
    a = [_thumb(0.9), _thumb(0.1)]
    twin = [_thumb(0.9 + TWIN / 3), None]  # one content failed to render: compared on the other only
    other = [_thumb(0.2), _thumb(0.8)]
    best = nearest_distances([a, twin, other])
    assert np.isclose(best[0], TWIN / 3, atol=1e-4) and np.isclose(best[1], TWIN / 3, atol=1e-4)
    assert best[2] > 0.5
    # A small figure on a large ground counts only where something is drawn in either picture.
    small = nearest_distances([[_thumb(0.9, slice(14, 18))], [_thumb(0.1, slice(14, 18))]])
    assert small[0] > 0.5
    assert np.allclose(nearest_distances([a, twin, other], np.array([2, 0])), best[[2, 0]])
    report = summary(best)
    assert report["recipes"] == 3 and np.isclose(report["twin_share"], 2 / 3, atol=1e-3)
