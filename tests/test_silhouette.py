"""The silhouette descriptor: how transparency is drawn, decoded with the pixels and fused by model files."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from core import modelfile
from core.decode import iter_decoded
from core.embedder import Embedder
from core.images import BACKGROUND, load_array
from core.model import ModelConfig, build_model
from core.modelfile import ModelInfo, load_model_file, save_model
from core.silhouette import (OPACITY_BINS, SILHOUETTE_DIM, STEP_BINS, estimated_opacity,
                             silhouette_histograms)
from trainer.base import SearchVector
from trainer.cli import main
from trainer.manifest import Sample, write_manifest

BLOCKS = (slice(0, OPACITY_BINS), slice(OPACITY_BINS, OPACITY_BINS + STEP_BINS),
          slice(OPACITY_BINS + STEP_BINS, SILHOUETTE_DIM))


def _blob(seed: int, size: int = 64) -> np.ndarray:
    """A random filled shape as a 0/1 mask: an ellipse with a bite taken out."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[:size, :size] / size
    cy, cx, ry, rx = rng.uniform(0.4, 0.6), rng.uniform(0.4, 0.6), rng.uniform(0.2, 0.35), rng.uniform(0.2, 0.35)
    inside = ((y - cy) / ry) ** 2 + ((x - cx) / rx) ** 2 < 1
    by, bx = rng.uniform(0.2, 0.8, 2)
    return (inside & (((y - by) ** 2 + (x - bx) ** 2) > 0.02)).astype(np.float64)


def _feather(mask: np.ndarray, width: int = 9) -> np.ndarray:
    """The mask's edge faded over ``width`` pixels, as a soft glow or drop shadow fades."""
    kernel = np.ones(width) / width
    out = mask
    for axis in (0, 1):
        out = np.apply_along_axis(lambda row: np.convolve(row, kernel, mode="same"), axis, out)
    return out


def _sprite(seed: int, soft: bool, outline: bool = False, size: int = 64) -> np.ndarray:
    """(size, size, 4) uint8 RGBA: one flat colour per content (seed), a hard or feathered silhouette."""
    colour = np.random.default_rng(seed + 100).integers(60, 230, 3)
    mask = _blob(seed, size)
    alpha = _feather(mask) if soft else mask
    rgb = np.broadcast_to(colour, (size, size, 3)).astype(np.uint8).copy()
    if outline:
        inner = _blob(seed, size)
        edge = inner.astype(bool) & ~(np.roll(inner, 1, 0) * np.roll(inner, -1, 0) * np.roll(inner, 1, 1)
                                      * np.roll(inner, -1, 1)).astype(bool)
        rgb[edge] = 10
    return np.dstack([rgb, np.round(alpha * 255).astype(np.uint8)])


def _composited(rgba: np.ndarray) -> np.ndarray:
    """What the loader hands every other descriptor: the colours composited onto grey, opacity kept beside."""
    a = rgba[..., 3:].astype(np.float64) / 255
    rgb = np.round(rgba[..., :3] * a + np.array(BACKGROUND) * (1 - a)).astype(np.uint8)
    return np.dstack([rgb, rgba[..., 3]])


def test_every_block_is_a_distribution_and_opaque_pictures_all_look_alike():
    rng = np.random.default_rng(0)
    photos = rng.integers(0, 256, (3, 32, 32, 3), np.uint8)
    h = silhouette_histograms(photos)
    assert h.shape == (3, SILHOUETTE_DIM) and h.dtype == np.float32
    assert np.array_equal(h[0], h[1]) and np.array_equal(h[0], h[2]), "opacity alone decides; colours never do"
    assert h[0, OPACITY_BINS - 1] == 1.0 and h[0].sum() == 1.0, "all visible pixels fully opaque, no edge"
    sprites = np.stack([_composited(_sprite(s, soft)) for s in range(3) for soft in (False, True)])
    hs = silhouette_histograms(sprites)
    for block in BLOCKS:
        assert np.allclose(hs[:, block].sum(1), 1.0, atol=1e-5)


def test_hard_and_soft_edges_and_outlines_land_in_different_bins():
    hard, soft = silhouette_histograms(np.stack([_composited(_sprite(1, False)), _composited(_sprite(1, True))]))
    steps = BLOCKS[1]
    strong = slice(steps.start + STEP_BINS // 2, steps.stop)
    assert hard[strong].sum() > 0.9, "a cut-out steps from transparent to opaque in one pixel"
    assert soft[strong].sum() < 0.1, "a feathered edge fades gradually"
    assert hard[: OPACITY_BINS - 1].sum() == 0 and soft[: OPACITY_BINS - 1].sum() > 0.1, "half-transparent pixels"
    plain, outlined = silhouette_histograms(np.stack([_composited(_sprite(2, False)),
                                                      _composited(_sprite(2, False, outline=True))]))
    darkest = BLOCKS[2].start
    assert outlined[darkest] > 0.5 > plain[darkest], "a dark outline shows in the border's luminance"
    assert np.allclose(plain[: BLOCKS[2].start], outlined[: BLOCKS[2].start]), "same silhouette, same edges"


def _flattened(rgba: np.ndarray, background=(255, 255, 255)) -> np.ndarray:
    """The cut-out saved without transparency, on a flat colour (what a JPEG export of it holds)."""
    a = rgba[..., 3:].astype(np.float64) / 255
    return np.round(rgba[..., :3] * a + np.array(background) * (1 - a)).astype(np.uint8)


def _similarity(a: np.ndarray, b: np.ndarray) -> float:
    ra, rb = np.sqrt(a), np.sqrt(b)
    return float(ra @ rb / np.linalg.norm(ra) / np.linalg.norm(rb))


def test_a_flattened_cut_out_is_read_as_one_and_keeps_its_edges():
    hard = _sprite(6, False)
    opacity = estimated_opacity(_flattened(hard)[None])[0]
    assert np.array_equal(opacity > 0.5, hard[..., 3] > 127), "the flat white around the shape is background"
    cut_hard, cut_soft = silhouette_histograms(np.stack([_composited(hard), _composited(_sprite(6, True))]))
    for background in ((255, 255, 255), BACKGROUND, (0, 0, 40)):
        flat_hard, flat_soft = silhouette_histograms(np.stack([_flattened(hard, background),
                                                               _flattened(_sprite(6, True), background)]))
        assert _similarity(flat_hard, cut_hard) > _similarity(flat_hard, cut_soft) + 0.2
        assert _similarity(flat_soft, cut_soft) > _similarity(flat_soft, cut_hard) + 0.1
    noisy = np.clip(_flattened(hard).astype(int) + np.random.default_rng(0).integers(-6, 7, (64, 64, 3)), 0, 255)
    assert _similarity(silhouette_histograms(noisy.astype(np.uint8)[None])[0], cut_hard) > 0.9, "JPEG-like noise"


def test_a_picture_without_a_flat_frame_is_opaque_whatever_its_channels():
    rng = np.random.default_rng(2)
    photo = rng.integers(0, 256, (1, 48, 48, 3), np.uint8)
    assert (estimated_opacity(photo) == 1).all()
    framed = photo.copy()
    framed[:, :, :2] = 250  # one flat side is not a flat frame
    assert (estimated_opacity(framed) == 1).all()
    drawn = _flattened(_sprite(7, False))[None]
    as_rgba = np.concatenate([drawn, np.full((1, 64, 64, 1), 255, np.uint8)], axis=3)
    assert np.array_equal(silhouette_histograms(as_rgba), silhouette_histograms(drawn)), \
        "an alpha channel that is opaque everywhere says nothing: the colours decide"


def test_pixels_of_the_wrong_shape_are_refused():
    with pytest.raises(ValueError, match="silhouettes need"):
        silhouette_histograms(np.zeros((2, 32, 32), np.uint8))
    with pytest.raises(ValueError, match="silhouettes need"):
        silhouette_histograms(np.zeros((1, 2, 32, 4), np.uint8))


def test_the_loader_gives_opacity_beside_the_same_composited_colours(tmp_path):
    Image.fromarray(_sprite(3, True), "RGBA").save(tmp_path / "sprite.png")
    Image.fromarray(_sprite(3, True)[..., :3], "RGB").save(tmp_path / "photo.jpg", quality=90)
    palette = Image.fromarray(_sprite(4, False)).convert("RGBA").quantize(8)
    palette.info["transparency"] = palette.getpixel((0, 0))
    palette.save(tmp_path / "palette.png", transparency=palette.getpixel((0, 0)))
    for name in ("sprite.png", "photo.jpg", "palette.png"):
        rgb, size = load_array(tmp_path / name, 48)
        rgba, same_size = load_array(tmp_path / name, 48, alpha=True)
        assert rgba.shape == (48, 48, 4) and size == same_size
        assert np.array_equal(rgba[..., :3], rgb)
    assert (load_array(tmp_path / "photo.jpg", 48, alpha=True)[0][..., 3] == 255).all()
    sprite = load_array(tmp_path / "sprite.png", 48, alpha=True)[0][..., 3]
    assert sprite.min() == 0 and sprite.max() == 255 and ((sprite > 0) & (sprite < 255)).mean() > 0.1
    assert set(np.unique(load_array(tmp_path / "palette.png", 48, alpha=True)[0][..., 3])) >= {0, 255}


@pytest.mark.parametrize("mode", ["RGBA", "LA", "PA", "RGBa", "La"])
def test_every_mode_with_opacity_gives_its_opacity(mode):
    from core.images import alpha_channel

    rgba = Image.fromarray(_sprite(8, True), "RGBA")
    # Pillow's convert drops the opacity on the way to PA and La; build those from their bands.
    first = {"PA": rgba.convert("RGB").quantize(16), "La": rgba.convert("L")}
    img = Image.merge(mode, (first[mode], rgba.getchannel("A"))) if mode in first else rgba.convert(mode)
    opacity = np.asarray(alpha_channel(img))
    assert opacity.shape == (64, 64) and opacity.min() == 0 and opacity.max() == 255
    assert alpha_channel(rgba.convert("RGB")) is None


def test_worker_processes_decode_opacity_as_this_process_does(tmp_path):
    paths = []
    for seed in range(5):
        paths.append(str(tmp_path / f"s{seed}.png"))
        Image.fromarray(_sprite(seed, seed % 2 == 0), "RGBA").save(paths[-1])
    paths.append(str(tmp_path / "missing.png"))
    inline = [d for chunk in iter_decoded(paths, 32, chunk=2, workers=0, alpha=True) for d in chunk]
    pooled = [d for chunk in iter_decoded(paths, 32, chunk=2, workers=2, alpha=True) for d in chunk]
    assert [d.error is None for d in inline] == [True] * 5 + [False]
    for a, b in zip(inline[:5], pooled[:5]):
        assert a.pixels.shape == (32, 32, 4) and np.array_equal(a.pixels, b.pixels)
    assert pooled[5].error == inline[5].error == "file not found"


def _model(tmp_path, **fusion):
    info = ModelInfo(name="sil", config=ModelConfig(input_size=32), embedding="projection", **fusion)
    return save_model(tmp_path / "sil.safetensors", build_model(info.config, seed=5), info)


def test_a_model_that_fuses_silhouettes_reads_opacity_and_takes_the_newest_format(tmp_path):
    from safetensors import safe_open

    path = _model(tmp_path, colour_weight=0.2, silhouette_weight=0.3)
    loaded = load_model_file(path)
    assert loaded.info.silhouette_weight == 0.3 and loaded.info.reads_alpha
    with safe_open(str(path), framework="pt") as fh:
        version = json.loads(fh.metadata()[modelfile.META_KEY])["format_version"]
    assert version == modelfile.SILHOUETTE_FORMAT_VERSION, "older programs refuse it instead of ignoring the weight"
    assert modelfile.vector_dim(loaded.info) == 128 + 12 * 4 * 4 + SILHOUETTE_DIM
    kept = SearchVector.of_model(loaded.info, None).model_info("tuned", loaded.info.config)
    assert kept.silhouette_weight == 0.3, "a fine-tune keeps the base's silhouettes"
    with pytest.raises(ValueError, match="must leave the network some weight"):
        ModelInfo(name="x", pattern_weight=0.6, silhouette_weight=0.4)


def test_the_app_path_reads_a_cut_outs_opacity_and_a_flattened_copys_colours(tmp_path):
    soft, hard = _sprite(5, True), _sprite(5, False)
    Image.fromarray(soft, "RGBA").save(tmp_path / "soft.png")
    Image.fromarray(_composited(soft)[..., :3], "RGB").save(tmp_path / "soft-flat.png")
    Image.fromarray(hard, "RGBA").save(tmp_path / "hard.png")
    paths = [str(tmp_path / name) for name in ("soft.png", "soft-flat.png", "hard.png")]
    fused = Embedder(load_model_file(_model(tmp_path, colour_weight=0.2, silhouette_weight=0.3)), device="cpu")
    raw = next(fused.embed_chunks(paths, workers=0)).raw
    assert np.allclose(raw[0, :-SILHOUETTE_DIM], raw[1, :-SILHOUETTE_DIM], atol=1e-5), "same colours, same network"
    silhouettes = raw[:, -SILHOUETTE_DIM:]
    assert not np.allclose(silhouettes[0], silhouettes[1]), "one from its alpha channel, one estimated"
    assert _similarity(silhouettes[1], silhouettes[0]) > _similarity(silhouettes[1], silhouettes[2])
    vectors, errors = fused.embed_paths(paths, workers=1)
    assert not errors and np.allclose(vectors, fused.finish(raw), atol=1e-6), "worker processes decode opacity too"


@pytest.fixture
def edge_styles(tmp_path):
    """Two ways of cutting sprites out (hard pixel edges, feathered edges), each on the same six flat-coloured
    shapes: by colour and shape a sprite's nearest is itself in the other style."""
    rows = []
    for style, soft in (("hard", False), ("feathered", True)):
        for seed in range(6):
            path = tmp_path / f"{style}-{seed}.png"
            Image.fromarray(_sprite(seed, soft), "RGBA").save(path)
            rows.append(Sample(str(path), style, source="generated", content=f"shape{seed}"))
    return write_manifest(tmp_path / "edges.csv", rows)


def test_eval_with_silhouettes_finds_the_cut_out_style_that_colour_misses(edge_styles, tmp_path):
    info = ModelInfo(name="tiny", config=ModelConfig(input_size=32), embedding="projection")
    tiny = save_model(tmp_path / "tiny.safetensors", build_model(info.config, seed=5), info)
    reports = {}
    for name, fusion in (("colour", ["--colour-weight", "0.9"]), ("silhouette", ["--silhouette-weight", "0.9"])):
        reports[name] = tmp_path / f"{name}.json"
        assert main(["eval", "--data", str(edge_styles), "--split", "all", "--model", str(tiny), "--workers", "0",
                     *fusion, "--report", str(reports[name])]) == 0
    colour, silhouette = (json.loads(reports[k].read_text())["metrics"] for k in ("colour", "silhouette"))
    assert silhouette["P@1"] == 1.0 and colour["P@1"] < 0.5, "colour finds the same shape in the other style"
    assert silhouette["mAP"] > colour["mAP"] + 0.2
