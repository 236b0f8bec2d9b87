"""What a source describes: items, groups, the source itself, and the renderers adapters share.

Sources only *describe* groups (:class:`GroupSpec` with lazy :class:`Item`
renderers); the builder decides which items are drawn, caps and deduplicates
them, so every source gets the same rules. This module is the vocabulary both
``sources.py`` (the first sources) and ``games.py`` (the game-art sources)
build on, so neither has to import the other's adapters.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Callable, Iterable

from PIL import Image

from trainer.corpora.imaging import RenderError, fit_object, load_raster, render_svg, visible_fraction

RASTER = {".png", ".jpg", ".jpeg", ".webp", ".gif", ".bmp"}
VECTOR = {".svg", ".svgz"}

# The KDE games whose SVG themes the kde-games source reads, and the restyled-sprites source redraws.
KDE_GAMES = (
    "bovo", "granatier", "kapman", "katomic", "kblackbox", "kblocks", "kbounce", "kbreakout", "kdiamond",
    "kfourinline", "kgoldrunner", "kigo", "killbots", "kjumpingcube", "klickety", "kmahjongglib", "kmines",
    "knavalbattle", "knetwalk", "kolf", "kollision", "kreversi", "ksnakeduel", "kspaceduel", "ksudoku",
    "ktuberling", "picmi",
)
KDE_PACKAGES = tuple(g for g in KDE_GAMES if g != "kmahjongglib") + ("kdegames-mahjongg-data-kf5", "ktuberling-data")
Box = tuple[int, int, int, int]


@dataclass(frozen=True)
class Item:
    """One future corpus image: where it comes from and how to render it at a given size."""

    key: str  # stable id (path, path#element, path@crop): decides sampling order and reuse
    origin: Path  # the installed file it is made from (checked by the reserved guard)
    render: Callable[[int], Image.Image]
    content: str = ""  # content-image id for procedural items


@dataclass
class GroupSpec:
    name: str
    items: list[Item] = field(default_factory=list)
    max_images: int | None = None  # a tighter cap than the build's --max-per-group


@dataclass
class Context:
    """What discovery needs: the file-system root, the output size and a seed."""

    root: Path = Path("/")
    size: int = 160
    seed: int = 0
    procedural_styles: int = 1200
    procedural_per_group: int = 12
    restyled_styles: int = 8000

    def path(self, rel: str) -> Path:
        return self.root / rel.lstrip("/")


@dataclass(frozen=True)
class Source:
    name: str
    packages: tuple[str, ...]  # Debian packages (``pypi:NAME`` for PyPI) this source may read
    why: str
    discover: Callable[[Context], Iterable[GroupSpec]]


def files(folder: Path, suffixes: set[str]) -> list[Path]:
    """Every file below ``folder`` with one of ``suffixes`` (case-insensitive), sorted."""
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.rglob("*") if p.suffix.lower() in suffixes and p.is_file())


CLIPART = "usr/share/openclipart/svg"


def clipart_drawings(ctx: Context) -> list[Path]:
    """Open Clip Art's SVGs, sorted, without national flags: designs the uploader copied, not anyone's style.

    Both the artists' groups and the restyled recipes draw from this one list.
    """
    base = ctx.path(CLIPART)
    return [p for p in files(base, {".svg"}) if "flag" not in str(p.relative_to(base)).lower()]


def object_raster(path: Path, min_visible: float = 0.03) -> Callable[[int], Image.Image]:
    """A sprite file as an object; near-empty or tiny files are render errors, not images."""
    def render(size: int) -> Image.Image:
        img = load_raster(path)
        if min(img.size) < 12:
            raise RenderError(f"{path}: too small ({img.width}x{img.height})")
        if visible_fraction(img) < min_visible:
            raise RenderError(f"{path}: almost empty")
        return fit_object(img, size)
    return render


def object_svg(path: Path, element: str | None = None) -> Callable[[int], Image.Image]:
    """An SVG (or one element of it) as an object."""
    def render(size: int) -> Image.Image:
        img = render_svg(path, int(size * 0.9), element)
        if max(img.size) < 12 or visible_fraction(img) < 0.02:
            raise RenderError(f"{path}#{element}: renders (almost) nothing")
        return fit_object(img, size)
    return render


def sheet_crop(sheet: Path, box: Box, min_visible: float = 0.15) -> Callable[[int], Image.Image]:
    """One cell of a sprite sheet or atlas (tiles, frames), as an object."""
    def render(size: int) -> Image.Image:
        img = _sheet(sheet).crop(box)
        if visible_fraction(img) < min_visible:
            raise RenderError(f"{sheet}{box}: mostly transparent tile")
        return fit_object(img, size)
    return render


@lru_cache(maxsize=4)
def _sheet(path: Path) -> Image.Image:
    return load_raster(path)

