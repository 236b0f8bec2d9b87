"""Co-occurring patterns: how the smallest marks of a picture lie beside each other."""

from __future__ import annotations

import numpy as np
import pytest

from core import modelfile
from core.cooccurrence import BLOCK, CODES, COOCCURRENCE_DIM, DIRECTIONS, MIN_SIZE, SCALES, cooccurrence_histograms
from core.embedder import Embedder
from core.model import ModelConfig
from core.modelfile import ModelInfo
from core.texture import pattern_histograms
from library_fixtures import saved_format
from trainer.base import SearchVector

SIZE = 64
RIGHT, LEFT = 1 << 1, 1 << 3  # the four-neighbour pattern's bits for a brighter pixel right and left


def _stripes(period: list[int]) -> np.ndarray:
    """Vertical stripes repeating ``period`` (0 dark, 1 bright) across a (1, SIZE, SIZE, 3) picture."""
    columns = np.resize(np.array(period, np.uint8) * 200 + 20, SIZE)
    return np.repeat(np.broadcast_to(columns, (SIZE, SIZE))[None, ..., None], 3, axis=3).copy()


def _block(histogram: np.ndarray, scale: int, direction: int) -> np.ndarray:
    """The (CODES, CODES) counts of one scale and direction, first code by row."""
    start = (SCALES.index(scale) * len(DIRECTIONS) + direction) * BLOCK
    return histogram[start:start + BLOCK].reshape(CODES, CODES)


def _dots(positions: list[tuple[int, int]]) -> np.ndarray:
    img = np.full((1, SIZE, SIZE, 3), 30, np.uint8)
    for y, x in positions:
        img[0, y, x] = 230
    return img


def test_each_block_is_a_share_of_its_pairs_and_pictures_do_not_affect_each_other():
    rng = np.random.default_rng(5)
    batch = rng.integers(0, 256, (3, SIZE, SIZE, 3), dtype=np.uint8)
    together = cooccurrence_histograms(batch)
    alone = np.concatenate([cooccurrence_histograms(batch[i:i + 1]) for i in range(3)])
    assert together.shape == (3, COOCCURRENCE_DIM) and np.array_equal(together, alone)
    blocks = together.reshape(3, -1, BLOCK).sum(2)
    assert np.allclose(blocks, 1.0 / blocks.shape[1]), "every scale and direction weighs alike"
    rgba = np.concatenate([batch, rng.integers(0, 256, (3, SIZE, SIZE, 1), dtype=np.uint8)], 3)
    assert np.array_equal(cooccurrence_histograms(rgba), together), "the colours are composited already"


def test_pairs_two_pixels_apart_tell_a_one_pixel_rhythm_from_a_two_pixel_one():
    """Both stripe pictures are nothing but vertical edges; what differs is what lies two pixels on."""
    fine = _block(cooccurrence_histograms(_stripes([0, 1]))[0], 1, 0)
    # A dark column between two bright ones has a brighter pixel on both sides, and so has the one two on.
    assert fine[RIGHT | LEFT, RIGHT | LEFT] == pytest.approx(0.5 / (len(SCALES) * len(DIRECTIONS)))
    assert np.trace(fine) == pytest.approx(fine.sum()), "a period of two pairs every pattern with itself"
    broad = _block(cooccurrence_histograms(_stripes([0, 0, 1, 1]))[0], 1, 0)
    assert np.trace(broad) == pytest.approx(0.0), "a period of four pairs each pattern with another"
    # Dark with bright on its left (or right), two on bright beside bright, and back: four pairs, a quarter each.
    quarter = broad.sum() / 4
    for first, second in ((LEFT, 0), (RIGHT, 0), (0, LEFT), (0, RIGHT)):
        assert broad[first, second] == pytest.approx(quarter)


def test_the_same_marks_arranged_otherwise_differ_where_plain_patterns_cannot():
    """Isolated dots make the same local patterns wherever they lie; in a regular grid they also lie in step."""
    grid = [(y, x) for y in range(4, SIZE - 4, 4) for x in range(4, SIZE - 4, 4)]
    rng = np.random.default_rng(0)
    scattered: list[tuple[int, int]] = []
    while len(scattered) < len(grid):
        y, x = (int(v) for v in rng.integers(3, SIZE - 3, 2))
        if all(max(abs(y - a), abs(x - b)) >= 3 for a, b in scattered):
            scattered.append((y, x))
    regular, random = _dots(grid), _dots(scattered)
    assert np.allclose(pattern_histograms(regular), pattern_histograms(random))
    a, b = cooccurrence_histograms(regular)[0], cooccurrence_histograms(random)[0]
    assert np.abs(a - b).sum() > 0.05
    # In the grid, the pixel right of a dot is two pixels from the pixel left of the next dot.
    assert _block(a, 1, 0)[LEFT, RIGHT] > 2 * _block(b, 1, 0)[LEFT, RIGHT]


def test_a_brightness_offset_or_noise_below_the_threshold_changes_nothing():
    rng = np.random.default_rng(2)
    picture = rng.integers(40, 200, (1, SIZE, SIZE, 3), dtype=np.uint8)
    assert np.array_equal(cooccurrence_histograms(picture + 20), cooccurrence_histograms(picture))
    flat = np.full((1, SIZE, SIZE, 3), 128, np.int16) + rng.integers(-1, 2, (1, SIZE, SIZE, 1), dtype=np.int16)
    histogram = cooccurrence_histograms(flat.astype(np.uint8))[0].reshape(-1, CODES, CODES)
    assert np.allclose(histogram[:, 0, 0], 1.0 / len(histogram)), "steps of two grey levels are no edges"


@pytest.mark.parametrize("shape", [(SIZE, SIZE, 3), (1, SIZE, SIZE, 2), (1, MIN_SIZE - 1, SIZE, 3)])
def test_wrong_shapes_are_refused(shape):
    with pytest.raises(ValueError, match="co-occurring patterns need"):
        cooccurrence_histograms(np.zeros(shape, np.uint8))


def test_a_model_that_fuses_co_occurring_patterns_takes_format_7_and_embeds_them_last(tmp_path):
    info = ModelInfo(name="coalbp", config=ModelConfig(input_size=32), embedding="projection",
                     pattern_weight=0.3, contrast_weight=0.1, cooccurrence_weight=0.2)
    loaded, version = saved_format(tmp_path / "coalbp.safetensors", info)
    assert version == modelfile.COOCCURRENCE_FORMAT_VERSION == 7, "older programs refuse it, not ignore the weight"
    pixels = np.concatenate([_stripes([0, 1]), _dots([(10, 10), (30, 40)])])
    raw = Embedder(loaded, device="cpu").raw_from_pixels(pixels)
    assert raw.shape[1] == modelfile.vector_dim(loaded.info) == 128 + 256 + 768 + COOCCURRENCE_DIM
    assert np.array_equal(raw[:, -COOCCURRENCE_DIM:], cooccurrence_histograms(pixels))
    kept = SearchVector.of_model(loaded.info, None).model_info("tuned", loaded.info.config)
    assert kept.cooccurrence_weight == 0.2, "a fine-tune keeps the base's co-occurring patterns"
