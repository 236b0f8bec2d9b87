"""Procedural style treatments: strong, deterministic, and one recipe per group."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from trainer.corpora.treatments import FAMILIES, Style, apply_style, sample_style


def _content(seed: int, size: int = 64) -> Image.Image:
    """A small 'photo': smooth gradients plus a bright disc, different per seed."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size] / size
    arr = np.stack([xx * rng.uniform(0.3, 1), yy * rng.uniform(0.3, 1), (1 - xx) * rng.uniform(0.3, 1)], -1)
    cy, cx = rng.uniform(0.3, 0.7, 2)
    arr[(yy - cy) ** 2 + (xx - cx) ** 2 < 0.04] = rng.uniform(0.6, 1.0, 3)
    return Image.fromarray((arr * 255).astype(np.uint8))


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_every_family_restyles_strongly_and_deterministically(family):
    style = sample_style(np.random.default_rng(11), family)
    assert style.family == family
    src = _content(1)
    out = apply_style(style, src, seed=5)
    assert out.size == src.size and out.mode == "RGB"
    change = np.abs(np.asarray(out, dtype=float) - np.asarray(src, dtype=float)).mean()
    assert change > 8, f"{family} barely changes the image (mean abs change {change:.1f})"
    assert np.array_equal(np.asarray(out), np.asarray(apply_style(style, src, seed=5)))


def test_sampled_recipes_are_reproducible_and_distinct():
    a = [sample_style(np.random.default_rng([0, i])) for i in range(30)]
    b = [sample_style(np.random.default_rng([0, i])) for i in range(30)]
    assert [s.key for s in a] == [s.key for s in b]
    assert len({s.key for s in a}) == 30
    assert len({s.family for s in a}) >= 8


def test_one_style_over_different_contents_shares_more_than_two_styles_on_one_content():
    """The point of a group: the style, not the content, is what images share.

    Colour statistics (mean and spread per channel) of one recipe applied to
    different contents stay closer than two recipes applied to the same content.
    """
    rng = np.random.default_rng(3)
    s1, s2 = sample_style(rng, "posterise"), sample_style(rng, "halftone")

    def stats(img):
        arr = np.asarray(img, dtype=float).reshape(-1, 3)
        return np.concatenate([arr.mean(0), arr.std(0)])

    same_style = np.linalg.norm(stats(apply_style(s1, _content(1))) - stats(apply_style(s1, _content(2))))
    same_content = np.linalg.norm(stats(apply_style(s1, _content(1))) - stats(apply_style(s2, _content(1))))
    assert same_style < same_content


def test_style_key_depends_on_parameters():
    assert Style("dither", {"scale": 1}).key != Style("dither", {"scale": 2}).key
    assert Style("dither", {"scale": 1}).key == Style("dither", {"scale": 1}).key
    with pytest.raises(ValueError, match="unknown treatment"):
        sample_style(np.random.default_rng(0), "no-such-family")
