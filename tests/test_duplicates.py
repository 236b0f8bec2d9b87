"""The duplicate search: exact copies, each kind of edited copy, same-style pictures kept apart, bad files."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from bench.duplicates import EDITS, picture
from core.cli import main
from core.duplicates import CACHE_FILE, UnionFind, candidate_pairs, find_duplicates, likeness, thumbprint
from core.embedder import Embedder
from core.indexer import index_folders
from core.library import Library
from core.modelfile import load_model_file
from core.search import Searcher
from core.vector_index import ExactIndex, HnswIndex
from library_fixtures import tiny_model_file

SIZE = 96


@pytest.fixture(scope="module")
def collection(tmp_path_factory):
    """Two styles of three pictures; the first picture of each has an exact copy and one copy per edit.

    Indexed with a 32 px untrained model: its vectors only gate the candidates, the pixels decide.
    """
    tmp = tmp_path_factory.mktemp("dups")
    art = tmp / "art"
    rng = np.random.default_rng(0)
    originals = {}
    copies: dict[str, dict[str, str]] = {}
    for style in range(2):
        for variant in range(3):
            img = picture(style, variant, SIZE)
            path = art / f"style{style}" / f"v{variant}.png"
            path.parent.mkdir(parents=True, exist_ok=True)
            img.save(path)
            originals[(style, variant)] = str(path)
        img = Image.open(originals[(style, 0)])
        edited = art / f"copies{style}"
        edited.mkdir()
        copies[originals[(style, 0)]] = {name: str(edit(img, edited / f"{name}.png", rng))
                                         for name, edit in EDITS.items()}
        copies[originals[(style, 0)]]["exact"] = str(shutil.copy(originals[(style, 0)], edited / "same.png"))
    model = tiny_model_file(tmp / "models", input_size=32)
    library = tmp / "library"
    with Library.open(library) as lib:
        list(index_folders(lib, [art], Embedder(load_model_file(model), device="cpu"), workers=0))
    return originals, copies, library, model


def search(library: Path, model: Path, **options):
    with Library.open(library) as lib:
        index = Searcher(lib, Embedder(load_model_file(model), device="cpu")).cache.current()
        return find_duplicates(lib, index, **options)


def group_of(report, path: str) -> set[str]:
    return next(({f.path for f in g.files} for g in report.groups if path in {f.path for f in g.files}), {path})


def test_exact_duplicates_are_found_without_a_model(collection):
    originals, copies, library, _ = collection
    with Library.open(library) as lib:
        report = find_duplicates(lib, None)
    assert len(report.groups) == 2 and all(g.exact for g in report.groups)
    for original, made in copies.items():
        assert group_of(report, original) == {original, made["exact"]}


@pytest.mark.parametrize("edit", [*EDITS, "exact"])
def test_each_kind_of_copy_joins_its_original(collection, edit):
    originals, copies, library, model = collection
    report = search(library, model)
    for original, made in copies.items():
        assert made[edit] in group_of(report, original), edit


def test_pictures_of_one_style_are_not_grouped(collection):
    originals, copies, library, model = collection
    report = search(library, model, similarity=-1.0)  # every pair is a candidate: only the pixels decide
    assert report.pairs_checked > len(copies) * 5
    for style in range(2):
        groups = [group_of(report, originals[(style, v)]) for v in range(3)]
        assert groups[1] == {originals[(style, 1)]} and groups[2] == {originals[(style, 2)]}
        assert groups[0] == {originals[(style, 0)], *copies[originals[(style, 0)]].values()}
    group = next(g for g in report.groups if originals[(0, 0)] in {f.path for f in g.files})
    assert not group.exact
    assert (group.files[0].width, group.files[0].height) == (SIZE, SIZE)  # the largest picture leads
    assert all(f.size == Path(f.path).stat().st_size for f in group.files)


def test_a_missing_or_unreadable_file_does_not_stop_the_search(collection, tmp_path):
    originals, copies, library, model = collection
    work = tmp_path / "library"
    shutil.copytree(library, work)
    made = copies[originals[(0, 0)]]
    broken = {made["resize"]: Path(made["resize"]).read_bytes(), made["crop"]: Path(made["crop"]).read_bytes()}
    try:
        Path(made["resize"]).unlink()
        Path(made["crop"]).write_bytes(b"not an image")
        report = search(work, model)
    finally:
        for path, data in broken.items():
            Path(path).write_bytes(data)
    reasons = {f.path: f.reason for f in report.skipped}
    assert "not found" in reasons[made["resize"]] and "not a recognised image" in reasons[made["crop"]]
    assert made["jpeg"] in group_of(report, originals[(0, 0)])
    assert not {made["resize"], made["crop"]} & group_of(report, originals[(0, 0)])


def test_thumbprints_are_cached_by_content(collection, tmp_path, monkeypatch):
    originals, copies, library, model = collection
    work = tmp_path / "library"
    shutil.copytree(library, work)
    first = search(work, model)
    assert (work / CACHE_FILE).is_file()
    monkeypatch.setattr("core.duplicates.thumbprint", lambda path: pytest.fail(f"{path} decoded again"))
    again = search(work, model)
    assert [g.files for g in again.groups] == [g.files for g in first.groups]


def test_exif_rotation_is_undone_before_comparing(collection):
    originals, copies, _, _ = collection
    original = originals[(0, 0)]
    rotated = copies[original]["exif-rotate"]
    stored = np.asarray(Image.open(rotated).convert("L").resize((32, 32)))
    assert likeness(thumbprint(original), thumbprint(rotated)) > 0.95
    assert likeness(thumbprint(original), stored) < 0.9


def test_candidates_come_alike_from_exact_and_graph_indexes():
    rng = np.random.default_rng(2)
    x = rng.normal(size=(300, 16)).astype(np.float32)
    x[250:] = x[:50] + 0.01 * rng.normal(size=(50, 16)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    ids = np.arange(1000, 1300, dtype=np.int64)
    exact, graph = ExactIndex(16), HnswIndex(16, 300)
    exact.add(ids, x)
    graph.add(ids, x)
    planted = {(1000 + i, 1250 + i) for i in range(50)}
    for index in (exact, graph):
        found = {(int(a), int(b)) for a, b in candidate_pairs(index, 0.99)}
        assert planted <= found and all(a < b for a, b in found) and len(found) < 80


def test_union_find_joins_chains():
    sets = UnionFind()
    sets.join(5, 3)
    sets.join(3, 9)
    sets.join_all([20, 21])
    assert sorted(sets.groups()) == [[3, 5, 9], [20, 21]]


def test_cli_duplicates_json(collection, capsys):
    originals, copies, library, model = collection
    code = main(["duplicates", "--json", "--library", str(library), "--model", str(model), "--device", "cpu"])
    out = json.loads(capsys.readouterr().out)
    assert code == 0 and set(out) == {"groups", "skipped", "pairs_checked", "seconds"}
    assert len(out["groups"]) == 2 and out["skipped"] == []
    for group in out["groups"]:
        assert group["exact"] is False and len(group["files"]) == 6
        assert set(group["files"][0]) == {"image_id", "path", "size", "width", "height"}
        paths = {f["path"] for f in group["files"]}
        original = next(p for p in copies if p in paths)
        assert paths == {original, *copies[original].values()}


def test_forgotten_images_leave_the_library_and_its_duplicates(collection, tmp_path):
    originals, copies, library, model = collection
    work = tmp_path / "library"
    shutil.copytree(library, work)
    made = copies[originals[(1, 0)]]
    with Library.open(work) as lib:
        gone = [lib.find_image(made[name])[0] for name in ("exact", "jpeg")]
        before = lib.generation()
        assert lib.forget_images(gone + [10**9]) == 2
        assert lib.generation() == before + 1 and not set(gone) & set(lib.vector_ids().tolist())
    report = search(work, model)
    assert group_of(report, originals[(1, 0)]) == {originals[(1, 0)], made["resize"], made["crop"], made["exif-rotate"]}
