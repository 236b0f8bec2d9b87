"""A descriptor of how a picture's transparency is drawn: its silhouette's edges, shadows and outline.

Sprites, clip art and icons carry much of their maker's hand in the alpha channel: hard pixel edges
or anti-aliased ones, a soft drop shadow or glow, a dark outline or none. Compositing onto grey (what
every other part of the model sees, :func:`core.images.to_rgb`) keeps only a trace of that, so a
model file can fuse this descriptor beside its others. Three blocks, each L1-normalised:

- the opacity of the visible pixels (fully transparent ones left out, so the object's size counts
  little): how much is half-transparent, and how;
- the strength of opacity changes where there are any: a hard cut-out steps from 0 to 1 in one
  pixel, anti-aliasing in two, a shadow fades over many;
- the luminance of the opaque pixels on the silhouette's border: a dark outline, a light rim, or
  the object's own colours running to the edge.

A picture without transparency whose frame is one flat colour is read as a cut-out flattened onto that
colour (:func:`estimated_opacity`), so a sprite and its JPEG copy agree; any other opaque picture (a
photograph, a painting) has every pixel in the top opacity bin and empty other blocks: such pictures all
agree with each other here and differ from cut-outs.
Compared by Hellinger distance, like the colour and pattern histograms. On art the model never saw
it raised the mean of per-source P@1 and mAP, less so where half the pictures are flattened JPEG copies
(resources/models/MODEL.md, "Silhouettes").
"""

from __future__ import annotations

import numpy as np

from core.histograms import row_counts

# Opacity bins for the visible pixels: below 10 %, eight steps of 10 % up to 90 %,
# then "almost opaque" and fully opaque.
_OPACITY_EDGES = np.array([1, 25.5, 51, 76.5, 102, 127.5, 153, 178.5, 204, 229.5, 254.5, 256]) / 255.0
# Bins of the opacity change between a pixel's neighbours (central differences, 0 to sqrt 2); smaller
# changes are Lanczos ringing and JPEG-like noise, not edges.
_STEP_EDGES = np.array([0.02, 0.05, 0.1, 0.2, 0.35, 0.5, 0.75, 1.0, 1.5])
OUTLINE_BINS = 8
OPACITY_BINS = len(_OPACITY_EDGES) - 1
STEP_BINS = len(_STEP_EDGES) - 1
SILHOUETTE_DIM = OPACITY_BINS + STEP_BINS + OUTLINE_BINS
# An outline pixel is at least half opaque with a less-than-half-opaque pixel beside it.
_INSIDE = 0.5
# A picture without transparency is read as a cut-out (estimated_opacity) when this share of its
# frame, FRAME pixels wide, lies within FLAT grey levels (any channel) of the frame's median colour:
# tolerant of JPEG noise, not of a photograph's sky or a painting's texture. Within RAMP_WIDTH pixels
# of the background a pixel is as opaque as its difference from the background is a share of the
# picture's contrast (that percentile of its pixels' differences, at least MIN_CONTRAST levels), less
# FLAT levels of noise at either end: how anti-aliasing, glows and shadows blend into it. Farther in,
# everything is opaque.
FRAME = 2
FLAT = 16
FLAT_FRAME_SHARE = 0.9
RAMP_WIDTH = 8
CONTRAST_PERCENTILE = 90
MIN_CONTRAST = 48.0


def _histogram(values: np.ndarray, mask: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Per row, the L1-normalised histogram of ``values`` where ``mask`` holds; zeros where it never does."""
    bins = np.searchsorted(edges, values, side="right") - 1
    valid = mask & (bins >= 0) & (bins < len(edges) - 1)
    return row_counts(np.where(valid, bins, 0), len(edges) - 1, valid)


def grow_mask(mask: np.ndarray) -> np.ndarray:
    """``mask`` (N, H, W) and its 4-neighbours."""
    out = mask.copy()
    out[:, 1:] |= mask[:, :-1]
    out[:, :-1] |= mask[:, 1:]
    out[:, :, 1:] |= mask[:, :, :-1]
    out[:, :, :-1] |= mask[:, :, 1:]
    return out


def estimated_opacity(rgb: np.ndarray) -> np.ndarray:
    """(N, H, W, 3) uint8 colours of pictures without transparency to (N, H, W) opacity in [0, 1].

    A picture whose frame is one flat colour is read as a cut-out flattened onto that colour (a sprite
    saved as JPEG, clip art exported on white): the flat colour reachable from the frame is background,
    the pixels near it are as opaque as they differ from it (anti-aliasing and shadows blend into it),
    the rest is opaque. Any other picture is opaque throughout. So a cut-out and a flattened copy of it
    describe their silhouettes alike, as they must: they are the same art.
    """
    n, h, w = rgb.shape[:3]
    frame = np.zeros((h, w), bool)
    frame[:FRAME], frame[-FRAME:], frame[:, :FRAME], frame[:, -FRAME:] = True, True, True, True
    colour = np.median(rgb[:, frame], axis=1)
    diff = np.abs(rgb.astype(np.int16) - colour[:, None, None, :].astype(np.int16)).max(-1)
    near = diff <= FLAT
    flat_frame = near[:, frame].mean(1) >= FLAT_FRAME_SHARE
    near &= flat_frame[:, None, None]
    background = near & frame
    while True:
        grown = grow_mask(background) & near
        if np.array_equal(grown, background):
            break
        background = grown
    # How far the picture's own colours lie from the background: the difference a fully opaque pixel makes.
    solid = np.where(background, np.nan, diff.astype(np.float32))
    solid[background.all((1, 2))] = MIN_CONTRAST  # nothing but background: no contrast to measure
    contrast = np.maximum(np.nanpercentile(solid.reshape(n, -1), CONTRAST_PERCENTILE, axis=1), MIN_CONTRAST)
    near_edge, ring = background.copy(), background
    for _ in range(RAMP_WIDTH):
        ring = grow_mask(ring)
        near_edge |= ring
    opacity = np.ones((n, h, w), np.float32)
    fading = near_edge & ~background
    # Within FLAT levels of the background or of the picture's contrast counts as either: JPEG noise.
    share = (diff - FLAT) / (contrast[:, None, None] - 2 * FLAT)
    opacity[fading] = np.clip(share, 0.0, 1.0)[fading]
    opacity[background] = 0.0
    return opacity


def silhouette_histograms(pixels: np.ndarray) -> np.ndarray:
    """(N, H, W, 4) uint8 RGBA (colours composited, as :func:`core.images.load_array` gives them with
    ``alpha``) to (N, SILHOUETTE_DIM) raw histograms. A picture without transparency (three channels, or
    opacity 255 throughout) has its opacity estimated from its colours (:func:`estimated_opacity`).

    Raises:
        ValueError: not (N, H, W, 3 or 4) pixels of at least 3 px a side.
    """
    if pixels.ndim != 4 or pixels.shape[-1] not in (3, 4) or min(pixels.shape[1:3]) < 3:
        raise ValueError(f"silhouettes need (N, H, W, 3 or 4) pixels of at least 3 px a side, got {pixels.shape}")
    opaque = (pixels[..., 3] == 255).all((1, 2)) if pixels.shape[-1] == 4 else np.ones(len(pixels), bool)
    opacity = (pixels[..., 3].astype(np.float32) * (1.0 / 255.0) if pixels.shape[-1] == 4
               else np.ones(pixels.shape[:3], np.float32))
    if opaque.any():
        opacity[opaque] = estimated_opacity(pixels[opaque, ..., :3])
    visible = _histogram(opacity, opacity > 0, _OPACITY_EDGES)
    padded = np.pad(opacity, ((0, 0), (1, 1), (1, 1)), mode="edge")
    step = np.hypot(padded[:, 1:-1, 2:] - padded[:, 1:-1, :-2], padded[:, 2:, 1:-1] - padded[:, :-2, 1:-1])
    steps = _histogram(step, step >= _STEP_EDGES[0], _STEP_EDGES)
    inside = padded > _INSIDE
    border = inside[:, 1:-1, 1:-1] & ~(inside[:, :-2, 1:-1] & inside[:, 2:, 1:-1] & inside[:, 1:-1, :-2]
                                       & inside[:, 1:-1, 2:])
    rgb = pixels[..., :3].astype(np.float32) * (1.0 / 255.0)
    luminance = 0.299 * rgb[..., 0] + 0.587 * rgb[..., 1] + 0.114 * rgb[..., 2]
    outline = _histogram(np.minimum(luminance, 1.0 - 1e-6), border, np.linspace(0.0, 1.0, OUTLINE_BINS + 1))
    return np.concatenate([visible, steps, outline], axis=1).astype(np.float32)
