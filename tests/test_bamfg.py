"""BAM-FG import: the group lists laid out as the release is assumed to be (see trainer/bamfg.py), sub-groups
before projects, projects kept for the split, and what is missing named."""

from __future__ import annotations

import pytest
from PIL import Image

from trainer.bamfg import CLEANED_LAYOUT, RAW_LAYOUT, import_bamfg
from trainer.errors import DataError
from trainer.manifest import at_consensus, read_manifest
from trainer.splits import plan_by_project

# The layouts as the importer's docstring states them, written out: a change to either is a change here too.
RAW_HEADER = "image_id,project_id"
CLEANED_HEADER = "image_id,project_id,group_id,consensus"


@pytest.fixture
def images(tmp_path):
    folder = tmp_path / "images"
    folder.mkdir()
    for name in ("101", "102", "103", "104", "105", "106"):
        Image.new("RGB", (8, 8)).save(folder / f"{name}.jpg")
    return folder


def test_the_assumed_layouts_are_the_documented_ones():
    assert ",".join(RAW_LAYOUT) == RAW_HEADER and ",".join(CLEANED_LAYOUT) == CLEANED_HEADER


def test_raw_release_layout_groups_by_project(images, tmp_path):
    raw = tmp_path / "bam-fg-raw.csv"
    raw.write_text(f"{RAW_HEADER}\n101,8841\n102,8841\n103,9002\n104,9002\n")
    report = import_bamfg(images, tmp_path / "raw.csv", raw=raw)
    assert (report.rows, report.groups, report.projects, report.levels) == (4, 2, 2, [])
    rows = read_manifest(tmp_path / "raw.csv")
    assert [(s.group, s.project, s.consensus) for s in rows] == [("8841", "8841", None)] * 2 + [
        ("9002", "9002", None)] * 2


def test_cleaned_release_layout_prefers_sub_groups_and_keeps_projects(images, tmp_path):
    """Project 8841 is one sub-group at C_3 and two at C_5; group ids repeat across projects."""
    cleaned = tmp_path / "bam-fg-cleaned.csv"
    cleaned.write_text(f"{CLEANED_HEADER}\n"
                       "101,8841,0,3\n102,8841,0,3\n103,8841,0,3\n104,8841,0,3\n"
                       "101,8841,0,5\n102,8841,0,5\n103,8841,1,5\n104,8841,1,5\n"
                       "105,9002,0,3\n106,9002,0,3\n")
    report = import_bamfg(images, tmp_path / "c.csv", cleaned=cleaned)
    assert (report.rows, report.images, report.groups, report.projects, report.levels) == (10, 6, 4, 2, [3, 5])
    rows = read_manifest(tmp_path / "c.csv")
    assert (tmp_path / "c.csv").read_text().splitlines()[0] == "path,group,consensus,project"
    assert sorted({(s.group, s.consensus) for s in rows}) == [("8841/0", 3), ("8841/0", 5), ("8841/1", 5),
                                                                ("9002/0", 3)]
    assert {s.project for s in rows} == {"8841", "9002"}
    # One plan over both levels: a project's sub-groups are in one split at every level.
    plan = plan_by_project(rows, val=0.5)
    for level in (3, 5):
        split = plan.apply(at_consensus(rows, level))
        assert {s.project for s in split.val} <= plan.val and not {s.project for s in split.train} & plan.val


def test_other_spellings_and_orders_and_project_only_lists(images, tmp_path):
    tsv = tmp_path / "c.tsv"
    tsv.write_text("consensus\tsubgroup\tProject\tmid\n4\ta\tp1\t101\n4\ta\tp1\t102\n")
    import_bamfg(images, tmp_path / "m.csv", cleaned=tsv)
    assert [(s.group, s.project) for s in read_manifest(tmp_path / "m.csv")] == [("p1/a", "p1")] * 2
    no_group = tmp_path / "bad.csv"
    no_group.write_text("image_id,consensus\n101,3\n")
    with pytest.raises(DataError, match="no group column .* expected a project column"):
        import_bamfg(images, tmp_path / "m.csv", cleaned=no_group)


def test_import_bamfg_cleaned_groups(tmp_path):
    images = tmp_path / "bam" / "images"
    images.mkdir(parents=True)
    for name in ("101", "102", "103"):
        Image.new("RGB", (8, 8)).save(images / f"{name}.jpg")
    groups = tmp_path / "bam" / "cleaned.tsv"
    groups.write_text("image_id\tproject_id\tconsensus\n101\tp1\t3\n102\tp1\t3\n103\tp2\t4\n101\tp1\t4\n")
    out = tmp_path / "bamfg.csv"
    report = import_bamfg(images, out, cleaned=groups, consensus=3)
    assert (report.rows, report.images, report.missing, report.levels) == (2, 2, 0, [3])
    assert [(s.group, s.consensus) for s in read_manifest(out)] == [("p1", 3), ("p1", 3)]


def test_import_bamfg_names_what_is_missing(tmp_path):
    images = tmp_path / "images"
    images.mkdir()
    Image.new("RGB", (8, 8)).save(images / "1.png")
    raw = tmp_path / "raw.csv"
    raw.write_text("image,project\n1,a\n2,a\n3,b\n")
    with pytest.raises(DataError, match=r"2 of 3 listed images are not in .*\(e\.g\. 2, 3\)"):
        import_bamfg(images, tmp_path / "m.csv", raw=raw)
    assert (tmp_path / "m.csv.missing.txt").read_text().split() == ["2", "3"]
    with pytest.raises(DataError, match="BAM-FG-Raw project group list not found"):
        import_bamfg(images, tmp_path / "m.csv", raw=tmp_path / "absent.csv")
    with pytest.raises(DataError, match="image folder not found"):
        import_bamfg(tmp_path / "nowhere", tmp_path / "m.csv", raw=raw)
