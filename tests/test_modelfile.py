"""Model files: round trip, built-in baselines, and clear errors for wrong or damaged files."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from core import modelfile
from core.errors import ModelFileError, NoTrainedModelError
from core.model import ModelConfig, build_model
from core.modelfile import (ModelInfo, PostProcess, builtin_model, distinct_names, load_model, load_model_file,
                            save_model)


def small_model(tmp_path, variant="s", post=True):
    info = ModelInfo(name="tiny", config=ModelConfig(variant=variant, input_size=32), training_data="test")
    net = build_model(info.config, seed=3)
    pp = PostProcess(mean=np.arange(896, dtype=np.float32), scale=np.full(896, 2.0, np.float32)) if post else None
    return save_model(tmp_path / "tiny.safetensors", net, info, pp), net


def test_round_trip_keeps_weights_metadata_and_postprocess(tmp_path):
    path, net = small_model(tmp_path)
    loaded = load_model_file(path)
    assert loaded.info.name == "tiny" and loaded.info.config.input_size == 32 and loaded.info.trained
    for (k, a), (_, b) in zip(net.state_dict().items(), loaded.net.state_dict().items()):
        assert torch.equal(a, b), k
    assert np.array_equal(loaded.post.mean, np.arange(896, dtype=np.float32))
    assert len(loaded.checksum) == 64


def test_builtin_baselines_are_seeded_and_marked_untrained(caplog):
    a, b = load_model("untrained-s"), builtin_model("untrained-s")
    assert not a.info.trained and a.info.name == "untrained-s"
    assert all(torch.equal(x, y) for x, y in zip(a.net.parameters(), b.net.parameters()))
    assert "untrained" in caplog.text


def test_no_default_model_says_so(monkeypatch, tmp_path):
    monkeypatch.setattr(modelfile, "DEFAULT_MODEL", tmp_path / "absent.safetensors")
    with pytest.raises(NoTrainedModelError, match="no trained model is installed"):
        load_model(None)


def _write_with_meta(path, meta, tensors=None):
    save_file(tensors or {"x": torch.zeros(1)}, str(path), metadata=meta)
    return path


@pytest.mark.parametrize("case,match", [
    ("missing", "not found"),
    ("garbage", "damaged or unreadable"),
    ("truncated", "damaged or unreadable"),
    ("no_meta", "not an ALADIN model file"),
    ("bad_json", "damaged model metadata"),
    ("other_format", "not an ALADIN model file"),
    ("future_version", "not supported"),
    ("bad_variant", "invalid model metadata"),
    ("wrong_weights", "do not match"),
])
def test_loader_rejects_bad_files(tmp_path, case, match):
    good, _ = small_model(tmp_path)
    path = tmp_path / f"{case}.safetensors"
    meta = {"format": "aladin-model", "format_version": 1, "name": "x", "variant": "s", "input_size": 32}
    if case == "garbage":
        path.write_bytes(b"\x00\x01garbage" * 100)
    elif case == "truncated":
        path.write_bytes(good.read_bytes()[:5000])
    elif case == "no_meta":
        save_file({"x": torch.zeros(1)}, str(path))
    elif case == "bad_json":
        _write_with_meta(path, {"aladin": "{not json"})
    elif case == "other_format":
        _write_with_meta(path, {"aladin": json.dumps({**meta, "format": "something-else"})})
    elif case == "future_version":
        _write_with_meta(path, {"aladin": json.dumps({**meta, "format_version": 99})})
    elif case == "bad_variant":
        _write_with_meta(path, {"aladin": json.dumps({**meta, "variant": "xl"})})
    elif case == "wrong_weights":
        net = build_model(ModelConfig(variant="s", input_size=32))
        tensors = {f"net.{k}": v for k, v in net.state_dict().items()}
        _write_with_meta(path, {"aladin": json.dumps({**meta, "variant": "l"})}, tensors)
    with pytest.raises(ModelFileError, match=match):
        load_model_file(path)


def test_postprocess_fit_standardises():
    rng = np.random.default_rng(0)
    raw = rng.normal(5, 3, (200, 8)) * np.arange(1, 9)
    out = PostProcess.fit(raw).apply(raw)
    assert np.allclose(out.mean(0), 0, atol=1e-4) and np.allclose(out.std(0), 1, atol=1e-3)


def test_search_only_file_is_small_and_searches_the_same(tmp_path):
    info = ModelInfo(name="lean", config=ModelConfig(input_size=32), search_only=True)
    net = build_model(info.config, seed=3)
    lean = save_model(tmp_path / "lean.safetensors", net, info)
    full, _ = small_model(tmp_path, post=False)
    assert lean.stat().st_size * 2 < full.stat().st_size
    loaded = load_model_file(lean).net
    x = torch.rand(2, 3, 32, 32)
    with torch.inference_mode():
        assert torch.equal(loaded.style_code(x), net.eval().style_code(x))
        assert torch.equal(loaded.head(loaded.style_code(x)), net.head(net.style_code(x)))


def test_search_only_file_missing_style_weights_is_rejected(tmp_path):
    path = tmp_path / "gap.safetensors"
    info = ModelInfo(name="gap", config=ModelConfig(input_size=32), search_only=True)
    weights = {f"net.{k}": v for k, v in build_model(info.config, seed=3).state_dict().items()
               if k.startswith("head.")}
    meta = {"format": modelfile.FORMAT, "format_version": modelfile.FORMAT_VERSION, "name": "gap",
            "input_size": 32, "search_only": True}
    save_file(weights, str(path), metadata={modelfile.META_KEY: json.dumps(meta)})
    with pytest.raises(ModelFileError, match="do not match"):
        load_model_file(path)


def test_metadata_record_stays_flat_so_older_and_newer_versions_read_it(tmp_path):
    from safetensors import safe_open

    path, _ = small_model(tmp_path)
    with safe_open(str(path), framework="pt") as fh:
        record = json.loads(fh.metadata()[modelfile.META_KEY])
    assert record["variant"] == "s" and record["input_size"] == 32 and record["mean"] == [0.485, 0.456, 0.406]
    assert "config" not in record and "style_channels" not in record
    bundled = load_model_file(modelfile.DEFAULT_MODEL).info  # the flat record of a file the app ships
    assert bundled.config == ModelConfig(variant="s", input_size=64) and bundled.colour_bins == (8, 8, 8)


def _with_record(tmp_path, changes: dict):
    """A real model file whose metadata record has ``changes`` applied: only the metadata is wrong."""
    from safetensors import safe_open
    from safetensors.torch import load_file

    good, _ = small_model(tmp_path)
    with safe_open(str(good), framework="pt") as fh:
        record = {**json.loads(fh.metadata()[modelfile.META_KEY]), **changes}
    return _write_with_meta(tmp_path / "bad.safetensors", {modelfile.META_KEY: json.dumps(record)}, load_file(good))


@pytest.mark.parametrize("changes, match", [
    ({"input_size": 100_000}, "input size must be a multiple of 8 from 32 to 1024 px, got 100000"),
    ({"input_size": 1032}, "input size must be"),
    ({"input_size": True}, "input size must be"),
    ({"std": [0.2, 0.0, 0.2]}, "pixel std must be positive"),
    ({"mean": [0.5, 0.5]}, "pixel mean must be three finite numbers"),
    ({"colour_bins": [100_000, 100_000, 100_000]}, "colour bins must be three whole numbers from 1 to 64"),
    ({"colour_bins": [64, 64, 2]}, "with a product of at most 4096"),
    ({"colour_bins": 12}, "colour bins must be"),
    ({"colour_weight": 1.5}, "colour weight must be a number in [0, 1)"),
    ({"colour_weight": "0.3"}, "colour weight must be"),
    ({"colour_weight": float("nan")}, "colour weight must be"),
    ({"embedding": "pixels"}, "embedding must be one of"),
    ({"texture_weight": -0.1}, "texture weight must be a number in [0, 1)"),
    ({"texture_weight": 0.5, "colour_weight": 0.5}, "must leave the network some weight"),
    ({"cue_size": 16}, "cue size must be 0 or from 32 to 1024 px"),
    ({"cue_size": 128.0}, "cue size must be"),
])
def test_metadata_out_of_range_is_refused_on_load(tmp_path, changes, match):
    path = _with_record(tmp_path, changes)
    with pytest.raises(ModelFileError, match="invalid model metadata") as refused:
        load_model_file(path)
    assert match in str(refused.value) and str(path) in str(refused.value)


def test_a_file_from_before_the_texture_descriptor_reads_as_no_texture(tmp_path):
    from safetensors import safe_open
    from safetensors.torch import load_file

    path = _with_record(tmp_path, {})
    with safe_open(str(path), framework="pt") as fh:
        record = json.loads(fh.metadata()[modelfile.META_KEY])
    for key in ("texture_weight", "cue_size"):
        record.pop(key)
    old = _write_with_meta(tmp_path / "old.safetensors", {modelfile.META_KEY: json.dumps(record)}, load_file(path))
    info = load_model_file(old).info
    assert (info.texture_weight, info.cue_size, info.decode_size) == (0.0, 0, 32)


def test_only_files_with_newer_descriptors_take_the_newer_format_versions(tmp_path):
    """A program from before the descriptors refuses such a file rather than building other vectors."""
    from safetensors import safe_open

    def version_of(**fusion) -> int:
        info = ModelInfo(name="v", config=ModelConfig(input_size=32), **fusion)
        path = save_model(tmp_path / "v.safetensors", build_model(info.config, seed=1), info)
        assert load_model_file(path).info.pattern_weight == info.pattern_weight  # this version reads both
        with safe_open(str(path), framework="pt") as fh:
            return json.loads(fh.metadata()[modelfile.META_KEY])["format_version"]

    assert version_of() == version_of(colour_weight=0.3) == 1
    assert version_of(texture_weight=0.5) == version_of(pattern_weight=0.2) == version_of(cue_size=64) == 2
    assert version_of(silhouette_weight=0.1) == modelfile.SILHOUETTE_FORMAT_VERSION == 4
    assert version_of(silhouette_weight=0.1, granulometry_weight=0.1) == modelfile.GRANULOMETRY_FORMAT_VERSION == 5
    assert version_of(granulometry_weight=0.1, contrast_weight=0.1) == modelfile.CONTRAST_FORMAT_VERSION == 6
    bundled = load_model_file(modelfile.DEFAULT_MODEL)
    assert modelfile.format_version(bundled.info, bundled.whitening) == modelfile.COOCCURRENCE_FORMAT_VERSION == 7


def test_the_limits_admit_every_real_model():
    from core.colour import DEFAULT_BINS, MAX_BINS, MAX_CHANNEL_BINS, check_bins
    from core.model import MAX_INPUT_SIZE, MIN_INPUT_SIZE, VARIANTS

    for variant in VARIANTS:  # both architectures, from the smallest size to the largest
        assert ModelConfig(variant=variant, input_size=MIN_INPUT_SIZE).input_size == 32
        assert ModelConfig(variant=variant, input_size=MAX_INPUT_SIZE).input_size >= 512
    assert check_bins(list(DEFAULT_BINS)) == (12, 4, 4)
    assert check_bins([MAX_CHANNEL_BINS, MAX_BINS // MAX_CHANNEL_BINS, 1]) == (64, 64, 1)
    assert ModelInfo(name="fused", colour_weight=0.9).colour_weight == 0.9
    assert load_model_file(modelfile.DEFAULT_MODEL).info.trained  # the shipped model passes every check


@pytest.mark.parametrize("weight, value", [
    ("style_encoder.layers.0.0.weight", float("nan")),  # every style code is NaN
    ("head.net.2.bias", float("inf")),  # only projections break: search may still ask for them
])
def test_a_network_that_gives_non_finite_vectors_is_refused(tmp_path, weight, value):
    info = ModelInfo(name="diverged", config=ModelConfig(input_size=32))
    net = build_model(info.config, seed=3)
    with torch.no_grad():
        net.get_parameter(weight).view(-1)[0] = value
    path = save_model(tmp_path / "diverged.safetensors", net, info)
    with pytest.raises(ModelFileError, match="gives NaN or infinite values"):
        load_model_file(path)


@pytest.mark.parametrize("mean, match", [
    (np.full(896, np.nan, np.float32), "NaN or infinite values"),
    (np.zeros(10, np.float32), "do not fit the network's 896-value style code"),
])
def test_unusable_post_processing_statistics_are_refused(tmp_path, mean, match):
    info = ModelInfo(name="tiny", config=ModelConfig(input_size=32))
    post = PostProcess(mean=mean, scale=np.ones_like(mean))
    path = save_model(tmp_path / "post.safetensors", build_model(info.config, seed=3), info, post)
    with pytest.raises(ModelFileError, match=match):
        load_model_file(path)


def test_settings_out_of_range_cannot_be_saved(tmp_path):
    info = ModelInfo(name="tiny", config=ModelConfig(input_size=32))
    info.colour_bins = (1000, 1000, 1000)  # set after construction, as a trainer might
    with pytest.raises(ValueError, match="colour bins"):
        save_model(tmp_path / "never.safetensors", build_model(info.config, seed=3), info)
    assert not (tmp_path / "never.safetensors").exists()


def test_a_model_behind_a_folder_we_may_not_enter_is_one_clear_error(tmp_path, monkeypatch):
    def denied(self):
        raise PermissionError(13, "Permission denied", str(self))

    monkeypatch.setattr(Path, "is_file", denied)
    with pytest.raises(ModelFileError, match="cannot be read \\(Permission denied\\)"):
        load_model_file(tmp_path / "private" / "model.safetensors")


def test_distinct_names_only_add_checksums_where_the_names_are_equal():
    assert distinct_names(("a", "1234"), ("b", "5678")) == ("'a'", "'b'")
    old, new = distinct_names(("default", "47416b8d" + "0" * 56), ("default", "07017c61" + "1" * 56))
    assert (old, new) == ("'default' (checksum 47416b8d)", "'default' (checksum 07017c61)")
    # Checksums sharing a long prefix are shown until they differ (built-ins all start "builtin:").
    old, new = distinct_names(("m", "abcdef0123456789" + "0" * 48), ("m", "abcdef0123456789" + "f" * 48))
    assert (old, new) == ("'m' (checksum abcdef01234567890000)", "'m' (checksum abcdef0123456789ffff)")
    assert distinct_names(("u", "builtin:untrained-s:seed0:v1"), ("u", "builtin:untrained-s:seed0:v2")) == (
        "'u' (checksum builtin:untrained-s:seed0:v1)", "'u' (checksum builtin:untrained-s:seed0:v2)")
