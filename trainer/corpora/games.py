"""Game art from Debian main: one group per tileset, faction, tribe, theme or credited artist.

A game's art is made to match *within* a set (one tileset, one faction's
units, one tribe's buildings, one artist's contributions) while the set's
members show different things (a tree, a wall, a well), which is what a
style group needs. Every adapter below picks such sets and, inside them, one
image per thing: animation frames, player-colour masks, size variants and UI
chrome are left out, and game icon folders are never read (the reserved guard
rejects ``icons`` folders anyway).

Where a package's DEP-5 ``copyright`` file credits artists file by file
(Naev, Endless Sky), the group is one credited artist's work of one kind
(ship sprites, outfit pictures, planets): one hand, one kind of picture.
"""

from __future__ import annotations

import fnmatch
import re
import zipfile
from dataclasses import dataclass
from functools import lru_cache
from io import BytesIO
from pathlib import Path
from typing import Callable, Iterable, Iterator

from PIL import Image

from trainer.corpora.imaging import RenderError, fit_object, fit_scene, load_raster
from trainer.corpora.reserved import reserved_reason
from trainer.corpora.spec import (
    RASTER, Box, Context, GroupSpec, Item, Source, files, object_raster, sheet_crop,
)

PNG = {".png"}
# A trailing animation-frame or variant number: "walk-3", "coin_07", "archon+1", "portrait_0002".
# A name that is only a number ("17.png", a tile) is not a frame.
_FRAME_NUMBER = re.compile(r"(?<=\D)[-_+=~^ ]?\d+$")


# ------------------------------------------------------------ shared pieces

def sprites(paths: Iterable[Path], min_visible: float = 0.03) -> list[Item]:
    """Object items, one per file."""
    return [Item(str(p), p, object_raster(p, min_visible)) for p in paths]


def scenes(paths: Iterable[Path]) -> list[Item]:
    """Scene items (screenshots, loading pictures): the whole picture, shorter side set."""
    return [Item(str(p), p, _scene(p)) for p in paths]


def _scene(path: Path) -> Callable[[int], Image.Image]:
    return lambda size: fit_scene(load_raster(path), size)


def first_frames(paths: Iterable[Path]) -> list[Path]:
    """One file per animation: frames "walk-0 .. walk-7" of one thing would be near-duplicates."""
    seen: set[tuple[Path, str]] = set()
    kept = []
    for path in sorted(paths):
        key = (path.parent, _FRAME_NUMBER.sub("", path.stem))
        if key not in seen:
            seen.add(key)
            kept.append(path)
    return kept


def subfolders(folder: Path, skip: Iterable[str] = ()) -> list[Path]:
    """Child folders of ``folder`` (sorted), without the names in ``skip``."""
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if p.is_dir() and p.name not in set(skip))


def folder_groups(parent: Path, prefix: str, suffixes: set[str] = PNG, skip: Iterable[str] = ()) -> Iterator[GroupSpec]:
    """One group per child folder of ``parent`` (a theme, tileset or world), first frames only."""
    for folder in subfolders(parent, skip):
        yield GroupSpec(f"{prefix}{folder.name}", sprites(first_frames(files(folder, suffixes))))


def one_per_folder(folders: Iterable[Path], suffixes: set[str] = PNG, prefer: str = "") -> list[Path]:
    """One picture per thing (a creature, an item, a unit), each thing being a folder.

    The file whose name matches ``prefer`` comes first, then the sorted order;
    the rest of the folder are poses and frames of the same thing.
    """
    chosen = []
    for folder in folders:
        candidates = files(folder, suffixes)
        if candidates:
            chosen.append(min(candidates, key=lambda p: (not (prefer and re.search(prefer, p.name)), str(p))))
    return chosen


def grid_cells(sheet: Path, cell: int) -> list[Item]:
    """Every ``cell`` x ``cell`` square of a tile sheet (empty cells fail to render and are skipped)."""
    width, height = image_size(sheet) or (0, 0)
    return [Item(f"{sheet}@{x},{y}", sheet, sheet_crop(sheet, (x, y, x + cell, y + cell)))
            for y in range(0, height - cell + 1, cell) for x in range(0, width - cell + 1, cell)]


def image_size(path: Path) -> tuple[int, int] | None:
    """Width and height from the file header; None for an unreadable file (its items are simply not offered)."""
    try:
        with Image.open(path) as img:
            return img.size
    except (OSError, ValueError):
        return None


def atlas_items(entries: Iterable[tuple[Path, Box]]) -> list[Item]:
    """Named pieces of a packed atlas, as objects."""
    return [Item(f"{sheet}@{box}", sheet, sheet_crop(sheet, box, 0.05)) for sheet, box in entries]


# ---------------------------------------------------- credited artists (DEP-5)

@dataclass(frozen=True)
class Credit:
    patterns: tuple[str, ...]
    holder: str


_YEARS = re.compile(r"(©|\(c\)|copyright|\d{4}(\s*[-–,]\s*\d{4})*,?)", re.IGNORECASE)
# Teams of unnamed people, and agencies whose pictures are photographs or scans, are no one hand.
_NOT_ONE_HAND = re.compile(r"and others|see authors|contributors|debian|various|unnamed|\b(nasa|esa|eso|"
                           r"library of congress|us army|department of)\b", re.IGNORECASE)


def dep5_credits(copyright_file: Path) -> list[Credit]:
    """The ``Files:`` stanzas of a DEP-5 copyright file that name one holder for specific files.

    The catch-all ``Files: *`` stanza names the project, not an artist, and
    "X and others" is no single hand, so both are left out.
    """
    try:
        text = copyright_file.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return []
    credits = []
    for stanza in re.split(r"\n\s*\n", text):
        fields = dict(re.findall(r"^([A-Za-z-]+):[ \t]*((?:.*)(?:\n[ \t]+.*)*)", stanza, re.MULTILINE))
        patterns = tuple(p.removeprefix("./").replace("//", "/") for p in fields.get("Files", "").split())
        holder = _holder(fields.get("Copyright", ""))
        if patterns and patterns != ("*",) and holder:
            credits.append(Credit(patterns, holder))
    return credits


def _holder(copyright_field: str) -> str | None:
    """First holder of a Copyright field: no years, no address; None for teams of unnamed people."""
    first = copyright_field.strip().splitlines()[0] if copyright_field.strip() else ""
    name = re.sub(r"<[^>]*>|\([^)]*\)|https?://\S+", " ", first)
    name = re.sub(r"\s+", " ", _YEARS.sub(" ", name)).strip(" ,.;:")
    if not name or _NOT_ONE_HAND.search(first) or name.lower() in {"none", "unknown", "public domain"}:
        return None
    return name


def credited_holder(rel: str, credits: list[Credit]) -> str | None:
    """The holder DEP-5 gives for ``rel``: the *last* stanza whose pattern matches wins."""
    holder = None
    for credit in credits:
        if any(fnmatch.fnmatchcase(rel, p.replace("[", "[[]")) for p in credit.patterns):
            holder = credit.holder
    return holder


def artist_groups(base: Path, copyright_file: Path, kinds: dict[str, str]) -> Iterator[GroupSpec]:
    """One group per (credited artist, kind of picture); ``kinds`` maps a folder under ``base`` to a label."""
    credits = dep5_credits(copyright_file)
    groups: dict[str, list[Path]] = {}
    for folder, label in kinds.items():
        for path in first_frames(files(base / folder, RASTER)):
            holder = credited_holder(str(path.relative_to(base)), credits)
            if holder:
                groups.setdefault(f"{holder} {label}", []).append(path)
    for name, paths in sorted(groups.items()):
        yield GroupSpec(name, sprites(paths))


# ------------------------------------------------------------- widelands

def _lua_block(text: str, name: str) -> str | None:
    """The ``name = { ... }`` table in a Lua file (braces balanced), or None."""
    match = re.search(rf"\b{re.escape(name)}\s*=\s*\{{", text)
    if not match:
        return None
    depth, start = 0, match.end() - 1
    for i in range(start, len(text)):
        depth += {"{": 1, "}": -1}.get(text[i], 0)
        if depth == 0:
            return text[start:i + 1]
    return None


_SCALE = re.compile(r"_(0\.5|1|2|4)(?=_0+$|$)")


def _scale(path: Path) -> float:
    match = _SCALE.search(path.stem)
    return float(match.group(1)) if match else 1.0


def widelands_pose(folder: Path) -> Item | None:
    """A Widelands unit, building or plant at rest: the first frame of its idle animation.

    ``init.lua`` lists ``animations`` (one file per frame or a still) and
    ``spritesheets`` (rows x columns frames in one file); idle is preferred,
    else the first animation listed. The largest scale (``_4`` over ``_1``) is
    taken so the picture is not blown up from 1x pixels.
    """
    try:
        text = (folder / "init.lua").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    tables = [(table, sheet) for table, sheet in ((_lua_block(text, "animations"), False),
                                                 (_lua_block(text, "spritesheets"), True)) if table]
    for table, sheet in tables:
        if re.search(r"\bidle\s*=\s*\{", table):
            return _widelands_frame(folder, "idle", _lua_block(table, "idle"), sheet)
    for table, sheet in tables:
        first = re.search(r"\{\s*(\w+)\s*=\s*\{", table)
        if first:
            return _widelands_frame(folder, first.group(1), _lua_block(table, first.group(1)), sheet)
    return None


def _widelands_frame(folder: Path, name: str, block: str, sheet: bool) -> Item | None:
    """First frame of animation ``name`` (its Lua table is ``block``), at the largest scale on disk."""
    basename = re.search(r'basename\s*=\s*"([\w-]+)"', block)
    stem = (basename.group(1) if basename else name) + ("_e" if re.search(r"directional\s*=\s*true", block) else "")
    pattern = rf"{re.escape(stem)}(_(0\.5|1|2|4))?(_0+)?"
    found = [p for p in folder.glob(f"{stem}*.png") if re.fullmatch(pattern, p.stem)]
    if not found:
        return None
    path = max(sorted(found), key=_scale)
    if not sheet:
        return Item(str(path), path, object_raster(path))
    grid = {k: int(v) for k, v in re.findall(r"\b(rows|columns)\s*=\s*(\d+)", block)}
    size = image_size(path)
    if not {"rows", "columns"} <= grid.keys() or size is None:
        return None
    width, height = size
    box = (0, 0, width // grid["columns"], height // grid["rows"])
    return Item(f"{path}@{box}", path, sheet_crop(path, box, 0.03))


def _poses(folder: Path) -> list[Item]:
    """One pose per entity below ``folder`` (an entity is a folder holding an ``init.lua``)."""
    entities = sorted(p.parent for p in folder.rglob("init.lua")) if folder.is_dir() else []
    return [item for item in map(widelands_pose, entities) if item]


def discover_widelands(ctx: Context) -> Iterator[GroupSpec]:
    """Buildings and workers per tribe, terrains per climate, critters and each kind of plant or rock."""
    data = ctx.path("usr/share/games/widelands/data")
    tribes = data / "tribes"
    for tribe in subfolders(tribes / "workers"):
        yield GroupSpec(f"{tribe.name} buildings",
                        [i for kind in subfolders(tribes / "buildings") for i in _poses(kind / tribe.name)])
        yield GroupSpec(f"{tribe.name} workers", _poses(tribe))
    world = data / "world"
    yield GroupSpec("critters", _poses(world / "critters"))
    for kind in subfolders(world / "immovables"):
        yield GroupSpec(f"world {kind.name}", _poses(kind))
    for climate in subfolders(world / "terrains"):
        yield GroupSpec(f"terrain {climate.name}", sprites(one_per_folder(subfolders(climate)), 0.3))


# ------------------------------------------------------------- megaglest

def discover_megaglest(ctx: Context) -> Iterator[GroupSpec]:
    """Unit portraits per faction; ground textures per tileset.

    Upgrades are left out: their pictures are symbols on a button, an icon set.
    """
    base = ctx.path("usr/share/games/megaglest")
    for faction in subfolders(base / "techs/megapack/factions"):
        portraits = [p for unit in subfolders(faction / "units")
                     for p in files(unit / "images", {".bmp", ".png", ".jpg"}) if p.stem == unit.name]
        yield GroupSpec(f"{faction.name} portraits", sprites(portraits))
    for tileset in subfolders(base / "tilesets"):
        yield GroupSpec(f"tileset {tileset.name}", sprites(files(tileset / "textures", {".bmp", ".png", ".tga"}), 0.3))


# --------------------------------------------------------------- supertux

def discover_supertux(ctx: Context) -> Iterator[GroupSpec]:
    """Tiles per world, decals and backgrounds per theme, one picture per creature and per object."""
    images = ctx.path("usr/share/games/supertux2/images")
    yield from folder_groups(images / "tiles", "tiles ", skip=("auxiliary", "test", "lightmap"))
    yield from folder_groups(images / "decal", "decal ", skip=("explanations",))  # tutorial billboards
    yield from folder_groups(images / "background", "background ")
    for kind in ("creatures", "objects"):
        yield GroupSpec(kind, sprites(one_per_folder(subfolders(images / kind, ("tux",)), prefer=r"(left-)?0\.png$")))


# ------------------------------------------------------------ freedroidrpg

def freedroid_atlas(atlas: Path) -> list[tuple[Path, Box]]:
    """(sheet, box) of each named picture in a FreedroidRPG ``atlas.txt``, first animation frame only.

    ``* sheet.png size W H`` starts a sheet; ``name x y w h off dx dy`` is one picture in it.
    """
    pieces: dict[str, tuple[Path, Box]] = {}
    sheet = None
    for line in atlas.read_text(encoding="utf-8", errors="replace").splitlines():
        head = re.match(r"\*\s+(\S+)\s+size", line)
        piece = re.match(r"(\S+)\s+(\d+)\s+(\d+)\s+(\d+)\s+(\d+)", line)
        if head:
            sheet = atlas.parent / Path(head.group(1)).name
        elif piece and sheet is not None:
            x, y, w, h = (int(piece.group(i)) for i in range(2, 6))
            pieces.setdefault(_FRAME_NUMBER.sub("", Path(piece.group(1)).stem), (sheet, (x, y, x + w, y + h)))
    return list(pieces.values())


def discover_freedroidrpg(ctx: Context) -> Iterator[GroupSpec]:
    """Droid portraits, item pictures and obstacles: each set is rendered and lit alike.

    Floor tiles are left out: most are flat colour diamonds that show no style.
    """
    gfx = ctx.path("usr/share/freedroidrpg/data/graphics")
    yield GroupSpec("droids", sprites(p for p in files(gfx / "droids", {".jpg", ".png"}) if p.stem == "portrait_0001"))
    yield GroupSpec("items", sprites(p for p in files(gfx / "items", PNG) if p.name == "inv_image.png"))
    atlas = gfx / "obstacles/atlas.txt"
    if atlas.is_file():
        yield GroupSpec("obstacles", atlas_items(freedroid_atlas(atlas)))


# ---------------------------------------------------------- naev, endless sky

NAEV_KINDS = {"commodity": "commodities", "outfit/store": "outfits", "planet/space": "planets",
              "planet/exterior": "landscapes", "portraits": "portraits", "loading": "ship paintings",
              "bkg": "stars and nebulae"}
ENDLESS_SKY_KINDS = {"ship": "ships", "outfit": "outfits", "planet": "planets", "thumbnail": "thumbnails"}


def discover_naev(ctx: Context) -> Iterator[GroupSpec]:
    """One group per credited artist and kind of picture (the copyright file credits Naev's art file by file)."""
    base = ctx.path("usr/share/naev")
    yield from artist_groups(base, ctx.path("usr/share/doc/naev-data/copyright"),
                             {f"dat/gfx/{k}": v for k, v in NAEV_KINDS.items()})


def discover_endless_sky(ctx: Context) -> Iterator[GroupSpec]:
    """One group per credited artist and kind of picture (ships, outfits, planets ...)."""
    base = ctx.path("usr/share/games/endless-sky")
    yield from artist_groups(base, ctx.path("usr/share/doc/endless-sky-data/copyright"),
                             {f"images/{k}": v for k, v in ENDLESS_SKY_KINDS.items()})


# ----------------------------------------------------- tile-sheet 2D games

TEEWORLDS_CELL = 64  # mapres sheets are 16 x 16 tiles of 64 px


def discover_teeworlds(ctx: Context) -> Iterator[GroupSpec]:
    """One group per map climate (grass, desert, jungle, winter): the tiles cut from its sheets."""
    mapres = ctx.path("usr/share/games/teeworlds/data/mapres")
    climates: dict[str, list[Item]] = {}
    for sheet in files(mapres, PNG):
        climate, _, part = sheet.stem.partition("_")
        if part in {"main", "doodads", "deathtiles", "unhookables", "unhookable"} and climate != "generic":
            climates.setdefault(climate, []).extend(grid_cells(sheet, TEEWORLDS_CELL))
    for climate, items in sorted(climates.items()):
        yield GroupSpec(f"mapres {climate}", items)


def discover_blobwars(ctx: Context) -> Iterator[GroupSpec]:
    """Tiles per world (ancient, arctic, caves, grasslands, mech) and the sprites."""
    gfx = ctx.path("usr/share/games/blobwars/gfx")
    yield from folder_groups(gfx, "", RASTER, skip=("main", "common", "cutscenes", "sprites"))
    yield GroupSpec("sprites", sprites(first_frames(files(gfx / "sprites", PNG))))


def flare_tileset(definition: Path, mod: Path) -> list[tuple[Path, Box]]:
    """(sheet, box) of every tile in a Flare ``tilesetdefs`` file (``tile=id,x,y,w,h,ox,oy``)."""
    text = definition.read_text(encoding="utf-8", errors="replace")
    img = re.search(r"^img=(\S+)", text, re.MULTILINE)
    if not img:
        return []
    sheet = mod / img.group(1)
    return [(sheet, (int(x), int(y), int(x) + int(w), int(y) + int(h)))
            for x, y, w, h in re.findall(r"^tile=\d+,(\d+),(\d+),(\d+),(\d+)", text, re.MULTILINE)]


def discover_flare(ctx: Context) -> Iterator[GroupSpec]:
    """Tiles per tileset (cave, dungeon, grassland, snowplains) and the painted portraits."""
    mod = ctx.path("usr/share/games/flare/mods/fantasycore")
    for definition in files(mod / "tilesetdefs", {".txt"}):
        yield GroupSpec(definition.stem.replace("_", " "), atlas_items(flare_tileset(definition, mod)))
    yield GroupSpec("portraits", sprites(files(mod / "images/portraits", PNG)))


def discover_lincity(ctx: Context) -> Iterator[GroupSpec]:
    """The isometric city tiles: every building and terrain drawn in one rendering style."""
    yield GroupSpec("tiles", sprites(first_frames(files(ctx.path("usr/share/games/lincity-ng/images/tiles"), PNG))))


def discover_etr(ctx: Context) -> Iterator[GroupSpec]:
    """Extreme Tux Racer's ground textures (its player avatars are unrelated photos and drawings)."""
    yield GroupSpec("terrains", sprites(files(ctx.path("usr/share/games/etr/terrains"), PNG), 0.3))


def discover_minetest(ctx: Context) -> Iterator[GroupSpec]:
    """Minetest Game's texture pack: one 16 px pixel-art style over blocks, tools and items."""
    mods = ctx.path("usr/share/games/minetest/games/minetest_game/mods")
    yield GroupSpec("minetest_game", sprites(p for p in files(mods, PNG) if "/textures/" in str(p)))


def discover_neverball(ctx: Context) -> Iterator[GroupSpec]:
    """Level screenshots: one engine, one set of materials and skies, many level layouts.

    One group for all level sets: the sets differ in layout, not in look.
    """
    shots = sorted(ctx.path("usr/share/games/neverball").glob("shot-*"))
    yield GroupSpec("level screenshots", scenes(p for folder in shots for p in files(folder, RASTER)))


# ------------------------------------------------- zip archives: warzone, 0 A.D.

def zip_names(archive: Path) -> list[str]:
    """Member names of a zip archive (sorted), empty when it is missing."""
    if not archive.is_file():
        return []
    return sorted(_zip(archive).namelist())


def zip_items(archive: Path, members: Iterable[str]) -> list[Item]:
    """Pictures inside a zip, as objects; the reserved guard sees each member's own path.

    The builder checks an item's origin (the archive) against the guard, so a
    member in an icon or card folder inside the archive is dropped here.
    """
    return [Item(f"{archive}#{m}", archive, _zip_member(archive, m)) for m in members
            if not reserved_reason(f"{archive}/{m}")]


def _zip_member(archive: Path, member: str) -> Callable[[int], Image.Image]:
    def render(size: int) -> Image.Image:
        try:
            with Image.open(BytesIO(_zip(archive).read(member))) as img:
                return fit_object(img.convert("RGBA"), size)
        except (OSError, KeyError, ValueError, zipfile.BadZipFile) as exc:
            raise RenderError(f"{archive}#{member}: {exc}") from exc
    return render


@lru_cache(maxsize=2)
def _zip(archive: Path) -> zipfile.ZipFile:
    return zipfile.ZipFile(archive)


WARZONE_TILESETS = {"tertilesc1hw-128": "arizona", "tertilesc2hw-128": "urban", "tertilesc3hw-128": "rockies"}


def discover_warzone(ctx: Context) -> Iterator[GroupSpec]:
    """Terrain tiles per tileset (Arizona, Urban, Rockies), read from the game's ``base.wz`` zip."""
    archive = ctx.path("usr/share/games/warzone2100/base.wz")
    names = zip_names(archive)
    for folder, label in WARZONE_TILESETS.items():
        yield GroupSpec(f"tiles {label}", zip_items(archive, (n for n in names if n.startswith(f"texpages/{folder}/")
                                                              and n.endswith(".png"))))


_ZERO_AD_PORTRAITS = "art/textures/ui/session/portraits/"
_ZERO_AD_TERRAINS = "art/textures/terrain/types/"
_MATERIAL_MAP = re.compile(r"_(norm|spec|nm|ao|normal|gloss|mask)\b", re.IGNORECASE)


def discover_0ad(ctx: Context) -> Iterator[GroupSpec]:
    """Unit and building portraits per civilisation; terrain textures per biome (colour maps only)."""
    archive = ctx.path("usr/share/games/0ad/mods/public/public.zip")
    names = zip_names(archive)
    civs = [Path(n).stem for n in names if n.startswith("simulation/data/civs/") and n.endswith(".json")]
    for civ in civs:
        portraits = [n for n in names for kind in ("units/", "structures/")
                     if n.startswith(f"{_ZERO_AD_PORTRAITS}{kind}{civ}_")]
        yield GroupSpec(f"{civ} portraits", zip_items(archive, portraits))
    biomes: dict[str, list[str]] = {}
    for name in names:
        parts = name.removeprefix(_ZERO_AD_TERRAINS).split("/")
        if name.startswith(_ZERO_AD_TERRAINS) and len(parts) == 2 and not _MATERIAL_MAP.search(parts[1]):
            biomes.setdefault(parts[0], []).append(name)
    for biome, members in sorted(biomes.items()):
        yield GroupSpec(f"terrain {biome}", zip_items(archive, members))


# ----------------------------------------------------- crawl, stellarium

CRAWL_SHEETS = {"floor.png": "floors", "wall.png": "walls", "feat.png": "dungeon features"}
CRAWL_CELL = 32


def discover_crawl(ctx: Context) -> Iterator[GroupSpec]:
    """Floor, wall and feature tiles: 32 px grids, one shared pixel-art style per sheet.

    The monster sheet packs tiles of several sizes without a grid, so it is
    not cut; the title pictures all carry the game's logo, a shared trait
    that is content, not style.
    """
    tiles = ctx.path("usr/share/crawl/dat/tiles")
    for sheet, label in CRAWL_SHEETS.items():
        yield GroupSpec(label, grid_cells(tiles / sheet, CRAWL_CELL))


# Sky-culture licences (``info.ini``) that allow modification and commercial use.
_FREE_ART_LICENCE = re.compile(r"GPL|BY-SA|Free Art|CC0|public domain", re.IGNORECASE)
_NOT_FREE = re.compile(r"\b(NC|ND)\b|-N[CD]\b", re.IGNORECASE)


def sky_culture_licence(culture: Path) -> str:
    """The ``license`` line of a Stellarium sky culture's ``info.ini`` ("" when absent)."""
    try:
        text = (culture / "info.ini").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""
    match = re.search(r"^license\s*=\s*(.+)$", text, re.MULTILINE)
    return match.group(1).strip() if match else ""


# Stellarium's default culture; others (chinese_contemporary) reuse its drawings, so it goes first.
STELLARIUM_FIRST = "western"


def discover_stellarium(ctx: Context) -> Iterator[GroupSpec]:
    """Constellation drawings per sky culture, each culture's set drawn by one artist or team.

    Cultures under a no-derivatives or non-commercial licence (their own
    ``info.ini`` says which) are left out, and so are drawings a culture
    copies from one listed before it: the same drawings in two groups would
    make one style its own negative.
    """
    cultures = subfolders(ctx.path("usr/share/stellarium/skycultures"))
    seen: set[bytes] = set()
    for culture in sorted(cultures, key=lambda c: (c.name != STELLARIUM_FIRST, c.name)):
        licence = sky_culture_licence(culture)
        if not _FREE_ART_LICENCE.search(licence) or _NOT_FREE.search(licence):
            continue
        drawings = []
        for path in _sky_culture_art(culture):
            content = path.read_bytes()
            if content not in seen:
                seen.add(content)
                drawings.append(path)
        yield GroupSpec(f"sky culture {culture.name}", sprites(drawings))


def _sky_culture_art(culture: Path) -> list[Path]:
    """The drawings ``constellationsart.fab`` names (second column), sorted."""
    art = culture / "constellationsart.fab"
    if not art.is_file():
        return []
    names = {line.split()[1] for line in art.read_text(encoding="utf-8", errors="replace").splitlines()
             if len(line.split()) > 1 and not line.startswith("#")}
    return sorted(culture / n for n in names if (culture / n).is_file())


# --------------------------------------------------------------- catalogue

GAME_SOURCES: tuple[Source, ...] = (
    Source("widelands", ("widelands-data",),
           "Buildings and workers per tribe, terrains per climate, critters, each kind of plant or rock: "
           "a tribe's or a world's pieces are rendered and painted to match (first idle frame of each).",
           discover_widelands),
    Source("megaglest", ("megaglest-data",),
           "Unit portraits per faction (one rendering style and frame per faction) and ground textures "
           "per tileset.", discover_megaglest),
    Source("supertux", ("supertux-data",),
           "Tiles per world, decals and backgrounds per theme, one picture per creature and per object: "
           "a world's tiles are drawn to fit together.", discover_supertux),
    Source("freedroidrpg", ("freedroidrpg-data",),
           "Droid portraits, item pictures and obstacles: each set is rendered and lit alike.",
           discover_freedroidrpg),
    Source("naev", ("naev-data",),
           "One group per artist the copyright file credits and kind of picture (commodities, outfits, "
           "planets, portraits ...): one hand, one kind of picture.", discover_naev),
    Source("endless-sky", ("endless-sky-data",),
           "One group per artist the copyright file credits and kind of picture (ships, outfits, planets, "
           "thumbnails): one hand, one kind of picture.", discover_endless_sky),
    Source("teeworlds", ("teeworlds-data",),
           "One group per map climate: the tiles of its sheets are drawn to tile together.", discover_teeworlds),
    Source("blobwars", ("blobwars-data",),
           "Tiles per world and the sprites: a world's tiles are drawn to tile together.", discover_blobwars),
    Source("flare", ("flare-game",),
           "Tiles per tileset and the painted portraits: a tileset is painted and lit as one.", discover_flare),
    Source("lincity-ng", ("lincity-ng-data",),
           "The isometric city tiles: every building and terrain rendered in one style.", discover_lincity),
    Source("extremetuxracer", ("extremetuxracer-data",),
           "The ground textures: one painted set for snow, ice, rock and grass.", discover_etr),
    Source("minetest", ("minetest-data",),
           "Minetest Game's texture pack: one 16 px pixel-art style over blocks, tools and items.",
           discover_minetest),
    Source("neverball", ("neverball-data",),
           "Level screenshots: one engine, one set of materials and skies, many level layouts.", discover_neverball),
    Source("warzone2100", ("warzone2100-data",),
           "Terrain tiles per tileset (Arizona, Urban, Rockies): each tileset is painted as one.", discover_warzone),
    Source("crawl", ("crawl-tiles-data",),
           "Dungeon Crawl's floor, wall and feature tiles: one shared 32 px pixel-art style per sheet.",
           discover_crawl),
    Source("stellarium", ("stellarium-data",),
           "Constellation drawings per sky culture (only cultures whose info.ini licence is free): each "
           "culture's figures are drawn by one artist or team.", discover_stellarium),
    Source("0ad", ("0ad-data",),
           "Unit and building portraits per civilisation (painted to one portrait style per civilisation) and "
           "terrain textures per biome.", discover_0ad),
)
