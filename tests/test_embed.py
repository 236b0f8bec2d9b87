"""The embedding pipeline and the public ``aladin embed`` contract."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from core.cli import main
from core.embedder import Embedder, resolve_device
from core.errors import DeviceError
from core.model import ModelConfig, build_model
from core.modelfile import ModelInfo, PostProcess, load_model_file, save_model
from library_fixtures import assert_known_error
from tests.conftest import make_image


@pytest.fixture
def model_path(tmp_path):
    info = ModelInfo(name="tiny", config=ModelConfig(input_size=32), training_data="test")
    return save_model(tmp_path / "tiny.safetensors", build_model(info.config, seed=5), info)


@pytest.fixture
def image_paths(tmp_path):
    folder = tmp_path / "imgs"
    folder.mkdir()
    return [str(make_image(folder / f"{i}.png", size=(40 + i * 7, 50), seed=i)) for i in range(7)]


def test_same_image_same_vector_and_batch_size_does_not_matter(model_path, image_paths):
    emb = Embedder(load_model_file(model_path), device="cpu")
    a, _ = emb.embed_paths(image_paths, batch_size=1, workers=0)
    b, _ = emb.embed_paths(image_paths, batch_size=5, workers=0)
    c, _ = emb.embed_paths(image_paths[::-1], batch_size=3, workers=0)
    assert np.allclose(a, b, atol=1e-5)
    assert np.allclose(a, c[::-1], atol=1e-5)
    assert np.allclose(np.linalg.norm(a, axis=1), 1, atol=1e-5)
    assert not np.allclose(a[0], a[1])


def test_worker_processes_give_the_same_vectors(model_path, image_paths):
    emb = Embedder(load_model_file(model_path), device="cpu")
    inline, _ = emb.embed_paths(image_paths, batch_size=2, workers=0)
    pooled, _ = emb.embed_paths(image_paths, batch_size=2, workers=2)
    assert np.allclose(inline, pooled, atol=1e-6)


def test_two_network_lanes_keep_the_order_and_the_failures(model_path, image_paths, tmp_path, monkeypatch):
    import os
    import threading
    import time

    monkeypatch.setattr(os, "cpu_count", lambda: 2)  # lanes are for machines with a second core
    broken = tmp_path / "imgs" / "broken.png"
    broken.write_bytes(b"not an image")
    paths = image_paths[:3] + [str(broken)] + image_paths[3:]
    emb = Embedder(load_model_file(model_path), device="cpu")
    inline, inline_errors = emb.embed_paths(paths, batch_size=1, workers=0)
    lanes = set()
    run = emb.raw_from_pixels

    def slow_network(pixels):  # slower than decoding a tiny image: the next chunk arrives while one runs
        lanes.add(threading.current_thread().name)
        time.sleep(0.05)
        return run(pixels)

    monkeypatch.setattr(emb, "raw_from_pixels", slow_network)
    laned, errors = emb.embed_paths(paths, batch_size=1, workers=1)
    assert len(lanes) == 2  # both lanes took chunks
    assert np.allclose(inline, laned, atol=1e-6) and not laned[3].any()
    assert list(errors) == list(inline_errors) == [str(broken)]


def test_projection_and_postprocess(model_path, image_paths):
    loaded = load_model_file(model_path)
    proj, _ = Embedder(loaded, device="cpu", which="projection").embed_paths(image_paths, workers=0)
    assert proj.shape == (7, 128)
    emb = Embedder(loaded, device="cpu")
    raw = next(emb.embed_chunks(image_paths, batch_size=7, workers=0)).raw
    post = PostProcess.fit(raw)
    finished = emb.finish(raw, post)
    expected = post.apply(raw)
    assert np.allclose(finished, expected / np.linalg.norm(expected, axis=1, keepdims=True), atol=1e-5)


def test_device_resolution():
    assert resolve_device("cpu").type == "cpu"
    assert resolve_device("auto").type in ("cpu", "cuda")
    with pytest.raises(DeviceError):
        resolve_device("tpu")


def write_list(tmp_path, paths):
    listing = tmp_path / "list.txt"
    listing.write_text("\n".join(paths) + "\n", encoding="utf-8")
    return listing


def test_cli_writes_rows_in_input_order(tmp_path, model_path, image_paths):
    listing = write_list(tmp_path, image_paths + [image_paths[2]])
    out = tmp_path / "out.npy"
    assert main(["embed", "--paths-from", str(listing), "--out", str(out), "--model", str(model_path),
                 "--batch-size", "3", "--workers", "0"]) == 0
    vectors = np.load(out)
    assert vectors.shape == (8, 896) and vectors.dtype == np.float32
    assert np.allclose(vectors[2], vectors[7])
    single, _ = Embedder(load_model_file(model_path), device="cpu").embed_paths([image_paths[4]], workers=0)
    assert np.allclose(vectors[4], single[0], atol=1e-5)


def test_cli_bad_image_fails_without_partial_file(tmp_path, model_path, image_paths, capsys):
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"\xff\xd8\xff garbage")
    listing = write_list(tmp_path, image_paths[:2] + [str(bad), str(tmp_path / "missing.png")])
    out = tmp_path / "out.npy"
    code = main(["embed", "--paths-from", str(listing), "--out", str(out), "--model", str(model_path), "--workers", "0"])
    err = capsys.readouterr().err
    assert code == 1 and not out.exists()
    assert f"cannot read {bad}" in err and "file not found" in err


def test_cli_skip_bad_writes_zero_rows_and_sidecar(tmp_path, model_path, image_paths):
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"nope")
    listing = write_list(tmp_path, [image_paths[0], str(bad), image_paths[1]])
    out = tmp_path / "out.npy"
    assert main(["embed", "--paths-from", str(listing), "--out", str(out), "--model", str(model_path),
                 "--workers", "0", "--skip-bad"]) == 0
    vectors = np.load(out)
    assert np.count_nonzero(vectors[1]) == 0 and np.count_nonzero(vectors[0]) > 0
    sidecar = json.loads(out.with_suffix(".bad.json").read_text())
    assert sidecar["bad"] == [{"line": 2, "path": str(bad), "reason": "not a recognised image format"}]


def test_cli_subprocess_warns_for_untrained_and_refuses_without_model(tmp_path, image_paths, monkeypatch):
    listing = write_list(tmp_path, image_paths[:2])
    out = tmp_path / "out.npy"
    run = subprocess.run([sys.executable, "-m", "app.launcher", "embed", "--paths-from", str(listing), "--out", str(out),
                          "--model", "untrained-s", "--workers", "0"], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    assert "untrained" in run.stderr and np.load(out).shape == (2, 896)
    damaged = tmp_path / "damaged.safetensors"
    damaged.write_bytes(b"junk")
    run = subprocess.run([sys.executable, "-m", "app.launcher", "embed", "--paths-from", str(listing), "--out",
                          str(tmp_path / "x.npy"), "--model", str(damaged)], capture_output=True, text=True, timeout=300)
    assert run.returncode == 2 and "damaged" in run.stderr and run.stderr.count("\n") == 1


def test_colour_fusion_weights_the_cosine_score(tmp_path, image_paths):
    from core.colour import colour_histogram, hellinger

    info = ModelInfo(name="fused", config=ModelConfig(input_size=32), colour_weight=0.3)
    path = save_model(tmp_path / "fused.safetensors", build_model(info.config, seed=5), info)
    fused = Embedder(load_model_file(path), device="cpu")
    plain = Embedder(load_model_file(path), device="cpu")
    plain.model.info.colour_weight = 0.0
    assert fused.dim == 896 + 192
    f, _ = fused.embed_paths(image_paths[:3], workers=0)
    p, _ = plain.embed_paths(image_paths[:3], workers=0)
    pixels = np.stack([next(iter(fused.embed_chunks([q], workers=0))).raw[0, 896:] for q in image_paths[:3]])
    c = hellinger(pixels)
    assert np.allclose(np.linalg.norm(f, axis=1), 1, atol=1e-5)
    assert np.allclose(f @ f.T, 0.7 * (p @ p.T) + 0.3 * (c @ c.T), atol=1e-5)
    from core.images import load_array
    direct = colour_histogram(load_array(image_paths[0], 32)[0][None])
    assert np.allclose(pixels[0], direct[0])


def test_decode_workers_leave_ctrl_c_to_the_parent(image_paths):
    import os
    import signal
    from concurrent.futures import ProcessPoolExecutor
    import multiprocessing

    from core.decode import start_worker

    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(1, mp_context=ctx, initializer=start_worker) as pool:
        pid = pool.submit(os.getpid).result()
        os.kill(pid, signal.SIGINT)
        assert pool.submit(os.getpid).result() == pid, "the worker must survive Ctrl-C"


def test_without_model_the_bundled_trained_model_is_used(tmp_path, image_paths, capsys):
    from core.modelfile import DEFAULT_MODEL, load_model_file

    bundled = load_model_file(DEFAULT_MODEL)
    assert bundled.info.trained and bundled.info.training_data
    out = tmp_path / "out.npy"
    assert main(["embed", "--paths-from", str(write_list(tmp_path, image_paths[:3])), "--out", str(out),
                 "--workers", "0"]) == 0
    rows = np.load(out)
    assert rows.shape == (3, Embedder(bundled, "cpu").dim)
    assert np.allclose(np.linalg.norm(rows, axis=1), 1, atol=1e-5)
    assert "untrained" not in capsys.readouterr().err


def test_cli_never_writes_non_finite_rows(tmp_path, model_path, image_paths, monkeypatch, capsys):
    real = Embedder.raw_from_pixels

    def overflowing(self, pixels):  # as float16 on a GPU can overflow on one image
        raw = real(self, pixels)
        raw[0, 5] = np.inf
        return raw

    monkeypatch.setattr(Embedder, "raw_from_pixels", overflowing)
    listing = write_list(tmp_path, image_paths[:3])
    out = tmp_path / "out.npy"
    argv = ["embed", "--paths-from", str(listing), "--out", str(out), "--model", str(model_path), "--workers", "0",
            "--batch-size", "3"]
    assert main(argv) == 1 and not out.exists()
    assert f"cannot read {image_paths[0]}: the model gave NaN or infinite values" in capsys.readouterr().err
    assert main(argv + ["--skip-bad"]) == 0
    rows = np.load(out)
    assert np.isfinite(rows).all() and not rows[0].any() and rows[1:].any(axis=1).all()


@pytest.mark.parametrize("case, words", [
    ("empty list", "names no images; nothing to embed"),
    ("out under a file", "file.txt is a file, not a folder"),
    ("negative workers", "--workers must be 0 or more"),
])
def test_cli_edges_are_one_line_errors(tmp_path, model_path, image_paths, capsys, case, words):
    listing = write_list(tmp_path, [] if case == "empty list" else image_paths[:2])
    (tmp_path / "file.txt").write_text("in the way")
    out = tmp_path / "file.txt" / "sub" / "out.npy" if case == "out under a file" else tmp_path / "out.npy"
    workers = "-1" if case == "negative workers" else "0"
    code = main(["embed", "--paths-from", str(listing), "--out", str(out), "--model", str(model_path),
                 "--workers", workers])
    assert_known_error(code, capsys.readouterr().err, words)
    assert not out.exists()


def test_descriptor_fusion_decodes_at_the_cue_size_and_weights_four_parts(tmp_path, image_paths):
    """Colour, texture and patterns come from the larger decode; the network sees those pixels at its own size."""
    import torch
    import torch.nn.functional as F

    from core.colour import hellinger
    from core.images import load_array
    from core.texture import PATTERN_DIM, TEXTURE_DIM, pattern_histograms, texture_histograms, texture_vector

    info = ModelInfo(name="fused", config=ModelConfig(input_size=32), embedding="projection",
                     colour_weight=0.2, texture_weight=0.4, pattern_weight=0.1, cue_size=64)
    path = save_model(tmp_path / "fused.safetensors", build_model(info.config, seed=5), info)
    emb = Embedder(load_model_file(path), device="cpu")
    assert (emb.size, emb.net_size, emb.dim) == (64, 32, 128 + 192 + TEXTURE_DIM + PATTERN_DIM)
    vectors, errors = emb.embed_paths(image_paths[:4], workers=0)
    assert not errors and np.allclose(np.linalg.norm(vectors, axis=1), 1, atol=1e-5)
    pixels = np.stack([load_array(p, 64)[0] for p in image_paths[:4]])
    raw = emb.raw_from_pixels(pixels)
    texture_end = 128 + 192 + TEXTURE_DIM
    assert np.allclose(raw[:, 128 + 192:texture_end], texture_histograms(pixels))
    assert np.allclose(raw[:, texture_end:], pattern_histograms(pixels))
    with torch.inference_mode():
        x = (torch.from_numpy(pixels).permute(0, 3, 1, 2).float() / 255 - emb._mean) / emb._std
        small = F.interpolate(x, size=(32, 32), mode="bilinear", antialias=True, align_corners=False)
        network = F.normalize(emb.net.head(emb.net.style_code(small)), dim=1).numpy()
    colour, texture = hellinger(raw[:, 128:320]), texture_vector(raw[:, 320:texture_end])
    pattern = hellinger(raw[:, texture_end:])
    expected = (0.3 * (network @ network.T) + 0.2 * (colour @ colour.T) + 0.4 * (texture @ texture.T)
                + 0.1 * (pattern @ pattern.T))
    assert np.allclose(vectors @ vectors.T, expected, atol=1e-4)
