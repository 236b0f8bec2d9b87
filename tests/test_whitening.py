"""Whitening of search vectors: the fit, the model file that carries it, the embedder and export that use it."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from core import modelfile
from core.embedder import Embedder
from core.errors import ModelFileError
from core.model import ModelConfig, build_model
from core.modelfile import (WHITENED_FORMAT_VERSION, ModelInfo, load_model_file, save_model, vector_dim,
                            vector_layout)
from core.whitening import Whitening
from tests.test_fusion import line_styles, tiny_model  # noqa: F401 (fixtures)
from trainer.cli import main
from trainer.manifest import read_manifest


def _anisotropic(n=4000, dim=6, seed=0):
    rng = np.random.default_rng(seed)
    mixing = rng.normal(size=(dim, dim)) * np.array([10.0, 3.0, 1.0, 0.3, 0.1, 0.03])[:, None]
    return rng.normal(size=(n, dim)) @ mixing + 5.0


def test_full_whitening_gives_unit_covariance_and_power_zero_only_centres():
    x = _anisotropic()
    full = Whitening.fit(x, power=1.0, shrink=0.0)
    white = (x - full.mean) @ full.matrix
    assert np.allclose(np.cov(white.T, bias=True), np.eye(6), atol=1e-3)
    centring = Whitening.fit(x, power=0.0, shrink=0.3)
    # A rotation onto the principal directions: lengths and angles, so every cosine, stay as they were.
    assert np.allclose(centring.matrix @ centring.matrix.T, np.eye(6), atol=1e-6)
    assert np.allclose(centring.mean, x.mean(0), atol=1e-4)


def test_cosines_are_those_of_the_symmetric_form_older_files_hold():
    x = _anisotropic()
    w = Whitening.fit(x, power=0.5, shrink=0.4)
    symmetric = Whitening(mean=w.mean, matrix=w.matrix @ np.linalg.qr(w.matrix)[0].T)  # any rotation back
    queries = _anisotropic(n=20, seed=3)
    assert np.allclose(w.apply(queries) @ w.apply(x[:50]).T, symmetric.apply(queries) @ symmetric.apply(x[:50]).T,
                       atol=1e-5)


def test_a_reduced_whitening_keeps_the_strongest_directions():
    x = _anisotropic()
    full = Whitening.fit(x, power=0.0, shrink=0.0)
    reduced = Whitening.fit(x, power=0.0, shrink=0.0, dims=2)
    assert (reduced.dim, reduced.out_dim, full.out_dim) == (6, 2, 6)
    spread = np.var((x - full.mean) @ full.matrix, axis=0)
    assert np.all(np.diff(spread) <= 1e-9), "strongest first"
    kept = np.var((x - reduced.mean) @ reduced.matrix, axis=0)
    assert np.allclose(kept, spread[:2], rtol=1e-4)
    assert reduced.apply(x[:5]).shape == (5, 2)
    # Two of six directions hold nearly all of this spread (scales 10 and 3 of the mixing).
    assert kept.sum() > 0.95 * spread.sum()


def test_shrinking_keeps_weak_directions_from_being_blown_up():
    x = _anisotropic()
    spreads = []
    for shrink in (0.0, 0.5, 0.9):
        w = Whitening.fit(x, power=1.0, shrink=shrink)
        spreads.append(np.linalg.eigvalsh(np.cov(((x - w.mean) @ w.matrix).T, bias=True)))
    # Without shrinking every direction ends at variance 1; with it the weakest stay well below the strongest.
    ratios = [s.max() / s.min() for s in spreads]
    assert ratios[0] == pytest.approx(1.0, abs=1e-2)
    assert 1.5 < ratios[1] < ratios[2]


def test_applied_vectors_are_unit_length_and_finite():
    w = Whitening.fit(_anisotropic(), power=0.5, shrink=0.8)
    out = w.apply(_anisotropic(n=10, seed=1))
    assert out.dtype == np.float32 and np.allclose(np.linalg.norm(out, axis=1), 1.0, atol=1e-5)


@pytest.mark.parametrize("vectors, power, shrink, match", [
    (np.ones((1, 4)), 0.5, 0.5, "at least two vectors"),
    (np.full((3, 4), np.nan), 0.5, 0.5, "NaN or infinite"),
    (np.ones((3, 4)), 1.5, 0.5, "must lie in"),
    (np.ones((3, 4)), 0.5, -0.1, "must lie in"),
])
def test_a_fit_it_cannot_make_is_refused(vectors, power, shrink, match):
    with pytest.raises(ValueError, match=match):
        Whitening.fit(vectors, power, shrink)


@pytest.mark.parametrize("dims", [0, 7, -1])
def test_a_reduction_to_no_directions_or_more_than_there_are_is_refused(dims):
    with pytest.raises(ValueError, match="keeps 1 to 6 directions"):
        Whitening.fit(_anisotropic(n=50), 0.5, 0.5, dims=dims)


def _fused_info(**changes) -> ModelInfo:
    return ModelInfo(name="tiny", config=ModelConfig(input_size=32), embedding="projection", colour_weight=0.1,
                     colour_bins=(4, 4, 4), texture_weight=0.2, pattern_weight=0.3, cue_size=64, **changes)


def _pixels(n=12, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (n, 64, 64, 3), dtype=np.uint8)


def _whitened_model(tmp_path):
    info = _fused_info()
    net = build_model(info.config, seed=4)
    plain = Embedder(load_model_file(save_model(tmp_path / "plain.safetensors", net, info)), device="cpu")
    vectors = plain.finish(plain.raw_from_pixels(_pixels(40)))
    whitening = Whitening.fit(vectors, 0.5, 0.5, vector_layout(info))
    return save_model(tmp_path / "white.safetensors", net, info, whitening=whitening), plain, whitening


def test_a_whitened_model_file_round_trips_and_its_embedder_whitens(tmp_path):
    path, plain, whitening = _whitened_model(tmp_path)
    model = load_model_file(path)
    assert model.whitening.dim == vector_dim(model.info) == plain.dim
    assert np.allclose(model.whitening.matrix, whitening.matrix, atol=2e-3 * np.abs(whitening.matrix).max())
    embedder = Embedder(model, device="cpu")
    raw = embedder.raw_from_pixels(_pixels(seed=1))
    assert np.allclose(raw, plain.raw_from_pixels(_pixels(seed=1)))
    finished, unwhitened = embedder.finish(raw), plain.finish(raw)
    assert np.allclose(finished, model.whitening.apply(unwhitened), atol=1e-5)
    assert not np.allclose(finished, unwhitened, atol=1e-2)
    from safetensors import safe_open
    with safe_open(str(path), framework="pt") as fh:
        assert f'"format_version": {WHITENED_FORMAT_VERSION}' in fh.metadata()["aladin"]


def test_the_whitening_stays_off_vectors_it_was_not_fitted_on(tmp_path):
    path, _, _ = _whitened_model(tmp_path)
    model = load_model_file(path)
    assert Embedder(model, device="cpu").whitening is not None
    assert Embedder(model, device="cpu", which="style").whitening is None
    reweighted = replace(model, info=replace(model.info, colour_weight=0.2))
    assert Embedder(reweighted, device="cpu").whitening is None
    with pytest.raises(ValueError, match="fitted on other vectors"):
        save_model(tmp_path / "bad.safetensors", model.net, reweighted.info, whitening=model.whitening)


@pytest.mark.parametrize("change, match", [
    (lambda t: t.pop("whiten.matrix"), "incomplete whitening"),
    (lambda t: t.update({"whiten.mean": t["whiten.mean"][:-1]}), "does not fit"),
    (lambda t: t.update({"whiten.matrix": torch.cat([t["whiten.matrix"]] * 2, 1)}), "does not fit"),
    (lambda t: t.update({"whiten.matrix": t["whiten.matrix"][:, :0]}), "does not fit"),
    (lambda t: t.update({"whiten.matrix": t["whiten.matrix"][0]}), "does not fit"),
    (lambda t: t.update({"whiten.matrix": torch.full_like(t["whiten.matrix"], float("nan"))}), "NaN or infinite"),
])
def test_a_damaged_whitening_is_refused_on_load(tmp_path, change, match):
    path, _, _ = _whitened_model(tmp_path)
    from safetensors import safe_open
    with safe_open(str(path), framework="pt") as fh:
        meta = fh.metadata()
    tensors = load_file(str(path))
    change(tensors)
    save_file(tensors, str(path), metadata=meta)
    with pytest.raises(ModelFileError, match=match):
        load_model_file(path)


def test_export_fits_a_whitening_without_reserved_images_and_drops_it_when_the_vectors_change(
        tiny_model, line_styles, tmp_path, capsys):  # noqa: F811 (fixtures)
    rows = read_manifest(line_styles)
    reserved = tmp_path / "share" / "icons" / "hicolor" / "a.png"
    reserved.parent.mkdir(parents=True)
    reserved.write_bytes(open(rows[0].path, "rb").read())
    fit_on = tmp_path / "fit.csv"
    fit_on.write_text("path,group\n" + "".join(f"{r.path},{r.group}\n" for r in rows) + f"{reserved},x\n")
    white = tmp_path / "white.safetensors"
    assert main(["export", str(tiny_model), str(white), "--whiten", "0.5,0.8", "--fit-on", str(fit_on),
                 "--workers", "0"]) == 0
    model = load_model_file(white)
    assert model.whitening is not None
    assert model.info.notes["whitening"] == {"power": 0.5, "shrink": 0.8, "dims": Embedder(model).raw_dim,
                                             "images": len(rows), "unreadable": 0, "reserved_left_out": 1}
    renamed, reweighted = tmp_path / "renamed.safetensors", tmp_path / "reweighted.safetensors"
    assert main(["export", str(white), str(renamed), "--name", "other"]) == 0
    assert load_model_file(renamed).whitening is not None
    assert main(["export", str(white), str(reweighted), "--colour-weight", "0.3"]) == 0
    assert load_model_file(reweighted).whitening is None and "whitening" not in load_model_file(reweighted).info.notes
    assert main(["export", str(tiny_model), str(tmp_path / "x.safetensors"), "--whiten", "0.5,0.8"]) == 2
    assert "--whiten needs --fit-on" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["export", str(tiny_model), str(tmp_path / "y.safetensors"), "--whiten", "2,0.5"])
    assert "must each lie in [0, 1]" in capsys.readouterr().err


def test_export_can_keep_only_the_strongest_directions_and_search_uses_the_shorter_vectors(
        tiny_model, line_styles, tmp_path, capsys):  # noqa: F811 (fixtures)
    short = tmp_path / "short.safetensors"
    assert main(["export", str(tiny_model), str(short), "--whiten", "0.5,0.8,16", "--fit-on", str(line_styles),
                 "--workers", "0"]) == 0
    model = load_model_file(short)
    embedder = Embedder(model, device="cpu")
    assert (model.whitening.out_dim, embedder.dim, model.info.notes["whitening"]["dims"]) == (16, 16, 16)
    assert embedder.raw_dim == model.whitening.dim > 16, "a library still stores the whole raw vector"
    assert modelfile.format_version(model.info, model.whitening) == modelfile.CONTRAST_FORMAT_VERSION
    vectors, errors = embedder.embed_paths([r.path for r in read_manifest(line_styles)], workers=0)
    assert not errors and vectors.shape[1] == 16 and np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert main(["export", str(tiny_model), str(tmp_path / "x.safetensors"), "--whiten", "0.5,0.8,100000",
                 "--fit-on", str(line_styles), "--workers", "0"]) == 2
    assert "keeps 1 to" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["export", str(tiny_model), str(tmp_path / "y.safetensors"), "--whiten", "0.5,0.8,0"])
    assert "at least one direction" in capsys.readouterr().err


def test_eval_reports_whether_the_model_file_whitened_the_vectors(tiny_model, line_styles, tmp_path):  # noqa: F811
    white = tmp_path / "white.safetensors"
    assert main(["export", str(tiny_model), str(white), "--whiten", "0.5,0.8", "--fit-on", str(line_styles),
                 "--workers", "0"]) == 0
    common = ["eval", "--data", str(line_styles), "--split", "all", "--model", str(white), "--workers", "0"]
    assert main(common + ["--report", str(tmp_path / "white.json")]) == 0
    assert main(common + ["--colour-weight", "0.3", "--report", str(tmp_path / "reweighted.json")]) == 0
    white_report, reweighted = (json.loads((tmp_path / f"{n}.json").read_text()) for n in ("white", "reweighted"))
    assert white_report["model"]["whitening"] and white_report["standardisation"].endswith("whitened by the model file")
    assert not reweighted["model"]["whitening"] and "whitened" not in reweighted["standardisation"]
    assert white_report["metrics"] != reweighted["metrics"]
