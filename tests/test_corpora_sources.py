"""Corpus pieces that need no installed packages: the reserved guard, provenance, parsing, imaging."""

from __future__ import annotations

import gzip

import numpy as np
import pytest
from PIL import Image

from trainer.corpora import imaging
from trainer.corpora.imaging import RenderError, fit_object, fit_scene, pixel_digest
from trainer.corpora.provenance import FileOwners, debian_licence, debian_package
from trainer.corpora.reserved import is_reserved, reserved_reason
from trainer.corpora.sources import KDE_GAMES, SOURCES, freeciv_tiles, svg_creator, svg_sprite_ids


@pytest.mark.parametrize("name", [
    "adwaita-icon-theme", "hicolor-icon-theme", "breeze-icon-theme", "oxygen-icons5", "papirus-icon-theme",
    "gnome-icon-theme", "tango-icon-theme", "dmz-cursor-theme", "kpat", "aisleriot", "pysolfc", "pysolfc-cardsets",
    "kdegames-card-data-kf5", "lskat", "xskat", "pokerth",
])
def test_reserved_packages_rejected(name):
    assert is_reserved(name), name


@pytest.mark.parametrize("path", [
    "/usr/share/icons/hicolor/48x48/apps/app.png",
    "/usr/share/icons/Adwaita/scalable/places/folder.svg",
    "/home/u/.icons/mytheme/a.png",
    "/usr/share/carddecks/svg-nicu-ornamental/1_club.svg",
    "/usr/share/games/pysolfc/cardset-2000/01c.gif",
    "/usr/share/aisleriot/cards/bonded.svg",
    "/usr/share/openclipart/svg/recreation/games/cards/ace.svg",
    "/usr/share/openclipart/svg/recreation/playing_card_ace.svg",
    "/usr/share/kpat/themes/x.svgz",
    "/usr/share/kmahjongglib/tilesets/jade.svgz",
])
def test_reserved_paths_rejected(path):
    assert reserved_reason(path)


@pytest.mark.parametrize("name", [
    "openclipart-svg", "hedgewars-data", "wesnoth-1.16-data", "fonts-dejavu-core", "kapman",
    "/usr/share/games/hedgewars/Data/Themes/Art/plant1.png", "/usr/share/openclipart/svg/animals/cat.svg",
    "/usr/share/kmahjongglib/backgrounds/summerfield.svgz",
])
def test_ordinary_art_allowed(name):
    assert reserved_reason(name) is None


def test_no_configured_source_or_package_is_reserved():
    for source in SOURCES:
        assert reserved_reason(source.name) is None, source.name
        for package in source.packages:
            assert reserved_reason(package) is None, (source.name, package)
    for game in KDE_GAMES:
        assert reserved_reason(f"/usr/share/{game}/themes/default.svgz") is None, game


def test_debian_licence_machine_readable_and_free_form(tmp_path):
    dep5 = tmp_path / "dep5"
    dep5.write_text("Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/\n\n"
                    "Files: *\nCopyright: someone\nLicense: GPL-2+\n\nFiles: art/*\nLicense: CC-BY-SA-3.0\n\n"
                    "License: GPL-2+\n text\n")
    assert debian_licence(dep5) == "GPL-2+ / CC-BY-SA-3.0"
    free = tmp_path / "free"
    free.write_text("This package is free software; you can redistribute it under the terms of the\n"
                    "GNU General Public License as published by the FSF; either version 2 of the License,\n"
                    "or (at your option) any later version.\n")
    assert debian_licence(free).startswith("GPL-2+")
    pd = tmp_path / "pd"
    pd.write_text("Copyright:\n creative commons Public Domain Dedication\n")
    assert debian_licence(pd).startswith("public-domain")
    assert "no copyright file" in debian_licence(tmp_path / "missing")
    unversioned = tmp_path / "unversioned"
    unversioned.write_text("You are free to distribute this software under the terms of the GNU General\n"
                           "Public License.  On Debian systems, the complete text ...\n")
    assert debian_licence(unversioned).startswith("GPL (version not stated)")
    sentence = tmp_path / "sentence"
    sentence.write_text("Format: x\n\nFiles: *\nLicense: OFL-1.1\n\nFiles: debian/*\n"
                        "License: The Debian packaging is distributed under the same license as the fonts\n")
    assert debian_licence(sentence) == "OFL-1.1"


def test_debian_package_reads_status_and_owners(tmp_path):
    (tmp_path / "var/lib/dpkg/info").mkdir(parents=True)
    (tmp_path / "var/lib/dpkg/status").write_text(
        "Package: art-data\nStatus: install ok installed\nVersion: 1.2-3\n\n"
        "Package: gone-data\nStatus: deinstall ok config-files\nVersion: 0.1\n")
    (tmp_path / "usr/share/doc/art-data").mkdir(parents=True)
    (tmp_path / "usr/share/doc/art-data/copyright").write_text("Format: x\n\nFiles: *\nLicense: CC0-1.0\n")
    (tmp_path / "var/lib/dpkg/info/art-data.list").write_text("/usr/share/art\n/usr/share/art/a.png\n")
    pkg = debian_package("art-data", tmp_path)
    assert (pkg.version, pkg.licence, pkg.installed) == ("1.2-3", "CC0-1.0", True)
    assert not debian_package("gone-data", tmp_path).installed
    owners = FileOwners(("art-data",), tmp_path)
    assert owners.package_of(tmp_path / "usr/share/art/a.png") == "art-data"
    assert owners.package_of(tmp_path / "usr/share/art/b.png") is None


def test_svg_sprite_ids_skip_automatic_ids_defs_layers_and_parts(tmp_path):
    svg = ('<svg xmlns="http://www.w3.org/2000/svg" xmlns:inkscape="http://www.inkscape.org/namespaces/inkscape">'
           '<defs><linearGradient id="shine"/><g id="hidden_def"/></defs>'
           '<g id="layer1" inkscape:groupmode="layer">'
           '<g id="ghost"><path id="ghost_eye" d="M0 0h1v1z"/></g>'
           '<rect id="BLOCK_1" width="4" height="4"/><path id="path1234" d="M0 0h2v2z"/><g id="g87"/>'
           '</g></svg>')
    path = tmp_path / "theme.svgz"
    path.write_bytes(gzip.compress(svg.encode()))
    assert svg_sprite_ids(path) == ["ghost", "BLOCK_1"]
    broken = tmp_path / "broken.svg"
    broken.write_text("<svg><g id='a'>")
    with pytest.raises(RenderError):
        svg_sprite_ids(broken)


def test_svg_creator_reads_dc_creator(tmp_path):
    path = tmp_path / "a.svg"
    path.write_text('<svg><metadata><rdf:RDF><cc:Work><dc:creator><cc:Agent>\n<dc:title>  Jane\n Doe </dc:title>'
                    '</cc:Agent></dc:creator></cc:Work></rdf:RDF></metadata></svg>')
    assert svg_creator(path) == "Jane Doe"
    (tmp_path / "c.svg").write_text("<svg><dc:creator><dc:title>Martin K &lt;mk@x.cz&gt;</dc:title></dc:creator></svg>")
    assert svg_creator(tmp_path / "c.svg") == "Martin K <mk@x.cz>"
    (tmp_path / "b.svg").write_text("<svg/>")
    assert svg_creator(tmp_path / "b.svg") is None


def test_freeciv_tiles_from_spec(tmp_path):
    spec = tmp_path / "units.spec"
    spec.write_text('[file]\ngfx = "set/units"\n\n[grid_main]\nx_top_left = 1\ny_top_left = 2\ndx = 10\n'
                    'dy = 8\npixel_border = 1\n\ntiles = { "row", "column", "tag"\n  0, 0, "u.a"\n  1, 2, "u.b"\n}\n')
    assert freeciv_tiles(spec) == [("units.png", (1, 2, 11, 10)), ("units.png", (23, 11, 33, 19))]


def test_fit_object_centres_and_keeps_pixel_art_crisp():
    sprite = Image.new("RGBA", (40, 40), (0, 0, 0, 0))
    sprite.paste((255, 0, 0, 255), (10, 10, 18, 30))  # an 8x20 red bar in a transparent margin
    out = fit_object(sprite, 96)
    assert out.size == (96, 96) and out.mode == "RGBA"
    alpha = np.asarray(out.getchannel("A"))
    ys, xs = np.nonzero(alpha)
    assert abs((ys.min() + ys.max()) / 2 - 47.5) <= 1 and abs((xs.min() + xs.max()) / 2 - 47.5) <= 1
    assert set(np.unique(alpha)) <= {0, 255}  # nearest-neighbour: no blurred edge
    assert ys.max() - ys.min() + 1 == 80  # 20 px enlarged by the whole factor 4
    with pytest.raises(RenderError):
        fit_object(Image.new("RGBA", (20, 20), (0, 0, 0, 0)), 64)


def test_fit_scene_sets_shorter_side_and_limits_aspect():
    assert fit_scene(Image.new("RGB", (400, 300)), 96).size == (128, 96)
    assert fit_scene(Image.new("RGB", (1000, 100)), 64).size == (128, 64)


def test_pixel_digest_same_pixels_same_key():
    a = Image.fromarray(np.random.default_rng(0).integers(0, 255, (48, 48, 3), dtype=np.uint8))
    assert pixel_digest(a) == pixel_digest(a.copy())
    assert pixel_digest(a) != pixel_digest(a.transpose(Image.Transpose.FLIP_LEFT_RIGHT))


def test_render_svg_without_renderer_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setattr(imaging, "RSVG", "rsvg-convert-not-installed-here")
    (tmp_path / "a.svg").write_text("<svg xmlns='http://www.w3.org/2000/svg' width='4' height='4'/>")
    with pytest.raises(RenderError, match="librsvg2-bin"):
        imaging.render_svg(tmp_path / "a.svg", 32)


def test_artist_key_merges_spellings_and_drops_placeholders():
    from trainer.corpora.sources import artist_key

    assert artist_key("Jean-Victor Balin (balin_j@epita.fr)") == artist_key("Jean-VIctor Balin")
    assert artist_key("Patricia FIDI") == artist_key("Patricia Fidi")
    assert artist_key("mailto:ralf@ark.in-berlin.de") == artist_key("ralf@ark.in-berlin.de")
    assert artist_key("Martin K <mk@x.cz>") == artist_key("Martin K")
    for placeholder in ("Anonymous", "HASH(0x89c79d4)", "unknown", "   "):
        assert artist_key(placeholder) is None


def test_kde_groups_are_themes_not_files(tmp_path):
    from trainer.corpora.sources import Context, discover_kde

    svg = '<svg xmlns="http://www.w3.org/2000/svg"><rect id="{}" width="4" height="4"/></svg>'
    files = {"kgoldrunner/themes/egypt/actors.svg": "hero", "kgoldrunner/themes/egypt/set.svg": "brick",
             "kfourinline/grafix/default.svg": "piece", "kfourinline/grafix/yellow.svg": "piece"}
    for rel, ident in files.items():
        path = tmp_path / "usr/share" / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(svg.format(ident))
    groups = {g.name: sorted(i.key.rsplit("#", 1)[1] for i in g.items) for g in discover_kde(Context(root=tmp_path))}
    assert groups == {"kgoldrunner-egypt": ["brick", "hero"], "kfourinline-grafix-default": ["piece"],
                      "kfourinline-grafix-yellow": ["piece"]}
