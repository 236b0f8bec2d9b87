"""The texture descriptor: gradient histograms that tell line work apart, whatever the colours."""

from __future__ import annotations

import numpy as np
import pytest

from core.texture import (BLOCK, BLOCKS, CONTRAST_DIM, MAGNITUDE_BINS, MIN_SIZE, ORIENTATION_BINS, PATTERN_DIM,
                          TEXTURE_DIM, contrast_histograms, pattern_histograms, texture_histograms, texture_vector)


def _grey(values: np.ndarray) -> np.ndarray:
    """(N, H, W) values in [0, 255] as grey RGB pixels."""
    return np.repeat(np.clip(values, 0, 255).astype(np.uint8)[..., None], 3, axis=-1)


def _blocks(histograms: np.ndarray) -> np.ndarray:
    return histograms.reshape(len(histograms), BLOCKS, MAGNITUDE_BINS, ORIENTATION_BINS)


def test_every_block_is_a_distribution_and_a_flat_picture_has_no_gradient():
    rng = np.random.default_rng(0)
    pixels = np.concatenate([np.full((1, 64, 64, 3), 200, np.uint8), rng.integers(0, 256, (2, 64, 64, 3), np.uint8)])
    h = texture_histograms(pixels)
    assert h.shape == (3, TEXTURE_DIM) and h.dtype == np.float32
    assert np.allclose(h.reshape(3, BLOCKS, BLOCK).sum(2), 1.0, atol=1e-5)
    flat = _blocks(h)[0]
    assert np.allclose(flat[:, 0, 0], 1.0), "no gradient anywhere: all in the weakest, first-orientation bin"


def test_orientation_follows_the_stripes_and_colour_edges_show_in_the_opponent_blocks():
    x = np.arange(64)
    vertical = _grey(np.broadcast_to(np.where(x % 16 < 8, 40, 220), (64, 64))[None])  # changes along x
    horizontal = vertical.transpose(0, 2, 1, 3)
    h = _blocks(texture_histograms(np.concatenate([vertical, horizontal])))
    orientation = h[:, 0, 1:].sum(1)  # full-resolution luminance, gradient pixels only, by orientation
    assert orientation[0].argmax() == 0, "a change along x is a horizontal gradient"
    assert orientation[1].argmax() == ORIENTATION_BINS // 2, "a change along y is a vertical gradient"
    # Red against green of the same brightness: no luminance edge to speak of, a strong red-green one.
    red_green = np.zeros((1, 64, 64, 3), np.uint8)
    red_green[..., :32, 0], red_green[..., 32:, 1] = 150, 77  # 0.299 * 150 ~ 0.587 * 77
    rg = _blocks(texture_histograms(red_green))[0]
    assert rg[0, MAGNITUDE_BINS // 2:].sum() == 0
    assert rg[3, MAGNITUDE_BINS // 2:].sum() > 0


def _strokes(seed: int, soft: bool) -> np.ndarray:
    """Random thick lines on paper: hard pixel edges, or the same kind of drawing blurred."""
    rng = np.random.default_rng(seed)
    canvas = np.full((96, 96), 235.0)
    for _ in range(6):
        if rng.random() < 0.5:
            row = rng.integers(4, 88)
            canvas[row:row + 4, rng.integers(0, 40):rng.integers(56, 96)] = rng.integers(20, 90)
        else:
            col = rng.integers(4, 88)
            canvas[rng.integers(0, 40):rng.integers(56, 96), col:col + 4] = rng.integers(20, 90)
    if soft:
        kernel = np.ones(7) / 7
        for axis in (0, 1):
            canvas = np.apply_along_axis(lambda v: np.convolve(v, kernel, mode="same"), axis, canvas)
    return _grey(canvas[None])[0]


def test_pictures_of_one_line_style_are_nearer_than_one_picture_in_two_styles():
    hard = np.stack([_strokes(seed, soft=False) for seed in range(6)])
    soft = np.stack([_strokes(seed, soft=True) for seed in range(6)])
    v = texture_vector(texture_histograms(np.concatenate([hard, soft])))
    assert np.allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-5)
    sims = v @ v.T
    within = [sims[i, j] for i in range(6) for j in range(6) if i != j]
    within += [sims[6 + i, 6 + j] for i in range(6) for j in range(6) if i != j]
    same_drawing = [sims[i, 6 + i] for i in range(6)]  # the same strokes, hard against blurred
    assert min(within) > max(same_drawing), (min(within), max(same_drawing))


def test_local_patterns_ignore_noise_below_the_threshold_and_tell_dithering_from_ramps():
    rng = np.random.default_rng(0)
    noisy_flat = _grey(128 + rng.integers(-1, 2, (1, 48, 48)))  # JPEG-like noise of one grey level
    x = np.arange(48)
    ramp = _grey(np.broadcast_to(x * 5, (48, 48))[None])  # brighter to the right by 5 levels a pixel
    dither = _grey(np.where((x[:, None] + x[None, :]) % 2, 200, 60)[None])  # a checkerboard
    h = pattern_histograms(np.concatenate([noisy_flat, ramp, dither]))
    assert h.shape == (3, PATTERN_DIM) and np.allclose(h.sum(1), 1.0)
    assert h[0, 0] == 1.0, "no neighbour is brighter by more than the threshold"
    right_column = (1 << 2) | (1 << 3) | (1 << 4)  # top right, right, bottom right neighbours
    assert h[1, right_column] == 1.0
    assert h[2].max() < 1.0 and h[2, 0] > 0.4 and h[2, 0b10101010] > 0.4  # bright pixels see none, dark see four
    assert h[2, 0b10101010] == pytest.approx(1.0 - h[2, 0], abs=1e-6)


def test_contrast_patterns_tell_a_soft_edge_from_a_hard_one_that_make_the_same_pattern():
    x = np.arange(48)
    soft = _grey(np.broadcast_to(x * 5, (48, 48))[None])  # 5 grey levels a pixel: shading
    medium = _grey(np.broadcast_to(np.minimum(x, 12) * 20, (48, 48))[None])  # 20 a pixel, then flat
    hard = _grey(np.broadcast_to(np.where(x % 2, 250, 10), (48, 48))[None])  # stripes of 240 levels
    pixels = np.concatenate([soft, medium, hard])
    joint = contrast_histograms(pixels)
    assert joint.shape == (3, CONTRAST_DIM) and np.allclose(joint.sum(1), 1.0)
    # Each pattern's three contrast bins add up to the plain pattern histogram.
    assert np.allclose(joint.reshape(3, PATTERN_DIM, 3).sum(2), pattern_histograms(pixels), atol=1e-6)
    right_column = (1 << 2) | (1 << 3) | (1 << 4)
    assert joint[0, right_column * 3 + 0] == 1.0, "steps of 5 levels are the weakest contrast"
    assert joint[1, right_column * 3 + 1] == pytest.approx(11 / 46), "steps of 20 the middle one (columns 1-11)"
    assert joint[1, 0] == pytest.approx(34 / 46), "the flat part none"
    levels = joint[2].reshape(PATTERN_DIM, 3).sum(0)
    assert levels[2] == 1.0, "every pixel of hard stripes steps by more than 64 levels"
    flat = contrast_histograms(np.full((1, 16, 16, 3), 90, np.uint8))
    assert flat[0, 0] == 1.0


@pytest.mark.parametrize("describe", [texture_histograms, pattern_histograms, contrast_histograms])
def test_pictures_too_small_for_the_coarsest_scale_are_refused(describe):
    describe(np.zeros((1, MIN_SIZE, MIN_SIZE, 3), np.uint8))
    with pytest.raises(ValueError, match="at least"):
        describe(np.zeros((1, MIN_SIZE - 1, 64, 3), np.uint8))
    with pytest.raises(ValueError, match="at least"):
        describe(np.zeros((64, 64, 3), np.uint8))
