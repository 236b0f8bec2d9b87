"""The granulometry: light and shade by the width of the structures that hold them."""

from __future__ import annotations

import numpy as np
import pytest

from core import modelfile
from core.embedder import Embedder
from core.granulometry import GRANULOMETRY_DIM, GRANULOMETRY_SCALES, granulometry_histograms
from core.model import ModelConfig
from core.modelfile import ModelInfo
from library_fixtures import saved_format
from trainer.base import SearchVector

SIZE = 64


def _lines(width: int, bright: bool) -> np.ndarray:
    """One vertical line of ``width`` px in the middle, bright on black or dark on white, as (1, SIZE, SIZE, 3).

    The ground on either side is wider than the largest square, so it is no structure of its own.
    """
    img = np.full((SIZE, SIZE, 3), 0 if bright else 255, np.uint8)
    x = SIZE // 2 - width // 2
    img[:, x:x + width] = 255 if bright else 0
    return img[None]


def test_a_flat_picture_has_no_structures():
    assert not granulometry_histograms(np.full((2, SIZE, SIZE, 3), 137, np.uint8)).any()


@pytest.mark.parametrize("width, scale", [(1, 0), (3, 1), (5, 2), (9, 4)])
def test_bright_lines_count_at_their_width_as_a_share_of_the_light(width, scale):
    spectrum = granulometry_histograms(_lines(width, bright=True))[0]
    light = width / SIZE  # the line's `width` columns hold all the light there is
    assert spectrum[scale] == pytest.approx(light, abs=1e-6)
    assert np.delete(spectrum, scale).sum() == pytest.approx(0.0, abs=1e-6)


@pytest.mark.parametrize("width, scale", [(1, 0), (3, 1), (7, 3)])
def test_dark_lines_count_in_the_second_half(width, scale):
    spectrum = granulometry_histograms(_lines(width, bright=False))[0]
    assert spectrum[:GRANULOMETRY_SCALES].sum() == pytest.approx(0.0, abs=1e-6)
    assert spectrum[GRANULOMETRY_SCALES + scale] == pytest.approx(width / SIZE, abs=1e-6)
    assert spectrum.sum() == pytest.approx(spectrum[GRANULOMETRY_SCALES + scale])


def test_opacity_is_ignored_and_pictures_do_not_affect_each_other():
    rng = np.random.default_rng(3)
    batch = rng.integers(0, 256, (3, SIZE, SIZE, 3), dtype=np.uint8)
    alone = np.concatenate([granulometry_histograms(batch[i:i + 1]) for i in range(3)])
    together = granulometry_histograms(batch)
    assert together.shape == (3, GRANULOMETRY_DIM) and np.array_equal(alone, together)
    rgba = np.concatenate([batch, rng.integers(0, 256, (3, SIZE, SIZE, 1), dtype=np.uint8)], 3)
    assert np.array_equal(granulometry_histograms(rgba), together)
    assert (together >= 0).all() and (together.sum(1) <= 1).all()


@pytest.mark.parametrize("shape", [(SIZE, SIZE, 3), (1, SIZE, SIZE, 2), (1, 0, SIZE, 3)])
def test_wrong_shapes_are_refused(shape):
    with pytest.raises(ValueError, match="granulometry needs"):
        granulometry_histograms(np.zeros(shape, np.uint8))


def test_a_model_that_fuses_a_granulometry_takes_format_5_and_embeds_it(tmp_path):
    info = ModelInfo(name="gran", config=ModelConfig(input_size=32), embedding="projection",
                     pattern_weight=0.3, granulometry_weight=0.2)
    loaded, version = saved_format(tmp_path / "gran.safetensors", info)
    assert version == modelfile.GRANULOMETRY_FORMAT_VERSION, "older programs refuse it instead of ignoring the weight"
    assert loaded.info.granulometry_weight == 0.2 and not loaded.info.reads_alpha
    embedder = Embedder(loaded, device="cpu")
    raw = embedder.raw_from_pixels(np.concatenate([_lines(1, True), _lines(5, False)]))
    assert raw.shape[1] == modelfile.vector_dim(loaded.info) == 128 + 256 + GRANULOMETRY_DIM
    assert np.array_equal(raw[:, -GRANULOMETRY_DIM:],
                          granulometry_histograms(np.concatenate([_lines(1, True), _lines(5, False)])))
    kept = SearchVector.of_model(loaded.info, None).model_info("tuned", loaded.info.config)
    assert kept.granulometry_weight == 0.2, "a fine-tune keeps the base's granulometry"


def test_a_model_that_fuses_contrast_patterns_takes_format_6_and_embeds_them(tmp_path, monkeypatch):
    from core.texture import CONTRAST_DIM, contrast_histograms, pattern_histograms

    info = ModelInfo(name="lbpc", config=ModelConfig(input_size=32), embedding="projection",
                     pattern_weight=0.3, contrast_weight=0.1, granulometry_weight=0.2)
    loaded, version = saved_format(tmp_path / "lbpc.safetensors", info)
    assert version == modelfile.CONTRAST_FORMAT_VERSION, "older programs refuse it instead of ignoring the weight"
    pixels = np.concatenate([_lines(1, True), _lines(5, False)])
    import core.embedder

    def twice(_pixels):
        raise AssertionError("the plain patterns were computed again")

    monkeypatch.setattr(core.embedder, "pattern_histograms", twice)
    raw = Embedder(loaded, device="cpu").raw_from_pixels(pixels)
    assert raw.shape[1] == modelfile.vector_dim(loaded.info) == 128 + 256 + GRANULOMETRY_DIM + CONTRAST_DIM
    assert np.array_equal(raw[:, -CONTRAST_DIM:], contrast_histograms(pixels)), "the last part, after the others"
    # The plain patterns are read out of the contrast patterns rather than computed again, in their own place.
    assert np.allclose(raw[:, 128:128 + 256], pattern_histograms(pixels), atol=1e-6)
    kept = SearchVector.of_model(loaded.info, None).model_info("tuned", loaded.info.config)
    assert kept.contrast_weight == 0.1, "a fine-tune keeps the base's contrast patterns"
