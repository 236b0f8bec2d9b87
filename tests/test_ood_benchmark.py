"""The icon/card benchmark builder (bench/ood_benchmark.py) on a fake package tree: no packages needed."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw

from bench.ood_benchmark import build_cards, build_icons, embed_scores, histogram_scores, package_licence
from bench.ood_sources import (
    CARD_DECKS, CARDS, ICON_THEMES, ICONS_DIR, Deck, IconTheme, find_icons, fit_centred, shared_icon_names,
)
from library_fixtures import tiny_model_file
from trainer.corpora.provenance import FileOwners
from trainer.corpora.reserved import is_reserved
from trainer.manifest import Sample, read_manifest, write_manifest

INDEX = """[Icon Theme]
Name={name}
Directories=48x48/apps,256x256/apps,scalable/apps,scalable/symbolic

[48x48/apps]
Size=48
Type=Fixed

[256x256/apps]
Size=256
Type=Fixed

[scalable/apps]
Size=16
MaxSize=512
Type=Scalable

[scalable/symbolic]
Size=16
Type=Scalable
"""


def _icon(path: Path, size: int, seed: int) -> None:
    """A drawing unique to ``seed``: random coloured blocks on transparency (no two alike)."""
    rng = np.random.default_rng(seed)
    img = Image.new("RGBA", (size, size), (0, 0, 0, 0))
    draw = ImageDraw.Draw(img)
    for _ in range(6):
        x, y = (int(v) for v in rng.integers(0, size - size // 4, 2))
        colour = tuple(int(c) for c in rng.integers(0, 256, 3)) + (255,)
        draw.rectangle([x, y, x + size // 4, y + size // 4], fill=colour)
    path.parent.mkdir(parents=True, exist_ok=True)
    img.save(path)


def _package(root: Path, package: str, files: list[Path]) -> None:
    """Register ``files`` as installed by ``package`` (the dpkg list and status the builder reads)."""
    info = root / "var/lib/dpkg/info"
    info.mkdir(parents=True, exist_ok=True)
    (info / f"{package}.list").write_text("".join(f"/{f.relative_to(root)}\n" for f in files))
    with open(root / "var/lib/dpkg/status", "a") as fh:
        fh.write(f"Package: {package}\nStatus: install ok installed\nVersion: 1.0\n\n")


def _theme(root: Path, folder: str, icons: dict[str, int], seed: int, unlisted: tuple[str, ...] = ()) -> list[Path]:
    """A theme folder with ``icons`` (file name -> size folder) drawn from ``seed``; returns listed files."""
    base = root / ICONS_DIR / folder
    base.mkdir(parents=True)
    (base / "index.theme").write_text(INDEX.format(name=folder))
    files = []
    for i, (name, size) in enumerate(sorted(icons.items())):
        path = base / f"{size}x{size}/apps/{name}"
        _icon(path, size, seed * 1000 + i)
        if name not in unlisted:
            files.append(path)
    return files


def test_every_configured_source_is_reserved_from_training():
    # The benchmark is only independent while the training corpus builder refuses all of it.
    paths = [f"/{ICONS_DIR}/{folder}/index.theme" for theme in ICON_THEMES for _, folder in theme.parts]
    paths += [f"/{deck.path}" for deck in CARD_DECKS]
    assert [p for p in paths if not is_reserved(p)] == []


def test_find_icons_prefers_the_largest_drawing_then_vectors_and_skips_symbolic(tmp_path):
    theme = tmp_path / "T"
    for rel in ("48x48/apps/a.png", "256x256/apps/a.png", "48x48/apps/b.png", "48x48/apps/c.png",
                "scalable/symbolic/d-symbolic.svg", "48x48/apps/e-symbolic.png"):
        (theme / rel).parent.mkdir(parents=True, exist_ok=True)
        (theme / rel).write_bytes(b"")
    (theme / "48x48/apps/b.svg").write_text("<svg/>")
    (theme / "index.theme").write_text(INDEX.format(name="T"))
    found = find_icons(theme, {"a", "b", "c", "d", "d-symbolic", "e", "e-symbolic"},
                       owned=lambda p: True)
    assert found["a"].path.parent.parent.name == "256x256" and found["a"].size == 256
    assert found["b"].vector and found["b"].path.name == "b.svg"
    assert "c" not in found  # a 48 px raster would be blown up into a blur
    assert not {"d", "d-symbolic", "e", "e-symbolic"} & set(found)


def test_icon_build_groups_by_theme_and_records_the_subject(tmp_path):
    root = tmp_path / "root"
    names = {"folder": ("gnome-fs-directory",), "printer": (), "computer": (), "user-home": ()}
    a = _theme(root, "Alpha", {"folder.png": 256, "printer.png": 256, "computer.png": 256, "user-home.png": 256}, 1)
    # Beta: a legacy name, one icon only as a small raster, one file no package lists.
    b = _theme(root, "Beta", {"gnome-fs-directory.png": 256, "printer.png": 48, "computer.png": 256,
                              "user-home.png": 256}, 2, unlisted=("user-home.png",))
    _package(root, "alpha-icon-theme", a)
    _package(root, "beta-icon-theme", b)
    # Gamma copies Alpha's drawings: a group the model could only "find" by chance.
    shutil.copytree(root / ICONS_DIR / "Alpha", root / ICONS_DIR / "Gamma")
    _package(root, "gamma-icon-theme", sorted((root / ICONS_DIR / "Gamma").rglob("*.png")))
    themes = tuple(IconTheme(n, ((f"{n.lower()}-icon-theme", n),)) for n in ("Alpha", "Beta", "Gamma"))

    domain = build_icons(tmp_path / "out", root, size=32, themes=themes, names=names, min_images=2)

    rows = {(s.group, s.content) for s in domain.rows}
    assert rows == {("Alpha", "folder"), ("Alpha", "printer"), ("Alpha", "computer"), ("Alpha", "user-home"),
                    ("Beta", "folder"), ("Beta", "computer")}
    assert {s.source for s in domain.rows if s.group == "Beta"} == {"beta-icon-theme"}
    assert set(domain.groups) == {"Alpha", "Beta"}
    assert any(s["group"] == "Gamma" and s["item"] is None for s in domain.skipped)
    img = Image.open(next(s.path for s in domain.rows if s.group == "Beta"))
    assert img.size == (32, 32) and img.mode == "RGBA"
    manifest = write_manifest(tmp_path / "out" / "manifest.csv", domain.rows)
    assert {(s.group, s.content) for s in read_manifest(manifest)} == rows


def test_shared_names_are_the_subjects_enough_themes_draw_themselves(tmp_path):
    root = tmp_path / "root"
    drawn = {"Alpha": {"folder.png": 256, "printer.png": 256, "camera.png": 256, "zebra.png": 256},
             # Beta draws the folder under its GNOME 2 name, the printer too small to use, and owns no zebra file.
             "Beta": {"gnome-fs-directory.png": 256, "printer.png": 48, "camera.png": 256, "zebra.png": 256},
             "Gamma": {"folder.png": 256, "printer.png": 256, "zebra-symbolic.png": 256}}
    for seed, (name, icons) in enumerate(drawn.items()):
        files = _theme(root, name, icons, seed, unlisted=("zebra.png",) if name == "Beta" else ())
        _package(root, f"{name.lower()}-icon-theme", files)
    themes = tuple(IconTheme(n, ((f"{n.lower()}-icon-theme", n),)) for n in drawn)
    owners = FileOwners([f"{n.lower()}-icon-theme" for n in drawn], root)

    names = shared_icon_names(themes, root / ICONS_DIR, owners.package_of, min_themes=2)

    assert names == {"folder": ("gnome-fs-directory",), "printer": ("gnome-dev-printer",), "camera-photo": ("camera",)}
    assert set(shared_icon_names(themes, root / ICONS_DIR, owners.package_of, min_themes=3)) == {"folder"}
    domain = build_icons(tmp_path / "out", root, size=32, themes=themes, names=names, min_images=1)
    assert {(s.group, s.content) for s in domain.rows} == {
        ("Alpha", "folder"), ("Alpha", "printer"), ("Alpha", "camera-photo"),
        ("Beta", "folder"), ("Beta", "camera-photo"), ("Gamma", "folder"), ("Gamma", "printer")}


def test_distinct_drawings_keep_one_of_a_themes_near_identical_icons(tmp_path):
    root = tmp_path / "root"
    files = _theme(root, "Alpha", {"folder.png": 256, "printer.png": 256, "user-home.png": 256}, 1)
    home = root / ICONS_DIR / "Alpha/256x256/apps/user-home.png"
    near = np.asarray(Image.open(root / ICONS_DIR / "Alpha/256x256/apps/folder.png")).copy()
    near[120:136, 120:136, :3] ^= 0xFF  # an emblem on the folder: the same drawing for a 16 px thumbnail
    Image.fromarray(near).save(home)
    _package(root, "alpha-icon-theme", files)
    themes = (IconTheme("Alpha", (("alpha-icon-theme", "Alpha"),)),)
    names = {"folder": (), "printer": (), "user-home": ()}

    every = build_icons(tmp_path / "every", root, size=32, themes=themes, names=names, min_images=1)
    distinct = build_icons(tmp_path / "distinct", root, size=32, themes=themes, names=names, min_images=1,
                           distinct=True)

    assert {s.content for s in every.rows} == {"folder", "printer", "user-home"}
    assert {s.content for s in distinct.rows} == {"folder", "printer"}
    assert distinct.skipped == [{"group": "Alpha", "item": "user-home", "reason": "near copy of folder in the same group"}]


@pytest.mark.skipif(shutil.which("rsvg-convert") is None, reason="needs rsvg-convert (librsvg2-bin)")
def test_card_build_cuts_each_card_out_of_the_deck_svg(tmp_path):
    root = tmp_path / "root"
    cells = []
    for row, suit in enumerate(("club", "diamond", "heart", "spade")):
        for col, rank in enumerate(("1", "2", "3", "4", "5", "6", "7", "8", "9", "10", "jack", "queen", "king")):
            shade = 40 + 15 * col
            cells.append(f'<g id="{suit}_{rank}"><rect x="{col * 30}" y="{row * 45}" width="25" height="40" '
                         f'fill="rgb({shade},{200 - shade},{60 * row})"/></g>')
    deck_file = root / "usr/share/aisleriot/cards/test.svg"
    deck_file.parent.mkdir(parents=True)
    deck_file.write_text('<svg xmlns="http://www.w3.org/2000/svg" width="400" height="200">'
                         + "".join(cells) + "</svg>")
    _package(root, "test-cards", [deck_file])
    deck = Deck("test-cards", "usr/share/aisleriot/cards/test.svg", "test", "{suit}_{rank}")

    domain = build_cards(tmp_path / "out", root, size=32, decks=(deck,), min_images=12)

    assert len(domain.rows) == len(CARDS) == 52 and domain.skipped == []
    assert {s.content for s in domain.rows} == {f"{suit}_{rank}" for suit, rank in CARDS}
    card = np.asarray(Image.open(next(s.path for s in domain.rows if s.content == "heart_7")), np.int16)
    drawn = card[..., 3] > 0
    # The card alone (the 7 of hearts' colour), framed like the corpus's objects: not the whole sheet.
    assert np.abs(card[drawn][:, :3] - (130, 70, 120)).max(1).mean() < 10
    assert 0.35 < drawn.mean() < 0.6


def test_histogram_baseline_scores_a_manifest(tmp_path):
    samples = []
    for g, colour in enumerate(((200, 30, 30), (30, 30, 200), (30, 200, 30))):
        for i in range(3):
            path = tmp_path / f"{g}_{i}.png"
            pixels = np.full((32, 32, 3), colour, np.uint8)
            pixels[: 8 * (i + 1)] = 255 - np.array(colour, np.uint8)
            Image.fromarray(pixels).save(path)
            samples.append((path, f"g{g}", f"subject{i}"))
    manifest = write_manifest(tmp_path / "m.csv", [Sample(str(p), g, None, "", c) for p, g, c in samples])
    scores = histogram_scores(manifest, workers=0)
    assert scores["metrics"]["queries"] == 9
    assert scores["metrics"]["P@1"] == 1.0
    assert scores["content_trap"]["measurable"] == 9 and scores["content_trap"]["trapped"] == 0


def test_the_acceptance_path_reports_its_content_trap_and_where_its_misses_go(tmp_path):
    """Three styles (a thin stripe's grey) over three subjects (the colour filling most of the picture)."""
    samples = []
    for g, grey in enumerate((40, 128, 215)):
        for i, colour in enumerate(((200, 30, 30), (30, 30, 200), (30, 200, 30))):
            path = tmp_path / f"{g}_{i}.png"
            pixels = np.full((40, 40, 3), colour, np.uint8)
            pixels[:6] = grey
            Image.fromarray(pixels).save(path)
            samples.append(Sample(str(path), f"style{g}", None, "", f"subject{i}"))
    manifest = write_manifest(tmp_path / "m.csv", samples)
    scores = embed_scores(manifest, str(tiny_model_file(tmp_path / "models", seed=2)), workers=0)
    assert scores["metrics"]["queries"] == 9 and scores["content_trap"]["measurable"] == 9
    wrong = round((1 - scores["metrics"]["P@1"]) * 9)
    assert wrong > 0  # the subject's colour outweighs the stripe for some queries
    assert sum(c["queries"] for c in scores["confusions"]) == wrong
    assert all(a < b and {a, b} <= {"style0", "style1", "style2"} for a, b in (c["groups"] for c in scores["confusions"]))
    searched = embed_scores(manifest, str(tiny_model_file(tmp_path / "models", seed=2)), workers=0, ranking="search")
    assert "ranked by search" in searched["subject"] and searched["metrics"]["queries"] == 9
    with pytest.raises(ValueError, match="unknown ranking"):
        embed_scores(manifest, str(tiny_model_file(tmp_path / "models", seed=2)), workers=0, ranking="plain")


def test_documented_install_line_names_every_package_the_build_reads():
    import bench.ood_benchmark as ood

    documented = " ".join(ood.__doc__.replace("\\", " ").split())
    assert ood.install_command() in documented


def test_licence_reads_stanzas_under_a_free_form_preamble(tmp_path):
    doc = tmp_path / "usr/share/doc"
    (doc / "stanzas").mkdir(parents=True)
    (doc / "stanzas/copyright").write_text("Debianized by someone; the artwork is not in the public domain.\n\n"
                                           "Files: *\nLicense: CC-BY-SA-3.0 or LGPL-3\n\n"
                                           "Files: a/*\nLicense: GPL-2+\n\nFiles: b/*\nLicense: GPL-2+\n")
    (doc / "prose").mkdir()
    (doc / "prose/copyright").write_text("License:\n\n   This package is free software; you can redistribute it under "
                                         "the terms of the GNU General Public License as published by the Free "
                                         "Software Foundation; either version 2 of the License, or (at your option) "
                                         "any later version.\n")
    _package(tmp_path, "prose", [])
    assert package_licence("stanzas", tmp_path) == "CC-BY-SA-3.0 or LGPL-3 / GPL-2+"
    # No stanza: the prose is read as the training corpus's data card reads it.
    assert package_licence("prose", tmp_path).startswith("GPL-2+")


def test_icons_keep_the_opacity_and_colour_of_their_soft_shadows():
    icon = Image.new("RGBA", (48, 48), (0, 0, 0, 0))
    icon.paste((200, 40, 40, 255), (8, 8, 40, 36))
    icon.paste((20, 20, 60, 96), (8, 36, 40, 44))  # the soft drop shadow themes draw under an icon
    out = np.asarray(fit_centred(icon, 48 * 4))
    shadow = out[(out[..., 3] > 0) & (out[..., 3] < 255) & (out[..., 0] < 100)]
    assert len(shadow) and np.median(shadow[:, 3]) == 96 and abs(np.median(shadow[:, 2]) - 60) <= 2
