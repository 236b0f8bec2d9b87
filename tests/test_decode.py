"""Decoding workers: content hashes from the bytes they decode, tasks regrouped into the caller's chunks,
and a cheaper resize whose pixels stay those of a plain Lanczos resize within a rounding step or two."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

import core.decode
from core.decode import decode_chunk, iter_decoded
from core.files import content_hash
from core.images import decode, fit_square, load_array
from library_fixtures import style_array, tiny_embedder


@pytest.fixture
def files(tmp_path):
    """Good images of several formats, then a truncated JPEG, a corrupt PNG and a missing path."""
    paths = []
    for i, ext in enumerate(["png", "jpg", "webp", "png"]):
        path = tmp_path / f"{i}.{ext}"
        Image.fromarray(style_array(i, size=(90 + 13 * i, 70))).save(path)
        paths.append(str(path))
    (tmp_path / "trunc.jpg").write_bytes((tmp_path / "1.jpg").read_bytes()[:300])
    (tmp_path / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(200)))
    return paths + [str(tmp_path / "trunc.jpg"), str(tmp_path / "corrupt.png"), str(tmp_path / "gone.png")]


def test_workers_hash_the_bytes_they_decode_like_content_hash(files):
    """Every readable file gets the digest a second read would give, a file that fails to decode too."""
    out = decode_chunk(files, 32, digests=True)
    assert [d.path for d in out] == files
    for d in out[:-1]:
        assert d.digest == content_hash(d.path)
    assert [d.error is None for d in out] == [True] * 4 + [False] * 3
    assert out[-1].digest is None and out[-1].error == "file not found"
    assert all(d.digest is None for d in decode_chunk(files, 32))


def test_decoding_read_bytes_gives_the_pixels_decoding_the_path_gives(files):
    for path in files[:4]:
        with open(path, "rb") as fh:
            data = fh.read()
        from_bytes, size = load_array(path, 32, data)
        from_path, same_size = load_array(path, 32)
        assert size == same_size
        assert np.array_equal(from_bytes, from_path)


def test_a_file_too_large_to_hold_is_hashed_as_a_stream_and_decoded_from_its_path(files, monkeypatch):
    monkeypatch.setattr(core.decode, "READ_LIMIT", 10)
    big = decode_chunk(files, 32, digests=True)
    monkeypatch.setattr(core.decode, "READ_LIMIT", 1 << 30)
    held = decode_chunk(files, 32, digests=True)
    assert [d.digest for d in big] == [d.digest for d in held]
    assert [d.error for d in big] == [d.error for d in held]
    for a, b in zip(big[:4], held[:4]):
        assert np.array_equal(a.pixels, b.pixels)


def test_worker_tasks_are_regrouped_into_the_callers_chunks_in_order(tmp_path):
    """Workers take a few paths at a time; the caller still gets its chunk size, in input order."""
    paths = []
    for i in range(21):
        path = tmp_path / f"{i:02d}.png"
        Image.fromarray(style_array(i % 3, i, size=(40, 30))).save(path)
        paths.append(str(path))
    paths.insert(9, str(tmp_path / "missing.png"))
    pooled = list(iter_decoded(paths, 16, chunk=10, workers=2, digests=True))
    inline = list(iter_decoded(paths, 16, chunk=10, workers=0, digests=True))
    assert [len(c) for c in pooled] == [len(c) for c in inline] == [10, 10, 2]
    flat = [d for c in pooled for d in c]
    assert [d.path for d in flat] == paths
    assert flat[9].error == "file not found"
    for a, b in zip(flat, (d for c in inline for d in c)):
        assert a.digest == b.digest and a.error == b.error
        assert (a.pixels is None and b.pixels is None) or np.array_equal(a.pixels, b.pixels)


def test_the_two_step_resize_stays_within_rounding_of_plain_lanczos(tmp_path):
    """A big PNG (no draft decoding) shrinks by whole factors first: pixels within 2 levels,
    and the vectors a model makes of them agree to within float noise of the model's scale."""
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:1200, 0:1600]
    smooth = np.stack([(xx / 7) % 255, (yy / 5) % 255, ((xx + yy) / 11) % 255], -1)
    noisy = np.clip(smooth + rng.normal(0, 12, smooth.shape), 0, 255).astype(np.uint8)
    Image.fromarray(noisy).save(tmp_path / "big.png")
    img, _ = decode(tmp_path / "big.png", 64)
    fast = np.asarray(fit_square(img, 64), np.int16)
    plain = img.resize((85, 64), Image.Resampling.LANCZOS).crop((10, 0, 74, 64))
    diff = np.abs(fast - np.asarray(plain, np.int16))
    assert diff.max() <= 2 and diff.mean() < 0.5
    embedder = tiny_embedder(tmp_path)
    a, b = embedder.finish(embedder.raw_from_pixels(np.stack([fast.astype(np.uint8), np.asarray(plain)])))
    assert float(a @ b) > 0.999
