"""Corpus pieces that need no installed packages: the reserved guard, provenance, parsing, imaging."""

from __future__ import annotations

import gzip
from pathlib import Path

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
    "kdegames-card-data-kf5", "lskat", "xskat", "pokerth", "fonts-noto-color-emoji", "fonts-twemoji",
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
    "/usr/share/freedroidrpg/data/graphics/skill_icons/BlueScreen.png",
    "/usr/share/games/game/ui-icons/attack.png",
    "/usr/share/games/supertuxkart/data/karts/tux/tux_icon.png",
    "/usr/share/games/0ad/mods/public/public.zip/art/textures/ui/session/icons/cancel.png",
    # Icon fonts: emoji and dingbat families, as installed and as a built corpus names their groups.
    "/usr/share/fonts/truetype/noto/NotoColorEmoji.ttf",
    "data/corpus/images/fonts/Head-Ding_Maker_BRK-d4c156/000.png",
    "data/corpus/images/fonts/Line_Dings_BRK-bb5e12/000.png",
    "fonts/ITC Zapf Dingbats/ZapfDingbats.ttf",
    "fonts/Wingdings/wingding.ttf",
])
def test_reserved_paths_rejected(path):
    assert reserved_reason(path)


@pytest.mark.parametrize("name", [
    "openclipart-svg", "hedgewars-data", "wesnoth-1.16-data", "fonts-dejavu-core", "kapman",
    "/usr/share/games/hedgewars/Data/Themes/Art/plant1.png", "/usr/share/openclipart/svg/animals/cat.svg",
    "/usr/share/kmahjongglib/backgrounds/summerfield.svgz",
    # Words that contain "ding" are not dingbats.
    "/usr/share/games/widelands/tribes/buildings/farm.png", "fonts/Yielding_BRK/000.png", "fonts/Wedding_Text/a.png",
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


def test_fit_object_keeps_the_opacity_and_colour_of_soft_pixels():
    sprite = Image.new("RGBA", (40, 40), (0, 0, 0, 0))
    sprite.paste((200, 40, 40, 255), (10, 10, 30, 30))
    sprite.paste((20, 20, 200, 128), (10, 30, 30, 34))  # a half-transparent shadow under the square
    out = np.asarray(fit_object(sprite, 60))  # 24 px tall: small enough to be enlarged whole (x2)
    shadow = out[(out[..., 2] == 200)]
    assert len(shadow) and (shadow[:, 3] == 128).all() and (shadow[:, :3] == (20, 20, 200)).all()


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
    from trainer.corpora.sources import discover_kde
    from trainer.corpora.spec import Context

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


# ------------------------------------------------------------- game art

def _png(path, size=(40, 40), colour=(200, 40, 40, 255)):
    """A small opaque sprite at ``path`` (parents created)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGBA", size, colour).save(path)
    return path


def test_first_frames_keeps_one_file_per_animation(tmp_path):
    from trainer.corpora.games import first_frames

    names = ["walk-0.png", "walk-1.png", "coin_07.png", "coin_08.png", "17.png", "18.png", "barrel.png"]
    kept = [p.name for p in first_frames(tmp_path / n for n in names)]
    assert kept == ["17.png", "18.png", "barrel.png", "coin_07.png", "walk-0.png"]


def test_dep5_credits_last_match_wins_and_skips_teams(tmp_path):
    from trainer.corpora.games import credited_holder, dep5_credits

    copyright_file = tmp_path / "copyright"
    copyright_file.write_text(
        "Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/\n\n"
        "Files: *\nCopyright: 2005 The Team <t@x.org>\nLicense: GPL-3+\n\n"
        "Files: images/*\nCopyright: 2014-2016 Jane Painter <jane@x.org>\nLicense: CC-BY-SA-4.0\n\n"
        "Files:\n images/ship/hai?spider*\n images/outfit/gun*\nCopyright: Max K (https://example.org/max)\n"
        "License: CC-BY-SA-4.0\n\n"
        "Files: ./images/planet/*\nCopyright: Bob and others\nLicense: CC0-1.0\n")
    credits = dep5_credits(copyright_file)
    assert [c.holder for c in credits] == ["Jane Painter", "Max K"]
    assert credited_holder("images/ship/hai spider.png", credits) == "Max K"
    assert credited_holder("images/ship/aerie.png", credits) == "Jane Painter"
    assert credited_holder("images/planet/mars.png", credits) == "Jane Painter"  # "and others" is no one hand
    assert credited_holder("data/map.txt", credits) is None


def test_endless_sky_groups_are_artist_and_kind(tmp_path):
    from trainer.corpora.games import discover_endless_sky
    from trainer.corpora.spec import Context

    base = tmp_path / "usr/share/games/endless-sky/images"
    for rel in ("ship/aerie.png", "ship/archon-0.png", "ship/archon-1.png", "ship/hai spider.png",
                "outfit/gun.png", "land/beach.png"):
        _png(base / rel)
    doc = tmp_path / "usr/share/doc/endless-sky-data"
    doc.mkdir(parents=True)
    (doc / "copyright").write_text("Format: x\n\nFiles: images/*\nCopyright: Jane Painter\nLicense: CC-BY-SA-4.0\n\n"
                                   "Files: images/ship/hai?spider*\nCopyright: Max K\nLicense: CC-BY-SA-4.0\n")
    groups = {g.name: sorted(Path(i.key).name for i in g.items) for g in discover_endless_sky(Context(root=tmp_path))}
    assert groups == {"Jane Painter outfits": ["gun.png"], "Jane Painter ships": ["aerie.png", "archon-0.png"],
                      "Max K ships": ["hai spider.png"]}


def test_widelands_pose_takes_first_cell_of_largest_sheet(tmp_path):
    from trainer.corpora.games import widelands_pose

    unit = tmp_path / "lumberjack"
    _png(unit / "idle_1.png", (30, 40))
    _png(unit / "idle_4.png", (120, 160))
    _png(unit / "idle_4_pc.png", (120, 160))
    (unit / "init.lua").write_text('spritesheets = {\n idle = {\n  frames = 10,\n  rows = 4,\n  columns = 3,\n'
                                   '  hotspot = { 5, 21 }\n },\n walk = { rows = 2, columns = 2 }\n}\n')
    item = widelands_pose(unit)
    assert item.key.endswith("idle_4.png@(0, 0, 40, 40)")
    assert item.render(64).size == (64, 64)
    rock = tmp_path / "rocks1"
    _png(rock / "rocks1.png")
    (rock / "init.lua").write_text('animations = {\n idle = {\n  basename = "rocks1",\n  hotspot = {38, 82}\n },\n}\n')
    assert Path(widelands_pose(rock).key).name == "rocks1.png"
    walker = tmp_path / "baker"
    _png(walker / "walk_e_2.png", (80, 40))
    (walker / "init.lua").write_text("spritesheets = {\n walk = {\n  rows = 1,\n  columns = 2,\n"
                                     "  directional = true\n }\n}\n")
    assert widelands_pose(walker).key.endswith("walk_e_2.png@(0, 0, 40, 40)")
    (tmp_path / "empty").mkdir()
    assert widelands_pose(tmp_path / "empty") is None


def test_widelands_groups_buildings_and_workers_per_tribe(tmp_path):
    from trainer.corpora.games import discover_widelands
    from trainer.corpora.spec import Context

    tribes = tmp_path / "usr/share/games/widelands/data/tribes"
    still = 'animations = {\n idle = {\n  hotspot = {1, 1}\n }\n}\n'
    for rel in ("workers/empire/baker", "workers/empire/miner", "buildings/productionsites/empire/bakery",
                "buildings/militarysites/empire/tower", "workers/frisians/baker"):
        _png(tribes / rel / "idle.png")
        (tribes / rel / "init.lua").write_text(still)
    groups = {g.name: len(g.items) for g in discover_widelands(Context(root=tmp_path)) if g.items}
    assert groups == {"empire buildings": 2, "empire workers": 2, "frisians workers": 1}


def test_atlas_and_tileset_definitions_parse(tmp_path):
    from trainer.corpora.games import flare_tileset, freedroid_atlas

    atlas = tmp_path / "atlas.txt"
    atlas.write_text("* obstacles_atlas1.png size 2048 2048\niso_pod_s_0001.png 0 0 30 40 off -1 -3\n"
                     "iso_pod_s_0002.png 30 0 30 40 off -1 -3\niso_tree.png 60 0 20 50 off 0 0\n")
    assert freedroid_atlas(atlas) == [(tmp_path / "obstacles_atlas1.png", (0, 0, 30, 40)),
                                      (tmp_path / "obstacles_atlas1.png", (60, 0, 80, 50))]
    definition = tmp_path / "tileset_cave.txt"
    definition.write_text("\nimg=images/tilesets/tileset_cave.png\n\ntile=16,61,652,64,32,32,16\ntile=17,1,2,3,4,0,0\n")
    sheet = tmp_path / "images/tilesets/tileset_cave.png"
    assert flare_tileset(definition, tmp_path) == [(sheet, (61, 652, 125, 684)), (sheet, (1, 2, 4, 6))]


def test_teeworlds_cuts_climate_sheets_into_tiles(tmp_path):
    from trainer.corpora.games import TEEWORLDS_CELL, discover_teeworlds
    from trainer.corpora.spec import Context

    mapres = tmp_path / "usr/share/games/teeworlds/data/mapres"
    sheet = Image.new("RGBA", (2 * TEEWORLDS_CELL, TEEWORLDS_CELL), (0, 0, 0, 0))
    sheet.paste((10, 200, 10, 255), (0, 0, TEEWORLDS_CELL, TEEWORLDS_CELL))  # one drawn cell, one empty
    mapres.mkdir(parents=True)
    sheet.save(mapres / "grass_main.png")
    sheet.save(mapres / "generic_unhookable.png")
    _png(mapres / "mountains.png")
    groups = list(discover_teeworlds(Context(root=tmp_path)))
    assert [(g.name, len(g.items)) for g in groups] == [("mapres grass", 2)]
    first, second = groups[0].items
    assert first.render(64).size == (64, 64)
    with pytest.raises(RenderError):
        second.render(64)


def test_zip_sources_read_members_and_skip_reserved_ones(tmp_path):
    import io
    import zipfile

    from trainer.corpora.games import discover_0ad, discover_warzone
    from trainer.corpora.spec import Context

    def png_bytes():
        buffer = io.BytesIO()
        Image.new("RGBA", (32, 32), (0, 90, 200, 255)).save(buffer, format="PNG")
        return buffer.getvalue()

    zad = tmp_path / "usr/share/games/0ad/mods/public/public.zip"
    zad.parent.mkdir(parents=True)
    with zipfile.ZipFile(zad, "w") as zf:
        zf.writestr("simulation/data/civs/athen.json", "{}")
        for rel in ("units/athen_hoplite.png", "structures/athen_temple.png", "units/rome_legionary.png"):
            zf.writestr(f"art/textures/ui/session/portraits/{rel}", png_bytes())
        for rel in ("temperate/grass_01.png", "temperate/grass_01_norm.png", "temperate/icons/x.png"):
            zf.writestr(f"art/textures/terrain/types/{rel}", png_bytes())
    groups = {g.name: sorted(i.key.rsplit("/", 1)[1] for i in g.items) for g in discover_0ad(Context(root=tmp_path))}
    assert groups == {"athen portraits": ["athen_hoplite.png", "athen_temple.png"],
                      "terrain temperate": ["grass_01.png"]}
    wz = tmp_path / "usr/share/games/warzone2100/base.wz"
    wz.parent.mkdir(parents=True)
    with zipfile.ZipFile(wz, "w") as zf:
        zf.writestr("texpages/tertilesc1hw-128/tile-00.png", png_bytes())
        zf.writestr("texpages/tertilesc1hw-64/tile-00.png", png_bytes())
    tiles = [g for g in discover_warzone(Context(root=tmp_path)) if g.items]
    assert [(g.name, len(g.items)) for g in tiles] == [("tiles arizona", 1)]
    assert tiles[0].items[0].render(64).size == (64, 64)


def test_megaglest_and_supertux_pick_one_picture_per_thing(tmp_path):
    from trainer.corpora.games import discover_megaglest, discover_supertux
    from trainer.corpora.spec import Context

    faction = tmp_path / "usr/share/games/megaglest/techs/megapack/factions/magic"
    _png(faction / "units/archmage/images/archmage.bmp")
    _png(faction / "units/archmage/images/archmage_particle.bmp")
    _png(faction / "upgrades/staff/images/staff.bmp")
    groups = {g.name: [Path(i.key).name for i in g.items] for g in discover_megaglest(Context(root=tmp_path))}
    assert groups == {"magic portraits": ["archmage.bmp"]}  # upgrade symbols are an icon set
    creatures = tmp_path / "usr/share/games/supertux2/images/creatures"
    for rel in ("snail/walk-left-0.png", "snail/walk-left-1.png", "snail/left-0.png", "tux/big.png", "owl/fly-0.png"):
        _png(creatures / rel)
    found = {g.name: [i.key.split("creatures/")[1] for i in g.items] for g in discover_supertux(Context(root=tmp_path))}
    assert found["creatures"] == ["owl/fly-0.png", "snail/left-0.png"]  # Tux himself is the player, not a creature set


def test_stellarium_keeps_free_cultures_and_counts_copied_drawings_once(tmp_path):
    from trainer.corpora.games import discover_stellarium
    from trainer.corpora.spec import Context

    cultures = tmp_path / "usr/share/stellarium/skycultures"
    specs = {"western": ("CC BY-SA 4.0 International Public License + Free Art License", ["leo", "orion"]),
             "aaa_copy": ("CC BY-SA 4.0 International Public License", ["leo", "own"]),
             "closed": ("CC BY-NC-ND 4.0 International Public License", ["bear"])}
    for name, (licence, drawings) in specs.items():
        folder = cultures / name
        for i, drawing in enumerate(drawings):
            # The copy's "leo" is byte-identical to Western's; every other drawing differs.
            colour = (10, 10, 10, 255) if drawing == "leo" else (20 * len(name), 40 * i, 90, 255)
            _png(folder / f"{drawing}.png", colour=colour)
        (folder / "info.ini").write_text(f"[info]\nname = {name}\nlicense = {licence}\n")
        (folder / "constellationsart.fab").write_text(
            "".join(f"X{i} {d}.png 1 2 3 4 5 6 7 8 9\n" for i, d in enumerate(drawings)))
    groups = {g.name: [Path(i.key).name for i in g.items] for g in discover_stellarium(Context(root=tmp_path))}
    assert groups == {"sky culture western": ["leo.png", "orion.png"], "sky culture aaa_copy": ["own.png"]}


def test_fonts_come_only_from_the_listed_packages(tmp_path):
    import shutil

    from trainer.corpora.sources import discover_fonts
    from trainer.corpora.spec import Context

    system_font = Path("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf")
    if not system_font.is_file():
        pytest.skip("needs fonts-dejavu-core for a real font file")
    listed = tmp_path / "usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"
    pulled_in = tmp_path / "usr/share/fonts/truetype/other/Other.ttf"  # a game's dependency, not a font source
    for path in (listed, pulled_in):
        path.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(system_font, path)
    info = tmp_path / "var/lib/dpkg/info"
    info.mkdir(parents=True)
    (info / "fonts-dejavu-core.list").write_text("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf\n")
    groups = list(discover_fonts(Context(root=tmp_path)))
    assert [(g.name, {i.origin for i in g.items}) for g in groups] == [("DejaVu Sans", {listed})]


def test_procedural_recipes_are_distinct(tmp_path):
    from trainer.corpora.sources import discover_procedural
    from trainer.corpora.spec import Context

    _png(tmp_path / "usr/share/tuxpaint/stamps/animals/cat.png")
    # Among the first 1200 seeds, 16 draw a recipe (mostly a preset dither) that an earlier seed drew already.
    groups = list(discover_procedural(Context(root=tmp_path, procedural_styles=1200)))
    keys = [g.name.split("-", 1)[1] for g in groups]
    assert len(groups) == 1200 and len(set(keys)) == 1200
    assert int(groups[-1].name[:4]) > 1200  # the repeats were replaced by later seeds


def test_game_sources_are_listed_and_installable():
    from trainer.corpora.card import install_command
    from trainer.corpora.games import GAME_SOURCES
    from trainer.corpora.more_games import MORE_GAME_SOURCES

    games = GAME_SOURCES + MORE_GAME_SOURCES
    names = {s.name for s in SOURCES}
    assert {s.name for s in games} <= names and len(names) == len(SOURCES)
    line = install_command()
    assert all(p in line.split() for s in games for p in s.packages)
