"""The corpus builder end to end on a fake package tree (no Debian packages needed)."""

from __future__ import annotations

import csv
import importlib
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw

from trainer.corpora.__main__ import main as cli_main
from trainer.corpora.card import card_from
from trainer.corpora.build import MANIFEST_FIELDS, BuildConfig, run_build, slug
from trainer.corpora.reserved import reserved_reason
from trainer.corpora.spec import GroupSpec, Item, Source
from trainer.corpora.imaging import fit_object

# The module, not the function of the same name that trainer.corpora re-exports.
build_mod = importlib.import_module("trainer.corpora.build")


def _sprite(path: Path, seed: int, size: int = 40) -> None:
    rng = np.random.default_rng(seed)
    img = Image.new("RGBA", (size, size), (0, 0, 0, 0))
    draw = ImageDraw.Draw(img)
    for _ in range(3):
        x0, y0 = rng.integers(0, size // 2, 2)
        x1, y1 = rng.integers(size // 2, size, 2)
        draw.ellipse((int(x0), int(y0), int(x1), int(y1)), fill=tuple(int(c) for c in rng.integers(0, 255, 3)) + (255,))
    path.parent.mkdir(parents=True, exist_ok=True)
    img.save(path)


def _photo(path: Path, seed: int) -> None:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:240, 0:320]
    arr = np.stack([(xx * (1 + c) + yy * rng.integers(1, 4) + rng.integers(0, 255)) % 256 for c in range(3)], -1)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr.astype(np.uint8)).save(path, quality=90)


def _install(root: Path, package: str, files: list[Path], licence: str = "CC0-1.0") -> None:
    """Register ``files`` as installed by ``package`` in the fake dpkg database under ``root``."""
    info = root / "var/lib/dpkg/info"
    info.mkdir(parents=True, exist_ok=True)
    with open(root / "var/lib/dpkg/status", "a") as fh:
        fh.write(f"Package: {package}\nStatus: install ok installed\nVersion: 1.0-{len(package)}\n\n")
    (info / f"{package}.list").write_text("".join("/" + str(f.relative_to(root)) + "\n" for f in files))
    doc = root / "usr/share/doc" / package
    doc.mkdir(parents=True, exist_ok=True)
    (doc / "copyright").write_text(f"Format: https://example/dep5\n\nFiles: *\nCopyright: x\nLicense: {licence}\n")


@pytest.fixture
def fake_root(tmp_path):
    """Hedgewars-like themes, wallpapers and stamps, plus a planted card deck and an unowned file."""
    root = tmp_path / "root"
    themes = root / "usr/share/games/hedgewars/Data/Themes"
    hw = []
    for t, theme in enumerate(("Beach", "Cave", "Tiny")):
        for i in range(6 if theme != "Tiny" else 2):
            path = themes / theme / f"obj{i}.png"
            _sprite(path, 100 * t + i)
            hw.append(path)
    for i in range(5):  # a playing-card deck hidden inside an art package: must never be used
        path = themes / "Cards" / f"card{i}.png"
        _sprite(path, 900 + i)
        hw.append(path)
    _sprite(themes / "Beach" / "unowned.png", 999)  # on disk but in no package's file list
    _install(root, "hedgewars-data", hw, "GPL-2")
    walls = [root / f"usr/share/backgrounds/mate/nature/{n}.jpg" for n in ("Dune", "Storm", "Wood")]
    for i, w in enumerate(walls):
        _photo(w, i)
    _install(root, "mate-backgrounds", walls, "GPL-2+")
    stamps = [root / f"usr/share/tuxpaint/stamps/animals/s{i}.png" for i in range(4)]
    for i, s in enumerate(stamps):
        _sprite(s, 500 + i, 48)
    _install(root, "tuxpaint-stamps-default", stamps, "GPL-2")
    return root


def _config(root: Path, out: Path, **kw) -> BuildConfig:
    base = dict(out=out, root=root, size=48, max_per_group=5, min_per_group=4, seed=3,
                sources=("hedgewars", "wallpapers", "procedural"), procedural_styles=6, procedural_per_group=5)
    base.update(kw)
    return BuildConfig(**base)


def _rows(out: Path) -> list[dict]:
    with open(out / "manifest.csv", newline="") as fh:
        reader = csv.DictReader(fh)
        assert tuple(reader.fieldnames) == MANIFEST_FIELDS
        return list(reader)


def test_build_writes_manifest_groups_and_provenance(fake_root, tmp_path):
    out = tmp_path / "corpus"
    result = run_build(_config(fake_root, out))
    rows = _rows(out)
    assert result.images == len(rows) > 0
    groups: dict[str, list[dict]] = {}
    for row in rows:
        groups.setdefault(row["group"], []).append(row)
        path = Path(row["path"])
        assert path.is_absolute() and path.is_file() and out.resolve() in path.parents
        assert reserved_reason(row["path"]) is None
        with Image.open(path) as img:
            assert min(img.size) == 48
    assert all(4 <= len(members) <= 5 for members in groups.values())
    names = set(groups)
    assert {"hedgewars/theme-Beach", "hedgewars/theme-Cave"} <= names
    assert "hedgewars/theme-Tiny" not in names  # 2 images < min 4: dropped
    assert not any("Cards" in n for n in names)  # the planted deck
    assert not any("unowned" in r["path"] for r in rows)
    assert sum(n.startswith("wallpapers/") for n in names) == 3
    procedural = [r for r in rows if r["source"] == "procedural"]
    assert len({r["group"] for r in procedural}) == 6 and all(r["content"] for r in procedural)
    # The same content image appears under several styles: the "content trap" is measurable.
    styles_per_content: dict[str, set] = {}
    for r in procedural:
        styles_per_content.setdefault(r["content"], set()).add(r["group"])
    assert max(len(s) for s in styles_per_content.values()) >= 2
    assert all(not r["content"] for r in rows if r["source"] != "procedural")

    log = [json.loads(line) for line in (out / "build_log.jsonl").read_text().splitlines()]
    reasons = " ".join(entry["reason"] for entry in log)
    assert "reserved" in reasons and "too few" in reasons and "not installed by a listed package" in reasons

    report = json.loads((out / "sources.json").read_text())
    hw = report["sources"]["hedgewars"]
    assert hw["packages"]["hedgewars-data"]["licence"] == "GPL-2"
    assert hw["packages"]["hedgewars-data"]["version"] == "1.0-14"
    assert hw["groups"] == 2 and hw["images"] == sum(len(v) for k, v in groups.items() if k.startswith("hedgewars/"))
    assert report["totals"]["images"] == len(rows)

    card = card_from(out)
    assert f"{report['totals']['groups']} groups, {len(rows)} images" in card
    assert "| hedgewars | hedgewars-data | 1.0-14 | GPL-2 | 2 |" in card


def test_build_is_deterministic_and_rerun_reuses_files(fake_root, tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    run_build(_config(fake_root, a))
    run_build(_config(fake_root, b))
    rel = lambda out: [(str(Path(r["path"]).relative_to(out.resolve())), r["group"], r["content"]) for r in _rows(out)]
    assert rel(a) == rel(b)
    for (path_a, _, _), (path_b, _, _) in zip(rel(a), rel(b)):
        assert (a / path_a).read_bytes() == (b / path_b).read_bytes()
    before = {r["path"]: Path(r["path"]).stat().st_mtime_ns for r in _rows(a)}
    run_build(_config(fake_root, a))
    assert {r["path"]: Path(r["path"]).stat().st_mtime_ns for r in _rows(a)} == before
    run_build(_config(fake_root, a, seed=4))  # other settings: rebuilt, and stale groups pruned
    assert rel(a) != rel(b)
    on_disk = {str(p.resolve()) for p in (a / "images").rglob("*.png")}
    assert on_disk == {r["path"] for r in _rows(a)}


def test_limit_and_sources_select_a_quick_subset(fake_root, tmp_path):
    out = tmp_path / "quick"
    result = run_build(_config(fake_root, out, sources=("wallpapers",), limit=2))
    assert result.groups == 2 and set(result.per_source) == {"wallpapers"}
    with pytest.raises(ValueError, match="unknown source"):
        run_build(_config(fake_root, tmp_path / "x", sources=("nope",)))


def _fake_sources(root: Path, n_art: int, n_fonts: int, duplicate: bool = False):
    files = []
    for i in range(6):
        p = root / f"usr/share/art/{i}.png"
        _sprite(p, i)
        files.append(p)
    _install(root, "art-data", files)

    def groups(prefix, n):
        def discover(ctx):
            for g in range(n):
                items = []
                for i, f in enumerate(files):
                    # Each group draws its own variant; with duplicate=True group 1 repeats group 0.
                    variant = 0 if duplicate and g == 1 else g
                    items.append(Item(f"{f}#{variant}", f, lambda size, f=f, v=variant: fit_object(
                        Image.open(f).convert("RGBA").rotate(15 * v), size)))
                yield GroupSpec(f"{prefix}{g}", items)
        return discover

    return (Source("art", ("art-data",), "test", groups("a", n_art)),
            Source("fonts", ("art-data",), "test", groups("f", n_fonts)))


def test_fonts_capped_to_a_fifth_of_groups(tmp_path, monkeypatch):
    root = tmp_path / "root"
    monkeypatch.setattr(build_mod, "SOURCES", _fake_sources(root, n_art=8, n_fonts=10))
    result = run_build(BuildConfig(out=tmp_path / "out", root=root, size=32, max_per_group=4))
    assert result.per_source == {"art": {"groups": 8, "images": 32}, "fonts": {"groups": 2, "images": 8}}
    assert result.per_source["fonts"]["groups"] / result.groups <= 0.2


def test_duplicates_across_groups_are_dropped(tmp_path, monkeypatch):
    root = tmp_path / "root"
    monkeypatch.setattr(build_mod, "SOURCES", _fake_sources(root, n_art=2, n_fonts=0, duplicate=True))
    result = run_build(BuildConfig(out=tmp_path / "out", root=root, size=32, max_per_group=6))
    assert result.per_source["art"] == {"groups": 1, "images": 6}
    log = (tmp_path / "out/build_log.jsonl").read_text()
    assert "duplicate image" in log and "too few images after rendering" in log


def test_reserved_package_source_is_refused(tmp_path, monkeypatch):
    root = tmp_path / "root"
    art, _ = _fake_sources(root, 1, 0)
    deck = Source("deck", ("kdegames-card-data-kf5",), "test", art.discover)
    monkeypatch.setattr(build_mod, "SOURCES", (deck,))
    result = run_build(BuildConfig(out=tmp_path / "out", root=root, size=32))
    assert result.images == 0
    assert "reserved" in (tmp_path / "out/build_log.jsonl").read_text()


def test_slug_is_folder_safe_and_unique():
    assert slug("Danny Allen") != slug("Danny_Allen")
    assert slug("plain-name_1") == "plain-name_1"
    assert "/" not in slug("a/b") and slug("../..") not in ("", ".", "..")


def test_cli_build_and_check(fake_root, tmp_path, capsys):
    out = tmp_path / "cli"
    assert cli_main(["build", "--out", str(out), "--root", str(fake_root), "--sources", "wallpapers",
                     "--size", "48", "--limit", "1"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["groups"] == 1 and summary["images"] == 8
    assert cli_main(["check", str(out / "manifest.csv")]) == 0
    bad = tmp_path / "bad.csv"
    bad.write_text("path,group,source,content\n/usr/share/icons/hicolor/a.png,x,y,\n")
    assert cli_main(["check", str(bad)]) == 1


def test_groups_with_the_same_name_get_their_own_folders():
    specs = [GroupSpec("FreeSans"), GroupSpec("Other"), GroupSpec("FreeSans")]
    assert build_mod._unique_slugs(specs) == ["FreeSans", "Other", "FreeSans-2"]


def test_near_duplicates_within_a_group_are_dropped(tmp_path, monkeypatch):
    root = tmp_path / "root"
    art, _ = _fake_sources(root, 1, 0)
    frame = root / "usr/share/art/0.png"

    def discover(ctx):
        # Six "animation frames": the same sprite with a small dark mark moving across it.
        def frame_render(size, k):
            img = Image.open(frame).convert("RGBA")
            img.paste((0, 0, 0, 255), (8 + 3 * k, 18, 12 + 3 * k, 22))
            return fit_object(img, size)
        yield GroupSpec("frames", [Item(f"{frame}#{k}", frame, lambda s, k=k: frame_render(s, k)) for k in range(6)])

    monkeypatch.setattr(build_mod, "SOURCES", (Source("art", ("art-data",), "test", discover),))
    result = run_build(BuildConfig(out=tmp_path / "out", root=root, size=32))
    assert result.images == 0
    assert "near-duplicate" in (tmp_path / "out/build_log.jsonl").read_text()


def test_near_duplicate_looks_at_the_drawn_pixels_only():
    grey = np.full((16, 16), 128 / 255, dtype=np.float32)
    dot, bar = grey.copy(), grey.copy()
    dot[6:9, 6:9] = 0.0
    bar[2:14, 7] = 1.0
    # Mostly the same grey, yet different drawings: not near-duplicates.
    assert not build_mod.near_duplicate(dot, bar)
    nudged = dot.copy()
    nudged[6, 6] = 0.2
    assert build_mod.near_duplicate(dot, nudged)
