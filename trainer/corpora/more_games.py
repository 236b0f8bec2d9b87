"""Game-art sources built after the first: Cataclysm: DDA's tilesets, FreeCol, Red Eclipse's textures, Warmux's maps,
PyChess's piece sets.

Cataclysm: Dark Days Ahead ships tilesets by different artists that draw the
*same* things (a zombie, a wall, a car seat) each in its own hand: the
closest thing in Debian main to the benchmark's "one subject in every style",
without being an icon set or a deck. A tileset's ``tile_config.json`` names
every sprite (``mon_zombie``, ``t_wall``, ``f_chair``, ``vp_seat``), so a group
is one tileset's sprites of one kind, each recorded with its sprite id as its
content. Tilesets borrow: "filler" and "incomplete" sheets are other tilesets'
art, and a sheet whose bytes occur in two tilesets is nobody's own, so both are
skipped. A tileset whose configuration cannot be read is skipped whole.
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
from PIL import Image

from trainer.corpora.games import PNG, first_frames, image_size, sprites, subfolders
from core.images import to_rgb
from trainer.corpora.imaging import RenderError, fit_scene, load_raster
from trainer.corpora.spec import RASTER, Box, Context, GroupSpec, Item, Source, files, object_svg, sheet_crop

CDDA_GFX = "usr/share/games/cataclysm-dda/gfx"
# Sheets drawn by others: borrowed from another tileset to fill gaps, or placeholders.
CDDA_BORROWED = ("filler*", "incomplete*", "fallback*")
# Not a hand of their own: ASCII letters of a font; Chibi Ultica combines MSXotto+'s creatures
# (363 of 404 shared creature sprites are pixel-identical) with Ultica's world; Neo Days
# redraws Retro Days at the same size in the same manner.
CDDA_SKIP_TILESETS = {"ASCIITileset", "ChibiUltica", "NeoDaysTileset"}
# Sprite id prefix -> group kind. Items have no prefix; ids of effects, overlays on the
# player's body and interface marks are not pictures of things.
CDDA_KINDS = {"mon_": "creatures", "t_": "terrain", "f_": "furniture", "vp_": "vehicle parts"}
CDDA_NOT_ITEMS = ("overlay_", "fd_", "tr_", "explosion", "lighting_", "cursor", "highlight", "footstep",
                  "player_", "npc_", "weather_", "animation", "unknown", "shadow", "corpse", "zone_",
                  "line_", "infrared", "square", "run_", "mutation_")
CDDA_MIN_VISIBLE = 0.05  # items are small in their cell


@dataclass(frozen=True)
class Sheet:
    path: Path
    sprite: tuple[int, int]  # width, height of one cell
    first: int  # global index of its first cell
    columns: int
    cells: int


def tileset_sheets(folder: Path, config: dict) -> list[Sheet]:
    """Every sheet of a tileset with the range of global sprite indices it holds, in config order."""
    info = (config.get("tile_info") or [{}])[0]
    default = (int(info.get("width", 32)), int(info.get("height", 32)))
    sheets, first = [], 0
    for entry in config.get("tiles-new", []):
        path = folder / entry["file"]
        size = (int(entry.get("sprite_width", default[0])), int(entry.get("sprite_height", default[1])))
        width, height = image_size(path) or (0, 0)
        columns = width // size[0] if min(size) > 0 else 0
        cells = columns * (height // size[1]) if columns else 0
        sheets.append(Sheet(path, size, first, columns, cells))
        first += cells
    return sheets


def sprite_box(sheets: list[Sheet], index: int) -> tuple[Sheet, Box] | None:
    """The sheet and pixel box of global sprite ``index``."""
    for sheet in sheets:
        if sheet.first <= index < sheet.first + sheet.cells:
            local = index - sheet.first
            x, y = (local % sheet.columns) * sheet.sprite[0], (local // sheet.columns) * sheet.sprite[1]
            return sheet, (x, y, x + sheet.sprite[0], y + sheet.sprite[1])
    return None


def first_sprite(value: object) -> int | None:
    """The first sprite index of a ``fg``/``bg`` value: an int, a list, or weighted ``{"sprite": ...}``."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, list) and value:
        return first_sprite(value[0])
    if isinstance(value, dict):
        return first_sprite(value.get("sprite"))
    return None


def sprite_kind(sprite_id: str) -> str | None:
    """The group kind of a sprite id; None for effects, overlays and interface marks."""
    for prefix, kind in CDDA_KINDS.items():
        if sprite_id.startswith(prefix):
            return kind
    if sprite_id.startswith(CDDA_NOT_ITEMS):
        return None
    return "items"


def shared_sheets(tilesets: list[Path]) -> set[Path]:
    """Sheet files whose bytes occur in more than one tileset."""
    holders: dict[str, list[Path]] = {}
    for folder in tilesets:
        for path in files(folder, PNG):
            holders.setdefault(hashlib.sha256(path.read_bytes()).hexdigest(), []).append(path)
    return {path for paths in holders.values() if len({p.parent for p in paths}) > 1 for path in paths}


def tileset_groups(folder: Path, shared: set[Path]) -> dict[str, list[Item]]:
    """A tileset's own sprites by kind, one per sprite (the first variant of the first id drawn with it).

    The sprite id is the item's content: other tilesets draw the same id, so an
    evaluation can count "same thing, other tileset" mistakes (the content trap).
    """
    try:
        config = json.loads((folder / "tile_config.json").read_text(encoding="utf-8", errors="replace"))
        sheets = tileset_sheets(folder, config)
    except (OSError, ValueError, TypeError, KeyError, IndexError, AttributeError):
        return {}
    usable = {s.path for s in sheets if s.cells and s.path not in shared
              and not any(fnmatch.fnmatch(s.path.name, p) for p in CDDA_BORROWED)}
    kinds: dict[str, list[Item]] = {}
    seen: set[tuple[Path, Box]] = set()
    for entry in (tile for block in config.get("tiles-new", []) for tile in block.get("tiles", [])):
        ids = entry.get("id")
        fg, bg = first_sprite(entry.get("fg")), first_sprite(entry.get("bg"))
        for sprite_id in ids if isinstance(ids, list) else [ids]:
            kind = sprite_kind(str(sprite_id))
            index = bg if fg is None and kind == "terrain" else fg  # terrain may be drawn as background only
            located = sprite_box(sheets, index) if kind and index is not None else None
            if located is None or located[0].path not in usable or (located[0].path, located[1]) in seen:
                continue
            sheet, box = located
            seen.add((sheet.path, box))
            kinds.setdefault(kind, []).append(
                Item(f"{sheet.path}@{box}", sheet.path, sheet_crop(sheet.path, box, CDDA_MIN_VISIBLE),
                     content=f"cdda:{sprite_id}"))
    return kinds


def discover_cataclysm(ctx: Context) -> Iterator[GroupSpec]:
    """One group per tileset and kind of thing (creatures, terrain, furniture, vehicle parts, items)."""
    gfx = ctx.path(CDDA_GFX)
    tilesets = [f for f in subfolders(gfx, CDDA_SKIP_TILESETS) if (f / "tile_config.json").is_file()]
    shared = shared_sheets(tilesets)
    for folder in tilesets:
        for kind, items in sorted(tileset_groups(folder, shared).items()):
            yield GroupSpec(f"{folder.name} {kind}", items)


# ------------------------------------------------------------------ FreeCol

FREECOL_IMAGES = "usr/share/games/freecol/default/resources/images"
# Kinds of picture drawn as sets; goods, bonus resources and coats of arms are icon-like
# emblems, founding fathers are reproductions of old portraits by many painters.
FREECOL_KINDS = ("units", "buildings", "settlements", "forest")


def discover_freecol(ctx: Context) -> Iterator[GroupSpec]:
    """Units, buildings, settlements and forests: one painted isometric style per kind.

    Only the base picture of each thing: ``name.sizeN.png`` files are the same
    picture at other sizes.
    """
    images = ctx.path(FREECOL_IMAGES)
    for kind in FREECOL_KINDS:
        paths = [p for p in files(images / kind, PNG) if ".size" not in p.name]
        yield GroupSpec(kind, sprites(first_frames(paths)))


# ------------------------------------------------------------ Red Eclipse

REDECLIPSE_DATA = "usr/share/games/redeclipse/data"
# Texture packs, each folder one artist's (the copyright file credits most of them by name); skyboxes,
# map shots, crosshairs, particles, weapons and interface pictures are left out.
REDECLIPSE_ARTISTS = ("appleflap", "dziq", "freezurbern", "jojo", "jwin", "luckystrike", "mikeplus64", "nieb",
                      "nobiax", "philipk", "snipergoth", "torley", "trak", "ulukai", "unnamed", "wicked")
# Maps beside a texture's colour map: normal, specular, height, glow, gloss ... as "_n", "-n", a letter
# after the number ("metal01n") or the whole name ("normal.png"); a colour map is named plainly or ends
# in "d" or "c" ("floor01a_d", "metal01d", "bricks_c"). Skybox faces ("_bk", "_up" ...) are skies, not
# materials. Maps named like colour maps are caught by their pixels (_texture).
_MATERIAL_MAP = re.compile(r"([_-](n|s|z|g|h|b|nm|local|add|spec|gloss|norm|normal|height|bump|mask|glow|alpha)"
                           r"|\d(n|s|z|g|h|nm)|^(normals?|norm|masks?|spec|specular|glow|gloss|height|bump)"
                           r"|_(bk|dn|ft|lf|rt|up))$", re.IGNORECASE)
# A grey picture is a specular, height or gloss map far more often than a colour map.
GREY_SATURATION = 0.02


def colour_maps(paths: list[Path]) -> list[Path]:
    """The colour (diffuse) maps among a texture pack's files."""
    return [p for p in paths if not _MATERIAL_MAP.search(p.stem)]


def _texture(path: Path) -> Callable[[int], Image.Image]:
    """A texture as a scene, refusing normal and grey maps that are named like colour maps."""
    def render(size: int) -> Image.Image:
        img = load_raster(path).convert("RGB")
        small = np.asarray(img.resize((16, 16)), np.float32).reshape(-1, 3)
        mean = small.mean(0)
        if mean[2] > 180 and abs(mean[0] - 128) < 40 and abs(mean[1] - 128) < 40:
            raise RenderError(f"{path}: a normal map")  # named like a colour map
        if ((small.max(1) - small.min(1)) / np.maximum(small.max(1), 1)).mean() < GREY_SATURATION:
            raise RenderError(f"{path}: grey, a specular or height map")
        return fit_scene(img, size)
    return render


def discover_redeclipse(ctx: Context) -> Iterator[GroupSpec]:
    """One group per texture artist's folder: its colour maps, each the whole picture."""
    data = ctx.path(REDECLIPSE_DATA)
    for artist in REDECLIPSE_ARTISTS:
        paths = colour_maps(files(data / artist, RASTER))
        yield GroupSpec(artist, [Item(str(p), p, _texture(p)) for p in paths])


# ------------------------------------------------------------------ warmux

WARMUX_MAPS = "usr/share/games/warmux/map"
# Per map: crops of its terrain (the drawn ground, objects and characters) and of its sky.
WARMUX_GROUND_CROPS = 6
WARMUX_SKY_CROPS = 2
# A terrain crop must be mostly drawn: the terrain picture is transparent wherever the sky shows.
WARMUX_MIN_DRAWN = 0.5


def warmux_map(config: Path) -> tuple[str, dict[str, str]] | None:
    """(author key, surface name -> file) of one map, from its ``config.xml``; None without an author.

    Maps are drawn by many contributors, and ``config.xml`` names each one's author; the nickname is
    the stable key (the same painter's name is spelt two ways across maps, their nickname once).
    """
    try:
        root = ET.parse(config).getroot()
    except (OSError, ET.ParseError):
        return None
    author = root.find("author")
    if author is None:
        return None
    nick, name = (author.findtext("nickname") or "").strip(), (author.findtext("name") or "").strip()
    key = nick if nick and nick.lower() != "none" else name
    if not key:
        return None
    surfaces = {el.get("name"): el.get("file") for el in root.iter("surface") if el.get("name") and el.get("file")}
    return key.casefold(), surfaces


@lru_cache(maxsize=2)
def _picture(path: Path) -> Image.Image:
    return load_raster(path)


def drawn_crop(path: Path, index: int, seed: int, min_drawn: float) -> Callable[[int], Image.Image]:
    """A random square crop (30-60 % of the shorter side) in which at least ``min_drawn`` is opaque."""
    def render(size: int) -> Image.Image:
        img = _picture(path)
        rng = np.random.default_rng([seed, index])
        for _ in range(30):
            side = int(min(img.size) * rng.uniform(0.3, 0.6))
            if side < size // 2:
                raise RenderError(f"{path}: too small to crop ({img.width}x{img.height})")
            x, y = int(rng.integers(0, img.width - side + 1)), int(rng.integers(0, img.height - side + 1))
            crop = img.crop((x, y, x + side, y + side))
            if np.count_nonzero(np.asarray(crop.getchannel("A")) > 127) >= min_drawn * side * side:
                return fit_scene(to_rgb(crop), size)
        raise RenderError(f"{path}: no mostly drawn crop in 30 tries")
    return render


def discover_warmux(ctx: Context) -> Iterator[GroupSpec]:
    """One group per map author: crops of the terrain and sky of each of their maps."""
    by_author: dict[str, list[Item]] = {}
    for config in sorted(ctx.path(WARMUX_MAPS).glob("*/config.xml")):
        found = warmux_map(config)
        if found is None:
            continue
        author, surfaces = found
        parts = [(surfaces.get("map"), WARMUX_GROUND_CROPS, WARMUX_MIN_DRAWN),
                 (surfaces.get("sky"), WARMUX_SKY_CROPS, 0.0)]
        for name, crops, min_drawn in parts:
            path = config.parent / name if name else None
            if path is None or not path.is_file():
                continue
            by_author.setdefault(author, []).extend(
                Item(f"{path}@crop{i}", path, drawn_crop(path, i, ctx.seed, min_drawn)) for i in range(crops))
    for author, items in sorted(by_author.items()):
        yield GroupSpec(author, items)


# ------------------------------------------------------------------ chess pieces

PYCHESS_PIECES = "usr/share/pychess/pieces"
# The twelve pieces every set draws: colour (w, b) and piece (king, queen, rook, bishop, knight, pawn).
CHESS_PIECES = tuple(colour + piece for colour in "wb" for piece in "kqrbnp")


def discover_chess_pieces(ctx: Context) -> Iterator[GroupSpec]:
    """One group per piece set that draws each of the twelve pieces in a file of its own.

    Chess piece sets are the one subject drawn again and again by different hands (font designers,
    Wikipedia's Cburnett, lichess's artists), so every picture's content is its piece and the
    content trap counts "same piece, other set". Sets drawn in one sheet, or missing a piece, are
    left out rather than cut up by guesswork: the group must be the whole set.
    """
    for folder in subfolders(ctx.path(PYCHESS_PIECES)):
        paths = [folder / f"{piece}.svg" for piece in CHESS_PIECES]
        if all(p.is_file() for p in paths):
            yield GroupSpec(folder.name, [Item(str(p), p, object_svg(p), content=p.stem) for p in paths])


MORE_GAME_SOURCES: tuple[Source, ...] = (
    Source("cataclysm", ("cataclysm-dda-data",),
           "Community tilesets that draw the same creatures, terrain, furniture, vehicle parts and items each "
           "in its own hand: one group per tileset and kind (borrowed and shared sheets left out).",
           discover_cataclysm),
    Source("freecol", ("freecol",),
           "Units, buildings, settlements and forests: one painted isometric style per kind.", discover_freecol),
    Source("redeclipse", ("redeclipse-data",),
           "Texture packs, one group per artist's folder: an artist's materials share their palette, "
           "wear and way of painting.", discover_redeclipse),
    Source("warmux", ("warmux-data",),
           "Battle maps, one group per author their config.xml names: crops of the terrain and sky each "
           "painter drew, map after map.", discover_warmux),
    Source("chess-pieces", ("pychess",),
           "Chess piece sets, one group per set: the same twelve pieces drawn by each set's designer.",
           discover_chess_pieces),
)
