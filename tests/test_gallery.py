"""``python -m trainer gallery`` on tiny generated styles: query choice, layout and frame colours."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from trainer.cli import main, parse_args
from trainer.gallery import (FRAME, GAP, HEADER, LABEL, MATCH_FRAME, MISS_FRAME, PAD, QUERY_FRAME, frame_origin,
                             make_gallery, pick_queries)
from trainer.manifest import Sample, read_manifest, write_manifest
from trainer.splits import split_by_group
from trainer.synthetic import write_style_set


@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    return write_style_set(tmp_path_factory.mktemp("gallery"), groups=6, per_group=4, size=36, seed=1)


def test_queries_come_from_distinct_groups_and_sources_first():
    samples = [Sample(f"{g}{i}.png", g, source=src)
               for g, src in [("a", "s1"), ("b", "s1"), ("c", "s1"), ("d", "s1"), ("e", "s2"), ("f", "s3")]
               for i in range(2)]
    samples.append(Sample("z.png", "z", source="s2"))
    three = pick_queries(samples, 3, np.random.default_rng(0))
    assert sorted(samples[i].source for i in three) == ["s1", "s2", "s3"]
    every = pick_queries(samples, 10, np.random.default_rng(0))
    groups = [samples[i].group for i in every]
    assert sorted(groups) == list("abcdef")
    assert every == pick_queries(samples, 10, np.random.default_rng(0))
    assert pick_queries(samples, 10, np.random.default_rng(1)) != every


def test_gallery_png_frames_results_by_group(synth, tmp_path, capsys):
    argv = ["gallery", "--model", "untrained-s", "--input-size", "32", "--data", str(synth), "--split", "all",
            "--queries", "4", "--top", "5", "--tile", "48", "--workers", "0", "--out", str(tmp_path / "g.png")]
    assert main(argv) == 0
    assert "4 queries" in capsys.readouterr().out
    png = Image.open(tmp_path / "g.png").convert("RGB")
    cell = 48 + 2 * FRAME
    assert png.size == (PAD + 6 * (cell + PAD) + GAP, HEADER + PAD + 4 * (cell + LABEL + PAD))

    image, rows, embedded = make_gallery(parse_args(argv))
    assert np.array_equal(np.asarray(image), np.asarray(png))
    group_of = {s.path: s.group for s in read_manifest(synth)}
    assert len({group_of[embedded.samples[r.query].path] for r in rows}) == 4
    colours = []
    for r, row in enumerate(rows):
        x, y = frame_origin(r, 0, 48)
        assert png.getpixel((x + 1, y + cell // 2)) == QUERY_FRAME
        query_group = group_of[embedded.samples[row.query].path]
        assert row.scores == sorted(row.scores, reverse=True) and row.query not in row.results
        for c, result in enumerate(row.results, start=1):
            x, y = frame_origin(r, c, 48)
            want = MATCH_FRAME if group_of[embedded.samples[result].path] == query_group else MISS_FRAME
            for point in ((x + 1, y + 1), (x + cell - 2, y + cell // 2), (x + cell // 2, y + cell - 2)):
                assert png.getpixel(point) == want
            colours.append(want)
    assert MATCH_FRAME in colours and MISS_FRAME in colours


def test_colour_baseline_gallery_stays_inside_the_split(synth, tmp_path):
    argv = ["gallery", "--baseline", "colour", "--data", str(synth), "--test", "0.5", "--queries", "6",
            "--top", "3", "--tile", "32", "--workers", "0", "--out", str(tmp_path / "colour.png")]
    assert main(argv) == 0
    _, rows, embedded = make_gallery(parse_args(argv))
    test_paths = {s.path for s in split_by_group(read_manifest(synth), 0.1, 0.5, 0).test}
    assert {s.path for s in embedded.samples} == test_paths
    assert len(rows) == 3 and all(len(r.results) == 3 for r in rows)
    assert Image.open(tmp_path / "colour.png").size[1] == HEADER + PAD + 3 * (32 + 2 * FRAME + LABEL + PAD)


def test_gallery_without_a_queryable_group_is_one_clear_error(tmp_path, capsys):
    for name in ("a", "b"):
        Image.new("RGB", (20, 20), (10, 200, 30)).save(tmp_path / f"{name}.png")
    manifest = write_manifest(tmp_path / "m.csv", [Sample(str(tmp_path / "a.png"), "g1"),
                                                    Sample(str(tmp_path / "b.png"), "g2")])
    assert main(["gallery", "--baseline", "colour", "--data", str(manifest), "--split", "all", "--workers", "0",
                 "--out", str(tmp_path / "g.png")]) == 2
    assert "no group in the all split has two readable images" in capsys.readouterr().err
    assert not (tmp_path / "g.png").exists()
