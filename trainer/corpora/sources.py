"""The openly licensed art the corpus is built from, and how each source forms groups.

A *group* must be one consistent style with varied content. Each source's
``why`` says why its groups are style-coherent; the data card (DATA.md) quotes
it. Sources only *describe* groups (:class:`GroupSpec` with lazy
:class:`Item` renderers); the builder decides which items are drawn, caps and
deduplicates them, so every source gets the same rules.

Every path is resolved under ``Context.root`` (``/`` on a real machine), so
the tests run the same discovery code on a small fake package tree.
"""

from __future__ import annotations

import gzip
import html
import itertools
import re
import xml.etree.ElementTree as ET
from functools import lru_cache
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
from PIL import Image, ImageFont

from core.images import fit_square
from trainer.corpora.imaging import (
    RenderError, fit_object, fit_scene, load_photo, load_raster, render_svg, render_text,
    visible_fraction,
)
from trainer.corpora.games import GAME_SOURCES
from trainer.corpora.more_games import MORE_GAME_SOURCES
from trainer.corpora.restyle import RESTYLED_SOURCES
from trainer.corpora.provenance import FileOwners
from trainer.corpora.reserved import reserved_reason
from trainer.corpora.spec import (
    KDE_GAMES, KDE_PACKAGES, RASTER, VECTOR, Context, GroupSpec, Item, Source, clipart_drawings, files, object_raster,
    object_svg, sheet_crop,
)
from trainer.corpora.treatments import Style, apply_style, sample_style

# ------------------------------------------------------------ openclipart

_CREATOR_RE = re.compile(rb"<dc:creator>.*?<dc:title>(.*?)</dc:title>", re.DOTALL)


def svg_creator(path: Path) -> str | None:
    """The artist named in an SVG's RDF metadata (``dc:creator``), if any."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(65536)
    except OSError:
        return None
    match = _CREATOR_RE.search(head)
    if not match:
        return None
    name = html.unescape(re.sub(rb"\s+", b" ", match.group(1)).strip().decode("utf-8", "replace"))
    return name or None


_NOT_AN_ARTIST = re.compile(r"^(anonymous|unknown|none|hash(\(0x[0-9a-f]+\))?)$", re.IGNORECASE)


def artist_key(creator: str) -> str | None:
    """One spelling per artist ("Jean-Victor Balin (x@y)" == "Jean-VIctor Balin"); None for no artist.

    Two spellings of one artist as two groups would teach the model that the
    artist's style differs from itself; placeholder creators are no artist at all.
    """
    name = re.sub(r"\s+", " ", re.sub(r"\([^)]*@[^)]*\)|<[^>]*>|^mailto:", " ", creator)).strip()
    name = re.sub(r"\s*\([^)]*\)$", "", name) or name
    if not name or _NOT_AN_ARTIST.match(name):
        return None
    return name.casefold()


def discover_clipart(ctx: Context) -> Iterator[GroupSpec]:
    by_artist: dict[str, list[Item]] = {}
    shown: dict[str, str] = {}
    for path in clipart_drawings(ctx):
        creator = svg_creator(path)
        key = artist_key(creator) if creator else None
        if key:
            shown.setdefault(key, creator)
            by_artist.setdefault(key, []).append(Item(str(path), path, object_svg(path)))
    for key, items in sorted(by_artist.items()):
        yield GroupSpec(shown[key], items)


# ------------------------------------------------------------- KDE games

_AUTO_ID = re.compile(
    r"^(g|path|rect|svg|layer|use|image|text|tspan|circle|ellipse|polygon|polyline|line|flow\w+|"
    r"stop|\w*[Gg]radient|filter|clipPath|mask|pattern|symbol|marker|fe[A-Za-z]+)[-_]?\d+(-\d+)?$"
)
_SKIP_TAGS = {"defs", "metadata", "namedview", "clipPath", "mask", "pattern", "symbol", "marker", "title",
              "desc", "style", "script", "linearGradient", "radialGradient", "filter"}
_DRAWN_TAGS = {"g", "path", "rect", "use", "image", "circle", "ellipse", "polygon"}


def svg_sprite_ids(path: Path) -> list[str]:
    """Named sprites in a game theme SVG: the outermost elements with a hand-given id.

    Theme SVGs name every sprite the game draws (``BLOCK_1``, ``ghost2``);
    Inkscape's automatic ids (``g1234``, ``path87``) and layers are skipped, and
    so are named parts *inside* an already chosen sprite.
    """
    try:
        data = path.read_bytes()
        if data[:2] == b"\x1f\x8b":
            data = gzip.decompress(data)
        root = ET.fromstring(data)
    except (OSError, EOFError, ET.ParseError, gzip.BadGzipFile) as exc:
        raise RenderError(f"{path}: cannot parse SVG ({exc})") from exc
    found: list[str] = []

    def walk(el: ET.Element, taken: bool) -> None:
        tag = el.tag.rsplit("}", 1)[-1]
        if tag in _SKIP_TAGS:
            return
        ident = el.get("id")
        layer = el.get("{http://www.inkscape.org/namespaces/inkscape}groupmode") == "layer"
        accept = bool(ident) and not taken and not layer and tag in _DRAWN_TAGS and not _AUTO_ID.match(ident)
        if accept:
            found.append(ident)
        for child in el:
            walk(child, taken or accept)

    walk(root, False)
    return found


# Folders that hold many unrelated themes, one file each; any other folder is one theme.
_KDE_SHARED_FOLDERS = {"themes", "pics", "grafix", "pictures", "sprites", "backgrounds", "tilesets"}


def discover_kde(ctx: Context) -> Iterator[GroupSpec]:
    """One group per theme: a theme folder's SVGs together (KGoldrunner's actors + set), else one SVG."""
    for game in KDE_GAMES:
        base = ctx.path(f"usr/share/{game}")
        themes: dict[str, list[Item]] = {}
        for path in files(base, VECTOR):
            try:
                ids = svg_sprite_ids(path)
            except RenderError:
                ids = []
            folder = path.parent.relative_to(base)
            if folder.name in _KDE_SHARED_FOLDERS or not folder.parts:
                key = "-".join([game, *folder.parts, path.name.split(".")[0]])
            else:
                key = "-".join([game, *folder.parts])
            key = key.replace("-themes-", "-").replace("-pics-", "-")
            themes.setdefault(key, []).extend(Item(f"{path}#{i}", path, object_svg(path, i)) for i in ids)
        for name, items in sorted(themes.items()):
            yield GroupSpec(name, items)


# ------------------------------------------------------------- hedgewars

def discover_hedgewars(ctx: Context) -> Iterator[GroupSpec]:
    data = ctx.path("usr/share/games/hedgewars/Data")
    for theme in sorted(p for p in (data / "Themes").glob("*") if p.is_dir()):
        paths = [p for p in files(theme, {".png"}) if not p.name.lower().startswith("icon") and "@2x" not in p.name]
        yield GroupSpec(f"theme-{theme.name}", [Item(str(p), p, object_raster(p)) for p in paths])
    for sub in ("Forts", "Graphics/Hats", "Graphics/Graves"):
        paths = [p for p in files(data / sub, {".png"}) if "@2x" not in p.name]
        yield GroupSpec(sub.split("/")[-1].lower(), [Item(str(p), p, _first_frame(p)) for p in paths])


def _first_frame(path: Path) -> Callable[[int], Image.Image]:
    """Hats and graves are vertical strips of animation frames: take the top square."""
    def render(size: int) -> Image.Image:
        img = load_raster(path)
        if img.height >= 2 * img.width:
            img = img.crop((0, 0, img.width, img.width))
        if visible_fraction(img) < 0.03:
            raise RenderError(f"{path}: almost empty")
        return fit_object(img, size)
    return render


# --------------------------------------------------------------- freeciv

_SPEC_SECTION = re.compile(r"^\[(grid_\w+)\]\s*$(.*?)(?=^\[|\Z)", re.MULTILINE | re.DOTALL)


def freeciv_tiles(spec: Path) -> list[tuple[str, tuple[int, int, int, int]]]:
    """(sheet PNG name, crop box) for every tile a Freeciv ``.spec`` grid lists."""
    text = spec.read_text(encoding="utf-8", errors="replace")
    gfx = re.search(r'^gfx\s*=\s*"([^"]+)"', text, re.MULTILINE)
    if not gfx:
        return []
    boxes = []
    for _, body in _SPEC_SECTION.findall(text):
        nums = {k: int(v) for k, v in re.findall(r"^(x_top_left|y_top_left|dx|dy|pixel_border)\s*=\s*(-?\d+)", body, re.MULTILINE)}
        if not {"dx", "dy"} <= nums.keys():
            continue
        border = nums.get("pixel_border", 0)
        cells = set(re.findall(r"^\s*(\d+)\s*,\s*(\d+)\s*,\s*\"", body, re.MULTILINE))
        for row, col in sorted(cells, key=lambda rc: (int(rc[0]), int(rc[1]))):
            x = nums.get("x_top_left", 0) + int(col) * (nums["dx"] + border)
            y = nums.get("y_top_left", 0) + int(row) * (nums["dy"] + border)
            boxes.append((gfx.group(1).split("/")[-1] + ".png", (x, y, x + nums["dx"], y + nums["dy"])))
    return boxes


def discover_freeciv(ctx: Context) -> Iterator[GroupSpec]:
    base = ctx.path("usr/share/games/freeciv")
    skip = {"misc", "flags", "nation", "themes"}
    for folder in sorted(p for p in base.glob("*") if p.is_dir() and p.name not in skip):
        items = []
        for spec in sorted(folder.glob("*.spec")):
            for sheet_name, box in freeciv_tiles(spec):
                sheet = folder / sheet_name
                if sheet.is_file():
                    items.append(Item(f"{sheet}@{box}", sheet, sheet_crop(sheet, box)))
        if items:
            yield GroupSpec(folder.name, items)


# ---------------------------------------------------- pingus, frozen bubble

def discover_pingus(ctx: Context) -> Iterator[GroupSpec]:
    images = ctx.path("usr/share/games/pingus/data/images")
    for kind in ("ground", "solid", "transparent", "bridge", "remove"):
        for theme in sorted(p for p in (images / "groundpieces" / kind).glob("*") if p.is_dir()):
            paths = [p for p in files(theme, {".png"}) if "-mini" not in p.stem]
            yield GroupSpec(f"{kind}-{theme.name}", [Item(str(p), p, object_raster(p)) for p in paths])
    for sub in ("traps", "entrances", "exits", "worldobjs", "hotspots", "liquids", "worldmaps", "story"):
        paths = [p for p in files(images / sub, {".png", ".jpg"}) if "-mini" not in p.stem]
        yield GroupSpec(sub, [Item(str(p), p, object_raster(p)) for p in paths])


def discover_frozen_bubble(ctx: Context) -> Iterator[GroupSpec]:
    gfx = ctx.path("usr/share/games/frozen-bubble/gfx")
    for folder in [gfx] + sorted(p for p in gfx.glob("*") if p.is_dir()):
        paths = files(folder, {".png"}) if folder != gfx else sorted(gfx.glob("*.png"))
        yield GroupSpec(folder.name, [Item(str(p), p, object_raster(p)) for p in paths if "-mini" not in p.stem])


# --------------------------------------------------------------- wesnoth

_FRAME_WORDS = re.compile(r"(attack|defend|die|death|melee|ranged|idle|moving|run|fly|breath|leading|magic|"
                          r"flying|swim|dying|shoot|bite|kick|\d)", re.IGNORECASE)


def discover_wesnoth(ctx: Context) -> Iterator[GroupSpec]:
    images = ctx.path("usr/share/games/wesnoth/1.16/data/core/images")
    for race in sorted(p for p in (images / "portraits").glob("*") if p.is_dir()):
        paths = [p for p in files(race, {".png", ".webp"}) if "transparent" not in p.parts]
        yield GroupSpec(f"portraits-{race.name}", [Item(str(p), p, object_raster(p)) for p in paths])
    for race in sorted(p for p in (images / "units").glob("*") if p.is_dir()):
        # Base poses only: animation frames of one unit are near-duplicates.
        paths = [p for p in files(race, {".png"}) if not _FRAME_WORDS.search(p.stem)]
        yield GroupSpec(f"units-{race.name}", [Item(str(p), p, object_raster(p)) for p in paths])
    for kind in sorted(p for p in (images / "terrain").glob("*") if p.is_dir()):
        paths = files(kind, {".png"})
        yield GroupSpec(f"terrain-{kind.name}", [Item(str(p), p, object_raster(p, 0.3)) for p in paths])
    for sub in ("items", "scenery", "attacks", "halo", "projectiles"):
        paths = files(images / sub, {".png"})
        yield GroupSpec(sub, [Item(str(p), p, object_raster(p)) for p in paths])


# ------------------------------------------------------------ wallpapers

CROPS_PER_WALLPAPER = 8


def wallpaper_artworks(ctx: Context) -> dict[str, list[Path]]:
    """Artwork name -> its files (light/dark and size variants of one picture belong together)."""
    found: dict[str, list[Path]] = {}
    seen: set[Path] = set()

    def add(name: str, path: Path) -> None:
        real = path.resolve()
        if real not in seen and (path.suffix.lower() in RASTER | VECTOR):
            seen.add(real)
            found.setdefault(name, []).append(path)

    for folder in sorted(ctx.path("usr/share/wallpapers").glob("*")):
        for path in files(folder / "contents", RASTER | VECTOR):
            add(f"plasma-{folder.name}", path)
    for path in files(ctx.path("usr/share/backgrounds/gnome"), RASTER | VECTOR):
        add("gnome-" + re.sub(r"-[ld]$", "", path.stem), path)
    for path in files(ctx.path("usr/share/backgrounds/mate"), RASTER | VECTOR):
        add("mate-" + re.sub(r"_\d+x\d+$", "", path.stem), path)
    for theme in sorted(ctx.path("usr/share/desktop-base").glob("*-theme")):
        for path in files(theme / "wallpaper", RASTER | VECTOR):
            add(f"debian-{theme.name}", path)
    # Variants in the same group: keep the largest file of each (the best source for crops).
    return {name: sorted(paths, key=lambda p: -p.stat().st_size)[:2] for name, paths in found.items()}


@lru_cache(maxsize=2)
def _wallpaper(path: Path, size: int) -> Image.Image:
    if path.suffix.lower() in VECTOR:
        return render_svg(path, size * 5).convert("RGB")
    return load_photo(path, size * 3)


def crop_render(path: Path, index: int, seed: int) -> Callable[[int], Image.Image]:
    """A random square crop (35-80 % of the shorter side) of a large picture, fixed by ``seed``."""
    def render(size: int) -> Image.Image:
        img = _wallpaper(path, size)
        rng = np.random.default_rng([seed, index])
        side = int(min(img.size) * rng.uniform(0.35, 0.8))
        if side < size // 2:
            raise RenderError(f"{path}: too small to crop ({img.width}x{img.height})")
        x = int(rng.integers(0, img.width - side + 1))
        y = int(rng.integers(0, img.height - side + 1))
        return fit_scene(img.crop((x, y, x + side, y + side)), size)
    return render


def discover_wallpapers(ctx: Context) -> Iterator[GroupSpec]:
    for name, paths in sorted(wallpaper_artworks(ctx).items()):
        items = [Item(f"{paths[i % len(paths)]}@crop{i}", paths[i % len(paths)],
                      crop_render(paths[i % len(paths)], i, ctx.seed)) for i in range(CROPS_PER_WALLPAPER)]
        yield GroupSpec(name, items)


# ----------------------------------------------------------------- fonts

FONT_TEXTS = (
    "Aa Bb Cc\nDd Ee Ff", "Gg Hh Ii\nJj Kk Ll", "Mm Nn Oo\nPp Qq Rr", "Ss Tt Uu\nVv Ww Xx",
    "Yy Zz &\n0123456789", "Quick\nbrown fox", "Sphinx of\nblack quartz", "Jazz\nWaltz", "HAMBURG\nglyph",
    "Vexed\nnymphs", "Moody\nRiver 42", "Kiwi?\nYes!",
)


# Glyph sheets are cheap and plentiful: a few per font are enough to show its style.
FONT_IMAGES = 8


def _font_sheet(path: Path, text: str) -> Callable[[int], Image.Image]:
    return lambda size: render_text(path, text, size)


def font_has_latin(path: Path) -> bool:
    """True when the font draws distinct shapes for a few Latin letters (not one .notdef box)."""
    try:
        font = ImageFont.truetype(str(path), 48)
        masks = {bytes(font.getmask(c)) for c in "AgQ"}
    except OSError:
        return False
    return len(masks) == 3


def font_family(path: Path) -> str:
    """The family name a font file declares (its regular, bold and italic files share it)."""
    try:
        family = ImageFont.truetype(str(path), 12).getname()[0]
    except OSError:
        family = None
    return family or path.stem


FONT_PACKAGES = (
    "fonts-dejavu-core", "fonts-dejavu-extra", "fonts-lato", "fonts-droid-fallback", "fonts-aenigma", "fonts-dustin",
    "fonts-urw-base35", "fonts-freefont-ttf", "fonts-ebgaramond", "fonts-linuxlibertine", "fonts-junicode",
    "fonts-quicksand", "fonts-jura", "fonts-breip", "fonts-dkg-handwriting", "fonts-humor-sans", "fonts-comic-neue",
    "fonts-lobster", "fonts-femkeklaver", "fonts-isabella", "fonts-gotico-antiqua", "fonts-radisnoir", "fonts-beteckna",
) + tuple(f"fonts-adf-{n}" for n in ("accanthis", "baskervald", "berenis", "gillius", "ikarius", "irianis", "libris",
                                     "mekanus", "oldania", "romande", "solothurn", "switzera", "tribun", "universalis",
                                     "verana"))


def discover_fonts(ctx: Context) -> Iterator[GroupSpec]:
    """One group per type family: weights and slants of one design are one style.

    Only fonts of the listed packages are offered: fonts that other packages
    pull in (game data depends on Noto, Roboto ...) would otherwise change the
    seeded order, and so which families fill the capped share.
    """
    owners = FileOwners(FONT_PACKAGES, ctx.root)
    families: dict[str, list[Item]] = {}
    for path in files(ctx.path("usr/share/fonts"), {".ttf", ".otf"}):
        if owners.package_of(path) is None or reserved_reason(str(path)) or not font_has_latin(path):
            continue
        family = font_family(path)
        if reserved_reason(f"fonts/{family}/{path.name}"):
            continue
        families.setdefault(family, []).extend(
            Item(f"{path}#{i}", path, _font_sheet(path, t)) for i, t in enumerate(FONT_TEXTS))
    for family, items in sorted(families.items()):
        yield GroupSpec(family, items, max_images=FONT_IMAGES)


# ------------------------------------------------------------ procedural

def content_pool(ctx: Context) -> list[tuple[str, Path, Callable[[int], Image.Image]]]:
    """Content images for procedural styles: Tux Paint stamps and crops of the wallpapers.

    Stamps (photos and drawings of animals, food, vehicles ...) bring varied
    subjects; wallpaper crops bring whole scenes. The content id recorded for
    each is the same whichever style renders it.
    """
    pool = []
    stamps = ctx.path("usr/share/tuxpaint/stamps")
    for path in files(stamps, {".png", ".svg"}):
        pool.append((f"tuxpaint:{path.relative_to(stamps)}", path, _stamp(path)))
    for name, paths in sorted(wallpaper_artworks(ctx).items()):
        for i in range(4):
            path = paths[i % len(paths)]
            pool.append((f"wallpaper:{name}:{i}", path, crop_render(path, 100 + i, ctx.seed)))
    return pool


def _stamp(path: Path) -> Callable[[int], Image.Image]:
    def render(size: int) -> Image.Image:
        img = render_svg(path, size) if path.suffix == ".svg" else load_raster(path)
        obj = fit_object(img, size)
        # A pale, content-specific background so the treatment has a scene, not a flat grey void.
        tone = int.from_bytes(path.name.encode()[:3].ljust(3, b"x"), "big")
        bg = tuple(200 + (tone >> s) % 50 for s in (0, 8, 16))
        canvas = Image.new("RGBA", obj.size, bg + (255,))
        canvas.alpha_composite(obj)
        return canvas.convert("RGB")
    return render


class _ContentCache:
    """Content images decoded once and shared by every style that draws them."""

    def __init__(self, pool, size: int):
        self.pool = {cid: render for cid, _, render in pool}
        self.size = size
        self.images: dict[str, Image.Image | RenderError] = {}

    def get(self, cid: str) -> Image.Image:
        if cid not in self.images:
            try:
                self.images[cid] = fit_square(self.pool[cid](self.size).convert("RGB"), self.size)
            except RenderError as exc:
                self.images[cid] = exc
        value = self.images[cid]
        if isinstance(value, RenderError):
            raise value
        return value


def _styled(cache: _ContentCache, style: Style, cid: str, seed: int) -> Callable[[int], Image.Image]:
    return lambda size: apply_style(style, cache.get(cid), seed)


def discover_procedural(ctx: Context) -> Iterator[GroupSpec]:
    """``ctx.procedural_styles`` groups, one per distinct recipe, recipe ``i`` drawn from seed (seed, i).

    A recipe whose parameters repeat an earlier one exactly (a dither with a
    preset palette, method and scale already drawn) is skipped and the next
    seed drawn instead: two groups of one style would each be the other's
    negatives. 16 of the first 1200 draws repeat one.
    """
    pool = content_pool(ctx)
    if not pool:
        return
    cache = _ContentCache(pool, ctx.size)
    origins = {cid: origin for cid, origin, _ in pool}
    ids = sorted(origins)
    used: set[str] = set()
    for i in itertools.count():
        if len(used) == ctx.procedural_styles:
            return
        rng = np.random.default_rng([ctx.seed, 7919, i])
        style = sample_style(rng)
        if style.key in used:
            continue
        used.add(style.key)
        chosen = rng.choice(len(ids), size=min(len(ids), ctx.procedural_per_group * 2), replace=False)
        items = [Item(f"{style.key}:{ids[j]}", origins[ids[j]], _styled(cache, style, ids[j], int(rng.integers(2**31))),
                      content=ids[j]) for j in chosen]
        yield GroupSpec(f"{i:04d}-{style.key}", items, max_images=ctx.procedural_per_group)


# --------------------------------------------------------------- catalogue

SOURCES: tuple[Source, ...] = (
    Source("openclipart", ("openclipart-svg",),
           "One group per artist (the SVG's dc:creator): an artist's clip art shares line weight, shading and "
           "palette habits across subjects.", discover_clipart),
    Source("kde-games", KDE_PACKAGES,
           "One group per game theme SVG: every sprite of a theme was drawn by one artist to match the others.",
           discover_kde),
    Source("hedgewars", ("hedgewars-data",),
           "One group per map theme (all objects of a theme are painted to match) and per sprite set "
           "(hats, graves, forts share the game's cartoon look).", discover_hedgewars),
    Source("freeciv", ("freeciv-data",),
           "One group per tileset folder: a tileset's units, terrain and buildings share one rendering style "
           "and palette by design.", discover_freeciv),
    Source("pingus", ("pingus-data",),
           "One group per ground-piece theme and per object kind: pieces of a theme are drawn to tile together.",
           discover_pingus),
    Source("frozen-bubble", ("frozen-bubble-data",),
           "One group per graphics folder of the game, which is drawn in one consistent style.", discover_frozen_bubble),
    Source("wesnoth", ("wesnoth-1.16-data",),
           "Portraits by race (each race's portraits are by one artist, see portraits/ARTISTS), unit sprites "
           "by faction (one pixel-art style and palette), terrain by terrain type, items, scenery.", discover_wesnoth),
    Source("wallpapers", ("plasma-workspace-wallpapers", "gnome-backgrounds", "mate-backgrounds", "desktop-base"),
           "One group per wallpaper artwork: random crops of one picture share its medium, palette and texture.",
           discover_wallpapers),
    Source("procedural", ("tuxpaint-stamps-default", "plasma-workspace-wallpapers", "gnome-backgrounds",
                          "mate-backgrounds", "desktop-base"),
           "One group per treatment parameter set (family, palette, line spacing, dot size, paper) applied to "
           "many different content images; the same content appears in several groups (manifest column "
           "content).", discover_procedural),
    Source("fonts", FONT_PACKAGES,
           "One group per type family (its weights and slants together): glyph sheets of varied text share "
           "the typeface's strokes, contrast and serifs. Capped at 20% of all groups so typography does not "
           "dominate.", discover_fonts),
) + GAME_SOURCES + MORE_GAME_SOURCES + RESTYLED_SOURCES
SOURCE_NAMES = tuple(s.name for s in SOURCES)
FONT_SHARE = 0.2
