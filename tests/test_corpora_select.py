"""Training manifests joined from built corpora: reserved rows dropped, sources capped, order kept."""

from __future__ import annotations

import json

import pytest

from trainer.corpora.__main__ import main
from trainer.corpora.select import parse_caps, select
from trainer.errors import DataError
from trainer.manifest import Sample, read_manifest, write_manifest


def _manifest(path, rows):
    return write_manifest(path, [Sample(p, g, source=s) for p, g, s in rows], relative=False)


@pytest.fixture
def two_corpora(tmp_path):
    first = _manifest(tmp_path / "a.csv", [
        ("/c/fonts/Line_Dings_BRK-1/000.png", "fonts/Line_Dings_BRK-1", "fonts"),
        ("/c/fonts/Line_Dings_BRK-1/001.png", "fonts/Line_Dings_BRK-1", "fonts"),
        ("/c/emoji/noto-color-emoji/000.png", "emoji/noto", "emoji"),
        ("/c/fonts/Yielding_BRK-2/000.png", "fonts/Yielding_BRK-2", "fonts"),
        ("/c/fonts/Yielding_BRK-2/001.png", "fonts/Yielding_BRK-2", "fonts"),
        *[(f"/c/procedural/r1/{i:03d}.png", "procedural/r1", "procedural") for i in range(5)],
        *[(f"/c/procedural/r2/{i:03d}.png", "procedural/r2", "procedural") for i in range(2)],
    ])
    second = _manifest(tmp_path / "b.csv", [
        ("/c/fonts/Yielding_BRK-2/001.png", "fonts/Yielding_BRK-2", "fonts"),
        *[(f"/n/widelands/buildings/{i}.png", "widelands/buildings", "widelands") for i in range(3)],
    ])
    return first, second


def test_select_drops_reserved_and_repeated_rows_and_caps_a_source(two_corpora):
    chosen = select(list(two_corpora), {"procedural": 3})
    paths = [s.path for s in chosen.samples]
    assert chosen.reserved == 3 and chosen.repeated == 1 and chosen.capped == {"procedural": 2}
    assert not any("Dings" in p or "emoji" in p for p in paths)
    assert paths == [
        "/c/fonts/Yielding_BRK-2/000.png", "/c/fonts/Yielding_BRK-2/001.png",
        "/c/procedural/r1/000.png", "/c/procedural/r1/001.png", "/c/procedural/r1/002.png",
        "/c/procedural/r2/000.png", "/c/procedural/r2/001.png",
        "/n/widelands/buildings/0.png", "/n/widelands/buildings/1.png", "/n/widelands/buildings/2.png",
    ]


def test_select_command_writes_the_same_manifest_every_time(two_corpora, tmp_path, capsys):
    outs = []
    for name in ("one", "two"):
        out = tmp_path / name / "train.csv"
        assert main(["select", *map(str, two_corpora), "--out", str(out), "--cap", "procedural=2"]) == 0
        report = json.loads(capsys.readouterr().out)
        assert report["images"] == 9 and report["reserved_dropped"] == 3 and report["capped"] == {"procedural": 3}
        outs.append(out.read_bytes())
    assert outs[0] == outs[1]
    assert len(read_manifest(tmp_path / "one" / "train.csv")) == 9


@pytest.mark.parametrize("bad", ["procedural", "procedural=1", "=4", "procedural=x"])
def test_bad_caps_are_refused(bad):
    with pytest.raises(DataError, match="SOURCE=N"):
        parse_caps([bad])
