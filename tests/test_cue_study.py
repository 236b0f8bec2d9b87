"""bench/cue_study.py: candidate descriptors scored beside the model's fused vector on validation."""

from __future__ import annotations

import json

import numpy as np
import pytest

from bench.cue_study import (edge_relations, learned_whitening, main, outline_rings, rotation_invariant_contrast,
                             signed_orientation, whole_groups)
from core.texture import contrast_histograms, texture_histograms
from library_fixtures import tiny_model_file
from tests.test_compare_networks import two_sources  # noqa: F401 (fixture)
from trainer.manifest import Sample


def _outlined(outline: tuple[int, int, int]) -> np.ndarray:
    """A red disc with a 2 px ring of ``outline`` on white, as (1, 64, 64, 4) RGBA."""
    yy, xx = np.mgrid[:64, :64]
    r = np.hypot(yy - 30, xx - 34)
    pixels = np.full((1, 64, 64, 4), 255, np.uint8)
    pixels[0, r < 22, :3] = outline
    pixels[0, r < 20, :3] = (220, 40, 40)
    return pixels


def test_rotation_invariant_patterns_ignore_which_way_edges_run():
    rng = np.random.default_rng(1)
    pixels = np.zeros((1, 48, 48, 4), np.uint8)
    pixels[..., :3] = np.repeat(rng.integers(0, 256, (1, 48, 48, 1)), 3, axis=3)
    pixels[0, 10:30, 5:40, :3] = 200  # an off-centre bar, so the picture is not symmetric
    turned = np.ascontiguousarray(np.rot90(pixels, 1, axes=(1, 2)))
    assert not np.allclose(contrast_histograms(pixels[..., :3]), contrast_histograms(turned[..., :3]))
    np.testing.assert_allclose(rotation_invariant_contrast(pixels), rotation_invariant_contrast(turned))


def test_signed_orientation_tells_light_from_above_from_light_from_below():
    ramp = np.zeros((1, 64, 64, 4), np.uint8)
    ramp[..., :3] = np.linspace(230, 30, 64).astype(np.uint8)[None, :, None, None]
    flipped = np.ascontiguousarray(ramp[:, ::-1])
    # The texture histogram folds orientation to 180 degrees: it cannot tell the two apart.
    np.testing.assert_allclose(texture_histograms(ramp[..., :3]), texture_histograms(flipped[..., :3]))
    assert np.abs(signed_orientation(ramp) - signed_orientation(flipped)).sum() > 1.0


def test_edge_relations_tell_an_outline_of_the_fills_hue_from_a_black_one():
    dark_red, black = edge_relations(_outlined((110, 10, 10))), edge_relations(_outlined((0, 0, 0)))
    for hist in (dark_red, black):
        assert hist.shape == (1, 192) and hist.sum() == pytest.approx(1.0)
    assert np.abs(dark_red - black).sum() > 0.5
    flat = np.full((1, 32, 32, 4), 90, np.uint8)
    assert not edge_relations(flat).any()


def test_outline_rings_see_the_outline_of_a_cut_out_and_of_its_flattened_copy_alike():
    cut_out = _outlined((0, 0, 0))
    cut_out[0, np.hypot(*np.mgrid[-30:34, -34:30]) >= 22, 3] = 0  # transparent outside the ring
    cut_out[cut_out[..., 3] == 0, :3] = 128  # composited onto grey, as the decoder does
    flattened = cut_out.copy()
    flattened[..., 3] = 255
    rings = outline_rings(np.concatenate([cut_out, flattened]))
    assert rings.shape == (2, 48)
    first_brightness = rings[:, :8]
    assert first_brightness[:, 0].min() > 0.9  # the first ring in is the black outline, in both
    np.testing.assert_allclose(rings[0], rings[1], atol=0.1)
    no_outline = _outlined((220, 40, 40))
    no_outline[0, np.hypot(*np.mgrid[-30:34, -34:30]) >= 22, 3] = 0
    assert outline_rings(no_outline)[0, 0] < 0.1


def test_learned_whitening_discounts_the_spread_within_groups():
    rng = np.random.default_rng(0)
    groups = np.repeat(np.arange(20), 5)
    x = np.zeros((100, 2))
    x[:, 0] = rng.normal(size=20)[groups] * 0.3 + rng.normal(size=100) * 0.05  # style: the group's own value
    x[:, 1] = rng.normal(size=100)  # content: varies within every group

    def between(v):  # spread of the group means, per direction
        return np.array([v[groups == g].mean(0) for g in range(20)]).std(0)

    assert between(x)[0] < between(x)[1] * 1.5
    scaled = x @ learned_whitening(x, groups, power=1.0, shrink=0.0)
    assert between(scaled)[0] > 3 * between(scaled)[1]


def test_whole_groups_are_taken_or_left_whole():
    samples = [Sample(f"{g}-{i}.png", f"g{g}") for g in range(10) for i in range(4)]
    paths = whole_groups(samples, 12)
    taken = {p.split("-")[0] for p in paths}
    assert len(paths) == 4 * len(taken) and 2 <= len(taken) <= 4


def test_every_candidate_is_scored_at_every_weight_against_the_model_alone(two_sources, tmp_path, capsys):  # noqa: F811
    model = tiny_model_file(tmp_path / "models", seed=3)
    report = tmp_path / "study.json"
    assert main(["--model", str(model), "--validation", str(two_sources), "--fit-on", str(two_sources),
                 "--weights", "0.1,0.5", "--workers", "0", "--within", str(two_sources),
                 "--report", str(report)]) == 0
    rows = json.loads(report.read_text())["rows"]
    assert [(r["candidate"], r["weight"]) for r in rows[:11]] == [(None, 0.0)] + [
        (name, w) for name in ("signed-orientation", "edge-relations", "rotation-invariant-contrast",
                               "colour-silhouette", "outline-rings") for w in (0.1, 0.5)]
    assert len(rows) == 13 and all(r["candidate"].startswith("learned whitening") for r in rows[11:])
    for row in rows:
        assert 0 <= row["criterion"] <= 1
    # A candidate at half the weight changes the ranking somewhere.
    assert len({round(r["criterion"], 9) for r in rows[:11]}) > 1


def test_an_unknown_candidate_is_refused(two_sources, capsys):  # noqa: F811 (fixture)
    with pytest.raises(SystemExit):
        main(["--fit-on", str(two_sources), "--candidates", "signed-orientation,gabor"])
    assert "unknown candidates ['gabor']" in capsys.readouterr().err
