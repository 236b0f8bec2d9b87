"""The later builds' game sources, on small file trees made here (no packages needed)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from trainer.corpora.imaging import RenderError
from trainer.corpora.more_games import (
    CDDA_GFX, CHESS_PIECES, FREECOL_IMAGES, PYCHESS_PIECES, REDECLIPSE_DATA, WARMUX_GROUND_CROPS, WARMUX_MAPS,
    WARMUX_SKY_CROPS, colour_maps, discover_cataclysm, discover_chess_pieces, discover_freecol, discover_redeclipse,
    discover_warmux, first_sprite, sprite_kind,
)
from trainer.corpora.spec import Context


def _sheet(path: Path, cells: list[tuple[int, int, int]], cell: int = 8, columns: int = 2) -> None:
    """A sheet of ``len(cells)`` cells; a cell's colour (0, 0, 0) leaves it transparent."""
    rows = -(-len(cells) // columns)
    img = Image.new("RGBA", (columns * cell, rows * cell), (0, 0, 0, 0))
    for i, colour in enumerate(cells):
        if colour != (0, 0, 0):
            x, y = (i % columns) * cell, (i // columns) * cell
            img.paste(colour + (255,), (x, y, x + cell, y + cell))
    path.parent.mkdir(parents=True, exist_ok=True)
    img.save(path)


def _tileset(folder: Path, sheets: list[tuple[str, list]], tiles: list[list[dict]]) -> None:
    for name, cells in sheets:
        _sheet(folder / name, cells)
    config = {"tile_info": [{"width": 8, "height": 8}],
              "tiles-new": [{"file": name, "tiles": block} for (name, _), block in zip(sheets, tiles)]}
    (folder / "tile_config.json").write_text(json.dumps(config))


@pytest.mark.parametrize("value, index", [
    (3, 3), ([5, 6], 5), ([{"weight": 1, "sprite": 7}, {"weight": 1, "sprite": 8}], 7),
    ([{"weight": 1, "sprite": [9, 10]}], 9), (None, None), ([], None), (True, None),
])
def test_first_sprite_reads_every_form_of_fg(value, index):
    assert first_sprite(value) == index


def test_sprite_kinds_leave_out_effects_and_overlays():
    assert [sprite_kind(i) for i in ("mon_zombie", "t_wall", "f_chair", "vp_seat", "katana",
                                     "overlay_male_katana", "fd_fire", "cursor", "corpse")] == [
        "creatures", "terrain", "furniture", "vehicle parts", "items", None, None, None, None]


def test_cataclysm_groups_are_tileset_and_kind_without_borrowed_or_shared_sheets(tmp_path):
    gfx = tmp_path / CDDA_GFX
    red, green, blue, grey = (200, 10, 10), (10, 200, 10), (10, 10, 200), (90, 90, 90)
    # Global sprite indices run on across sheets: tiles.png holds 0-3, filler.png 4-5, shared.png 6-7.
    _tileset(gfx / "Alpha", [("tiles.png", [red, green, blue, (0, 0, 0)]), ("filler.png", [grey, grey]),
                             ("shared.png", [(1, 2, 3), (4, 5, 6)])],
             [[{"id": "mon_zombie", "fg": 0}, {"id": ["t_wall", "t_wall_b"], "bg": [1]},
               {"id": "f_chair", "fg": [{"weight": 1, "sprite": 2}]}, {"id": "katana", "fg": 3},
               {"id": "overlay_male_katana", "fg": 2}],
              [{"id": "mon_dog", "fg": 4}], [{"id": "mon_cat", "fg": 6}]])
    _tileset(gfx / "Beta", [("shared.png", [(1, 2, 3), (4, 5, 6)])], [[{"id": "mon_cat", "fg": 0}]])
    _tileset(gfx / "ASCIITileset", [("tiles.png", [red, green])], [[{"id": "mon_zombie", "fg": 0}]])
    (gfx / "Broken").mkdir()
    (gfx / "Broken" / "tile_config.json").write_text('{"tiles-new": [{"file": ')  # cut short: skipped whole
    _tileset(gfx / "Zero", [("tiles.png", [red])], [[{"id": "mon_zombie", "fg": 0}]])
    config = json.loads((gfx / "Zero" / "tile_config.json").read_text())
    config["tile_info"] = [{"width": 0, "height": 8}]
    (gfx / "Zero" / "tile_config.json").write_text(json.dumps(config))  # no cells, no division by zero

    groups = {g.name: g for g in discover_cataclysm(Context(root=tmp_path))}
    assert sorted((name, len(g.items)) for name, g in groups.items()) == [
        ("Alpha creatures", 1), ("Alpha furniture", 1), ("Alpha items", 1), ("Alpha terrain", 1)]
    assert groups["Alpha creatures"].items[0].key.endswith("tiles.png@(0, 0, 8, 8)")
    assert groups["Alpha terrain"].items[0].key.endswith("tiles.png@(8, 0, 16, 8)")  # from bg
    assert [groups[n].items[0].content for n in ("Alpha creatures", "Alpha terrain")] == ["cdda:mon_zombie", "cdda:t_wall"]
    assert groups["Alpha furniture"].items[0].render(64).size == (64, 64)
    with pytest.raises(RenderError):  # "katana" points at an empty cell
        groups["Alpha items"].items[0].render(64)


def test_freecol_takes_one_picture_per_thing_per_kind(tmp_path):
    images = tmp_path / FREECOL_IMAGES
    for rel in ("units/civilian/farmer.png", "units/civilian/farmer.size2.png", "units/naval/caravel.png",
                "buildings/church.png", "goods/cotton.png"):
        _sheet(images / rel, [(120, 80, 40)])
    groups = {g.name: sorted(Path(i.key).name for i in g.items) for g in discover_freecol(Context(root=tmp_path))}
    assert groups == {"units": ["caravel.png", "farmer.png"], "buildings": ["church.png"],
                      "settlements": [], "forest": []}


def test_red_eclipse_keeps_colour_maps_of_each_artists_folder(tmp_path):
    names = ["brick01.png", "brick01_n.png", "brick01_s.png", "metal01d.jpg", "metal01n.jpg", "floor01a_d.png",
             "floor01_local.png", "normal.png", "masks.png", "arid_bk.jpg", "barlight-n.jpg", "bricks_c.png"]
    kept = [p.name for p in colour_maps([Path(n) for n in names])]
    assert kept == ["brick01.png", "metal01d.jpg", "floor01a_d.png", "bricks_c.png"]

    folder = tmp_path / REDECLIPSE_DATA / "trak"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (64, 96, 3), dtype=np.uint8)).save(folder / "brick1.png")
    Image.new("RGB", (64, 64), (128, 128, 255)).save(folder / "panel2.png")  # a normal map, named plainly
    Image.new("RGB", (64, 64), (90, 90, 90)).save(folder / "grime3.png")  # grey: a specular map
    (tmp_path / REDECLIPSE_DATA / "skyboxes").mkdir()
    Image.new("RGB", (64, 64), (20, 40, 200)).save(tmp_path / REDECLIPSE_DATA / "skyboxes" / "sky_up.png")
    groups = {g.name: g.items for g in discover_redeclipse(Context(root=tmp_path))}
    assert [Path(i.key).name for i in groups["trak"]] == ["brick1.png", "grime3.png", "panel2.png"]
    assert all(not items for name, items in groups.items() if name != "trak")
    picture, grey, normal = groups["trak"]
    assert picture.render(64).size == (96, 64)  # the whole picture, shorter side set
    for item in (grey, normal):
        with pytest.raises(RenderError):
            item.render(64)


def _warmux_map(folder: Path, author: str, nickname: str | None, ground: str = "map.png") -> None:
    folder.mkdir(parents=True)
    nick = f"<nickname>{nickname}</nickname>" if nickname is not None else ""
    (folder / "config.xml").write_text(
        f'<?xml version="1.0" encoding="iso-8859-1"?><resources><author><name>{author}</name>{nick}</author>'
        f'<surface name="sky" file="sky.jpg"/><surface name="map" file="{ground}"/>'
        '<surface name="preview" file="preview.jpg"/></resources>', encoding="latin-1")
    terrain = np.zeros((300, 400, 4), np.uint8)
    terrain[150:, :] = (120, 90, 40, 255)  # ground in the lower half, sky (transparent) above
    Image.fromarray(terrain, "RGBA").save(folder / ground)
    Image.new("RGB", (400, 300), (90, 150, 230)).save(folder / "sky.jpg")


def test_warmux_groups_maps_by_author_nickname_and_crops_drawn_terrain(tmp_path):
    maps = tmp_path / WARMUX_MAPS
    _warmux_map(maps / "farm", "CARRE Anthony", "yeKcim")
    _warmux_map(maps / "ninja", "Anthony CARR\u00c9", "YeKcim")  # one painter, two spellings of the name
    _warmux_map(maps / "moon", "Michael PRAGER", "None")  # no nickname: the name is the key
    _warmux_map(maps / "lonely", "", None)  # no author: skipped
    (maps / "broken").mkdir()
    (maps / "broken" / "config.xml").write_text("<resources><author>")
    groups = {g.name: g.items for g in discover_warmux(Context(root=tmp_path))}
    per_map = WARMUX_GROUND_CROPS + WARMUX_SKY_CROPS
    assert sorted(groups) == ["michael prager", "yekcim"]
    assert len(groups["yekcim"]) == 2 * per_map and len(groups["michael prager"]) == per_map
    for item in groups["yekcim"]:
        img = np.asarray(item.render(96), dtype=np.int16)
        assert img.shape[:2] == (96, 96)
        if item.origin.name == "map.png":
            # at least half of every terrain crop is the drawn ground, not the grey the sky becomes
            assert (np.abs(img - (120, 90, 40)).sum(2) < 30).mean() >= 0.45
    assert len({i.key for i in groups["yekcim"]}) == 2 * per_map


def _piece_set(folder: Path, pieces, fill: str) -> None:
    folder.mkdir(parents=True)
    for piece in pieces:
        (folder / f"{piece}.svg").write_text(
            '<svg xmlns="http://www.w3.org/2000/svg" width="45" height="45">'
            f'<circle cx="22" cy="22" r="{10 + len(piece)}" fill="{fill}" stroke="#000"/></svg>')


def test_chess_piece_sets_are_groups_of_twelve_pieces_with_the_piece_as_content(tmp_path):
    sets = tmp_path / PYCHESS_PIECES
    _piece_set(sets / "alpha", CHESS_PIECES + ("we", "be"), "#c00")  # extra fairy pieces are not used
    _piece_set(sets / "kosal", CHESS_PIECES, "#0a0")
    _piece_set(sets / "partial", CHESS_PIECES[:-1], "#00c")  # a set without its black pawn is not the whole set
    (sets / "sheet").mkdir()
    (sets / "sheet" / "sheet.svg").write_text('<svg xmlns="http://www.w3.org/2000/svg"/>')  # one sheet: skipped
    groups = {g.name: g.items for g in discover_chess_pieces(Context(root=tmp_path))}
    assert sorted(groups) == ["alpha", "kosal"]
    assert [i.content for i in groups["kosal"]] == list(CHESS_PIECES) == ["wk", "wq", "wr", "wb", "wn", "wp",
                                                                          "bk", "bq", "br", "bb", "bn", "bp"]
    img = np.asarray(groups["alpha"][0].render(64).convert("RGBA"), dtype=np.int16)
    assert img.shape == (64, 64, 4)
    drawn = img[..., 3] > 200
    assert drawn.mean() > 0.1 and (np.abs(img[drawn][:, :3] - (204, 0, 0)).sum(1) < 30).mean() > 0.5
