"""Preprocessing: every odd mode, EXIF orientation, JPEG draft, and clear errors for bad files."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from core import images
from core.errors import ImageError
from core.images import BACKGROUND, decode, fit_square, load_array, open_image
from tests.conftest import make_image


@pytest.mark.parametrize("mode,fmt", [
    ("L", "PNG"), ("1", "PNG"), ("P", "PNG"), ("LA", "PNG"), ("RGBA", "PNG"),
    ("CMYK", "JPEG"), ("I;16", "PNG"), ("I", "TIFF"), ("F", "TIFF"), ("RGB", "WEBP"), ("RGB", "BMP"),
])
def test_every_mode_becomes_rgb(tmp_path, mode, fmt):
    path = make_image(tmp_path / f"img.{fmt.lower()}", mode=mode, fmt=fmt)
    arr, size = load_array(path, 32)
    assert arr.shape == (32, 32, 3) and arr.dtype == np.uint8
    assert size == (64, 48)


def test_sixteen_bit_grey_keeps_its_range(tmp_path):
    ramp = (np.linspace(0, 65535, 64 * 48).reshape(48, 64)).astype(np.uint16)
    img16 = Image.fromarray(ramp)
    assert img16.mode.startswith("I;16")
    img16.save(tmp_path / "ramp.png")
    img = open_image(tmp_path / "ramp.png")
    arr = np.asarray(img)
    assert arr.min() < 10 and arr.max() > 245, "16-bit values must be scaled, not clipped"


def test_transparency_is_composited_on_neutral_grey(tmp_path):
    rgba = Image.new("RGBA", (10, 10), (255, 0, 0, 0))
    rgba.save(tmp_path / "clear.png")
    assert open_image(tmp_path / "clear.png").getpixel((5, 5)) == BACKGROUND
    pal = Image.new("P", (10, 10), 0)
    pal.putpalette([255, 0, 0] * 256)
    pal.info["transparency"] = 0
    pal.save(tmp_path / "pal.png", transparency=0)
    assert open_image(tmp_path / "pal.png").getpixel((5, 5)) == BACKGROUND


def test_exif_orientation_is_applied(tmp_path):
    img = Image.new("RGB", (40, 20), (0, 0, 255))
    exif = img.getexif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise on display
    img.save(tmp_path / "rot.jpg", exif=exif)
    upright, original = decode(tmp_path / "rot.jpg")
    assert upright.size == (20, 40)
    assert original == (20, 40)


def test_gif_uses_first_frame(tmp_path):
    frames = [Image.new("RGB", (16, 16), c) for c in ((255, 0, 0), (0, 255, 0))]
    frames[0].save(tmp_path / "anim.gif", save_all=True, append_images=frames[1:])
    r, g, _ = open_image(tmp_path / "anim.gif").getpixel((8, 8))
    assert r > 200 and g < 50


def test_jpeg_draft_decoding_barely_changes_the_input(tmp_path):
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:1200, 0:1600]
    smooth = np.stack([(xx / 7) % 255, (yy / 5) % 255, ((xx + yy) / 11) % 255], -1).astype(np.uint8)
    noisy = np.clip(smooth + rng.normal(0, 8, smooth.shape), 0, 255).astype(np.uint8)
    Image.fromarray(noisy).save(tmp_path / "big.jpg", quality=92)
    fast = load_array(tmp_path / "big.jpg", 128)[0].astype(np.float32)
    full = np.asarray(fit_square(open_image(tmp_path / "big.jpg"), 128), dtype=np.float32)
    assert np.abs(fast - full).mean() < 3.0


def test_fit_square_crops_without_distortion():
    img = Image.new("RGB", (200, 100))
    img.paste((255, 255, 255), (0, 0, 50, 100))  # white band on the far left is cropped away
    out = fit_square(img, 50)
    assert out.size == (50, 50)
    assert max(out.getpixel((0, 25))) < 30


@pytest.mark.parametrize("name,content,reason", [
    ("notes.txt", b"hello, not an image", "not a recognised image format"),
    ("empty.png", b"", "not a recognised image format"),
])
def test_non_images_give_clear_reasons(tmp_path, name, content, reason):
    (tmp_path / name).write_bytes(content)
    with pytest.raises(ImageError) as err:
        load_array(tmp_path / name, 32)
    assert reason in err.value.reason
    assert str(tmp_path / name) in str(err.value)


def test_truncated_and_corrupt_files(tmp_path):
    good = make_image(tmp_path / "good.jpg", size=(256, 256))
    data = good.read_bytes()
    (tmp_path / "trunc.jpg").write_bytes(data[: len(data) // 2])
    with pytest.raises(ImageError, match="damaged or truncated"):
        load_array(tmp_path / "trunc.jpg", 32)
    png = make_image(tmp_path / "good.png", size=(64, 64)).read_bytes()
    corrupt = png[:60] + bytes(200) + png[260:]
    (tmp_path / "corrupt.png").write_bytes(corrupt)
    with pytest.raises(ImageError):
        load_array(tmp_path / "corrupt.png", 32)


def test_missing_path_and_folder(tmp_path):
    with pytest.raises(ImageError, match="file not found"):
        load_array(tmp_path / "nope.png", 32)
    with pytest.raises(ImageError, match="folder"):
        load_array(tmp_path, 32)


def test_decompression_bomb_is_refused_before_decoding(tmp_path, monkeypatch):
    path = make_image(tmp_path / "wide.png", size=(300, 200))
    monkeypatch.setattr(images, "MAX_PIXELS", 300 * 200 - 1)
    with pytest.raises(ImageError, match="too large"):
        load_array(path, 32)
