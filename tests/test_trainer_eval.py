"""Evaluation figures beyond P@k: the content trap, the per-source breakdown, and the manifest columns they read."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from trainer.cli import main
from trainer.manifest import Sample, read_manifest, write_manifest
from trainer.metrics import (QueryResults, by_source, confusions, content_trap, retrieval_metrics, score_queries,
                             summarise)


def unit(degrees: list[float]) -> np.ndarray:
    a = np.radians(degrees)
    return np.stack([np.cos(a), np.sin(a)], 1).astype(np.float32)


# Angles 0, 18, 10, 100, 220 degrees; groups A A B B C (C cannot be scored); contents x y x z x.
# Rankings: q0 -> 2, 1, 3, 4   q1 -> 2, 0, 3, 4   q2 -> 1, 0, 3, 4   q3 -> 1, 2, 0, 4.
# Content x spans groups A, B, C, so q0 and q2 are measurable (q4 has no group-mate, so is not);
# q0's top result (2) is x in group B: trapped. q2's top result (1) is group A but content y: a
# plain miss, not a trap. y and z occur once, so q1 and q3 cannot be measured.
VECTORS = unit([0, 18, 10, 100, 220])
LABELS = np.array(list("AABBC"))
CONTENTS = np.array(["x", "y", "x", "z", "x"])
SOURCES = np.array(["s1", "s1", "s2", "s2", "s1"])


def test_content_trap_counts_same_content_other_group_top_results():
    results = score_queries(VECTORS, LABELS)
    assert results.top1[:4].tolist() == [2, 2, 1, 1]
    assert content_trap(results, LABELS, CONTENTS) == {"share": 0.5, "trapped": 1, "measurable": 2}


def test_content_trap_ignores_content_shared_only_within_a_group_and_empty_ids():
    # q0 and q1 share content v inside group D: a group-mate, not a trap, and not measurable.
    # q2 and q3 have no content id at all, though q3's top result is another group.
    vectors = unit([0, 5, 100, 45])
    labels = np.array(list("DDEE"))
    results = score_queries(vectors, labels)
    assert results.top1.tolist() == [1, 0, 3, 1]
    trap = content_trap(results, labels, np.array(["v", "v", "", ""]))
    assert trap == {"share": None, "trapped": 0, "measurable": 0}
    # Give q1 and q3 one content id w across groups D and E: both become measurable; q3's top
    # result is q1 (w, group D), a trap; q1's top result is q0 (v), a group-mate.
    trap = content_trap(results, labels, np.array(["v", "w", "", "w"]))
    assert trap == {"share": 0.5, "trapped": 1, "measurable": 2}
    # With w on q0 too, q0 and q1 find each other: same content, but the same group, so no trap.
    trap = content_trap(results, labels, np.array(["w", "w", "", "w"]))
    assert trap == {"share": 1 / 3, "trapped": 1, "measurable": 3}


def test_confusions_count_wrong_first_results_by_pair_of_groups_either_way_round():
    results = score_queries(VECTORS, LABELS)
    # q0, q1 go to group B, q2, q3 to group A; q4 (C) has no group-mate and is not scored.
    assert confusions(results, LABELS) == [{"groups": ["A", "B"], "queries": 4}]
    labels = np.array(list("AABBCCD"))
    top1 = np.array([1, 2, 4, 0, 2, 0, 0])  # hits: q0; misses A/B: q1, q3; B/C: q2, q4; A/C: q5; q6 unscorable
    scorable = np.array([True] * 6 + [False])
    made = QueryResults(scorable=scorable, hits={}, ap=np.zeros(7), top1=top1)
    assert confusions(made, labels) == [{"groups": ["A", "B"], "queries": 2}, {"groups": ["B", "C"], "queries": 2},
                                        {"groups": ["A", "C"], "queries": 1}]
    assert confusions(made, labels, most=1) == [{"groups": ["A", "B"], "queries": 2}]


def test_per_source_metrics_split_the_same_ranking():
    results = score_queries(VECTORS, LABELS, ks=(1, 2, 3))
    # Relevant item ranks: q0 2, q1 2, q2 3, q3 2; AP = 1 / rank.
    per = by_source(results, SOURCES)
    assert per["s1"] == {"P@1": 0.0, "P@2": 1.0, "P@3": 1.0, "mAP": pytest.approx(0.5),
                         "queries": 2, "unscorable_queries": 1}
    assert per["s2"] == {"P@1": 0.0, "P@2": 0.5, "P@3": 1.0, "mAP": pytest.approx((1 / 3 + 1 / 2) / 2),
                         "queries": 2, "unscorable_queries": 0}
    whole = summarise(results)
    assert whole == retrieval_metrics(VECTORS, LABELS, ks=(1, 2, 3))
    assert whole["mAP"] == pytest.approx((per["s1"]["mAP"] + per["s2"]["mAP"]) / 2)


def test_manifest_keeps_source_and_content_and_plain_stays_plain(tmp_path):
    rich = [Sample(str(tmp_path / "a.png"), "g1", None, "procedural", "photo:1"),
            Sample(str(tmp_path / "b.png"), "g2", None, "fonts", "")]
    write_manifest(tmp_path / "rich.csv", rich)
    assert (tmp_path / "rich.csv").read_text().splitlines()[0] == "path,group,source,content"
    assert read_manifest(tmp_path / "rich.csv") == rich
    write_manifest(tmp_path / "plain.csv", [Sample(str(tmp_path / "a.png"), "g1")])
    assert (tmp_path / "plain.csv").read_text().splitlines()[0] == "path,group"
    (tmp_path / "src.csv").write_text("path,group,source\na.png,g1,wesnoth\n")
    assert read_manifest(tmp_path / "src.csv") == [Sample(str(tmp_path / "a.png"), "g1", source="wesnoth")]


def test_eval_reports_content_trap_and_sources_end_to_end(tmp_path, capsys):
    """Three styles drawn over three flat colours: the colour baseline finds the colour, not the style.

    90% of each image is its content's colour, 10% a stripe in its style's grey, so the
    nearest image is always the same content in another style: every query is trapped.
    """
    colours = {"red": (220, 30, 30), "green": (30, 200, 40), "blue": (30, 40, 220)}
    rows = []
    for s, grey in enumerate((20, 120, 240)):
        for content, rgb in colours.items():
            img = np.zeros((40, 40, 3), np.uint8)
            img[:] = rgb
            img[:4] = grey
            path = tmp_path / f"style{s}-{content}.png"
            Image.fromarray(img).save(path)
            rows.append(Sample(str(path), f"style{s}", source="procedural" if s else "other", content=content))
    manifest = write_manifest(tmp_path / "m.csv", rows)
    report = tmp_path / "r.json"
    assert main(["eval", "--data", str(manifest), "--baseline", "colour", "--workers", "0",
                 "--report", str(report)]) == 0
    r = json.loads(report.read_text())
    assert r["metrics"]["P@1"] == 0.0 and r["metrics"]["queries"] == 9
    assert r["content_trap"] == {"share": 1.0, "trapped": 9, "measurable": 9}
    assert sorted(r["by_source"]) == ["other", "procedural"]
    assert r["by_source"]["other"]["queries"] == 3 and r["by_source"]["procedural"]["queries"] == 6
    assert "content trap 1.0000 of 9 queries" in capsys.readouterr().out


def test_eval_ranks_as_the_app_searches_when_asked(tmp_path, capsys):
    """``--ranking``: the same vectors ranked as the search ranks them; the first result never moves."""
    rng = np.random.default_rng(5)
    rows = []
    for style in range(4):
        base = 128 + rng.integers(-25, 25, 3)
        for n in range(6):
            img = np.clip(base + rng.normal(0, 60, (24, 24, 3)), 0, 255).astype(np.uint8)
            path = tmp_path / f"s{style}-{n}.png"
            Image.fromarray(img).save(path)
            rows.append(Sample(str(path), f"s{style}"))
    manifest = write_manifest(tmp_path / "m.csv", rows)
    reports = {}
    for ranking in ("cosine", "csls", "expand", "search"):
        out = tmp_path / f"{ranking}.json"
        assert main(["eval", "--data", str(manifest), "--baseline", "colour", "--workers", "0", "--ranking", ranking,
                     "--report", str(out)]) == 0
        assert f"ranked by {ranking}" in capsys.readouterr().out
        reports[ranking] = json.loads(out.read_text())
        assert reports[ranking]["ranking"] == ranking
    assert reports["expand"]["metrics"]["P@1"] == reports["cosine"]["metrics"]["P@1"]
    assert reports["search"]["metrics"]["P@1"] == reports["csls"]["metrics"]["P@1"]
    assert reports["expand"]["metrics"]["P@5"] == reports["cosine"]["metrics"]["P@5"]
    assert len({r["metrics"]["mAP"] for r in reports.values()}) > 1
