"""Corpus packs: the same training pixels, groups and split on the receiving machine."""

from __future__ import annotations

import io
import tarfile

import numpy as np
import pytest

from core.images import load_array
from trainer.corpora.__main__ import main
from trainer.corpora.pack import pack, pack_info, unpack
from trainer.errors import DataError
from trainer.manifest import read_manifest
from trainer.splits import split_by_group
from trainer.synthetic import write_style_set


@pytest.fixture
def corpus(tmp_path):
    manifest = write_style_set(tmp_path / "data", groups=8, per_group=3, size=60, seed=4)
    # A damaged file in the middle: packed around, reported by path.
    with open(read_manifest(manifest)[4].path, "wb") as fh:
        fh.write(b"not an image at all")
    return manifest


def test_lossless_pack_holds_the_trainers_pixels_groups_and_split(corpus, tmp_path):
    result = pack(corpus, tmp_path / "c.tar", load_size=36, quality=100, workers=0)
    original = read_manifest(corpus)
    assert result.images == len(original) - 1 and len(result.failed) == 1
    assert next(iter(result.failed)).endswith(original[4].path.split("/")[-1])
    packed = read_manifest(unpack(tmp_path / "c.tar", tmp_path / "u"))
    kept = [s for i, s in enumerate(original) if i != 4]
    assert [s.group for s in packed] == [s.group for s in kept]
    for mine, theirs in zip(packed, kept):
        assert np.array_equal(load_array(mine.path, 36)[0], load_array(theirs.path, 36)[0])
    ours, theirs = split_by_group(packed, 0.25, 0.25, 3), split_by_group(kept, 0.25, 0.25, 3)
    for name in ("train", "val", "test"):
        assert {s.group for s in ours.of(name)} == {s.group for s in theirs.of(name)}
    info = pack_info(tmp_path / "u")
    assert info["load_size"] == 36 and info["origin_card"].startswith("manifest:")


def test_lossy_pack_is_smaller_and_close(corpus, tmp_path):
    lossless = pack(corpus, tmp_path / "a.tar", 36, quality=100, workers=0)
    lossy = pack(corpus, tmp_path / "b.tar", 36, quality=60, workers=0)
    assert lossy.bytes < lossless.bytes
    a = read_manifest(unpack(tmp_path / "a.tar", tmp_path / "a"))
    b = read_manifest(unpack(tmp_path / "b.tar", tmp_path / "b"))
    diff = np.abs(load_array(a[0].path, 36)[0].astype(int) - load_array(b[0].path, 36)[0].astype(int))
    assert 0 < diff.mean() < 20


def test_unpack_refuses_what_is_not_a_pack(tmp_path, capsys):
    escape = tmp_path / "evil.tar"
    with tarfile.open(escape, "w") as tar:
        info = tarfile.TarInfo("../outside.txt")
        info.size = 2
        tar.addfile(info, io.BytesIO(b"hi"))
    with pytest.raises(DataError):
        unpack(escape, tmp_path / "x")
    assert not (tmp_path / "outside.txt").exists()
    (tmp_path / "junk.tar").write_bytes(b"junk")
    assert main(["unpack", str(tmp_path / "junk.tar"), str(tmp_path / "y")]) == 2
    assert "not a readable corpus pack" in capsys.readouterr().err
