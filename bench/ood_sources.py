"""The two reserved evaluation domains: freedesktop icon themes and playing-card decks.

NEVER USE THIS FOR TRAINING. These domains are kept out of every training
corpus by ``trainer/corpora/reserved.py`` (see resources/models/DATA.md,
"Reserved for evaluation") so that ``bench/ood_benchmark.py`` measures the
style model on art from sources it never saw. Adding any of these packages,
folders or images to a training manifest turns the benchmark into a memory
test.

Each domain shows *the same subjects drawn in every style*: the same
freedesktop icon names in every theme, the same 52 cards in every deck. A
group is one theme or one deck, and the subject (icon name, card) is the
manifest's ``content`` column, so the trainer's content-trap metric counts
"same subject, other style" mistakes.

Everything is read from files that Debian packages install (only files the
package's dpkg list names, like the training corpus builder), and rendered
with ``rsvg-convert`` (librsvg2-bin). The choices below (themes, decks, icon
names) are fixed lists so the benchmark is the same on every machine that
has the packages; what is missing is skipped and reported.
"""

from __future__ import annotations

import configparser
import os
from collections import Counter
from collections.abc import Callable, Collection
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

from trainer.corpora.imaging import RenderError, alpha_bbox, fit_object, load_raster, render_svg, run_rsvg

ICONS_DIR = "usr/share/icons"
VECTOR_SUFFIXES = (".svg", ".svgz")
ICON_SUFFIXES = VECTOR_SUFFIXES + (".png",)
# A raster icon smaller than this would be enlarged into a blur that tells its theme apart by
# resolution rather than by style; such an icon is skipped.
MIN_RASTER = 96


@dataclass(frozen=True)
class IconTheme:
    """One icon theme as a user sees it: folders under ``/usr/share/icons`` searched in order.

    Most themes are one folder of one package; Moka's designer split one style
    over two packages (Moka draws applications and inherits Faba's places and
    file types), and those halves are one style, so one group.
    """

    name: str
    parts: tuple[tuple[str, str], ...]  # (Debian package, folder under usr/share/icons)


@dataclass(frozen=True)
class Deck:
    """One card deck: an SVG installed by ``package`` whose cards are elements with ids.

    ``ids`` is the element-id pattern: Aisleriot themes name a card ``spade_queen``
    (``"{suit}_{rank}"``), KDE card decks ``queen_spade`` (``"{rank}_{suit}"``).
    """

    package: str
    path: str
    name: str
    ids: str


def _theme(package: str, folder: str) -> IconTheme:
    return IconTheme(folder, ((package, folder),))


# One theme per family: dark/light/colour variants (breeze-dark, Papirus-Dark, Yaru-blue,
# Obsidian-Aqua, Faenza-Dark, elementary-xfce-dark ...) would be near-copies of a group already
# in the set; so are mate (MATE kept GNOME 2's drawings: 36 of the 40 icons are the gnome
# theme's), the GNOME-Colors themes (gnome-brave and its hues re-colour the gnome theme's
# drawings, just far enough apart to pass the builder's duplicate test) and Numix-Circle
# (Numix's application icons redrawn as circles). Left out as well: Sugar (line drawings
# recoloured at run time, so the files carry no style of their own) and Suru (Lomiri's phone
# icon set, which uses its own names). Forks that share some drawings (elementary-xfce from
# elementary, Obsidian from Faenza, nuoveXT2 from Nuovo) stay, listed after their original:
# the builder drops every icon that nearly repeats one of an earlier theme, and a theme left
# with too few.
ICON_THEMES = (
    _theme("adwaita-icon-theme", "Adwaita"),
    _theme("breeze-icon-theme", "breeze"),
    _theme("oxygen-icon-theme", "oxygen"),
    _theme("papirus-icon-theme", "Papirus"),
    _theme("elementary-icon-theme", "elementary"),
    _theme("elementary-xfce-icon-theme", "elementary-xfce"),
    _theme("tango-icon-theme", "Tango"),
    IconTheme("Moka", (("moka-icon-theme", "Moka"), ("faba-icon-theme", "Faba"))),
    _theme("numix-icon-theme", "Numix"),
    _theme("yaru-theme-icon", "Yaru"),
    _theme("gnome-icon-theme", "gnome"),
    _theme("deepin-icon-theme", "bloom"),
    _theme("paper-icon-theme", "Paper"),
    _theme("faenza-icon-theme", "Faenza"),
    _theme("obsidian-icon-theme", "Obsidian"),
    _theme("gnome-icon-theme-gartoon", "gartoon"),
    _theme("gnome-icon-theme-nuovo", "Nuovo"),
    _theme("lxde-icon-theme", "nuoveXT2"),
    _theme("gnome-icon-theme-suede", "Suede"),
    _theme("gnome-icon-theme-yasis", "yasis"),
)

# The subjects every theme is asked for: freedesktop Icon Naming Specification names that most
# of the themes above draw in colour (devices, places, file types, applications, categories,
# status), one name per drawing (aliases that themes link to one file, such as media-optical and
# drive-optical, appear once). Each name is followed by its GNOME 2 names from icon-naming-utils'
# legacy-icon-mapping.xml, which the older themes (gartoon, Nuovo, yasis, Suede) still use.
ICON_NAMES: dict[str, tuple[str, ...]] = {
    "computer": ("gnome-dev-computer", "gnome-fs-client"),
    "drive-harddisk": ("gnome-dev-harddisk",),
    "drive-optical": ("gnome-dev-cdrom",),
    "drive-removable-media": ("gnome-dev-removable",),
    "input-keyboard": ("gnome-dev-keyboard",),
    "input-mouse": ("gnome-dev-mouse-optical", "gnome-dev-mouse-ball"),
    "printer": ("gnome-dev-printer",),
    "camera-photo": ("camera",),
    "folder": ("gnome-fs-directory",),
    "user-home": ("gnome-fs-home",),
    "user-desktop": ("gnome-fs-desktop",),
    "user-trash": ("gnome-fs-trash-empty",),
    "network-server": ("gnome-fs-server",),
    "network-workgroup": ("gnome-fs-network",),
    "audio-x-generic": ("gnome-mime-audio",),
    "image-x-generic": ("gnome-mime-image",),
    "package-x-generic": ("gnome-package",),
    "text-html": ("gnome-mime-text-html",),
    "text-x-generic": ("gnome-mime-text",),
    "text-x-script": ("gnome-mime-application-x-shellscript",),
    "video-x-generic": ("gnome-mime-video",),
    "x-office-document": ("gnome-mime-application-vnd.oasis.opendocument.text", "gnome-mime-application-msword"),
    "x-office-spreadsheet": ("gnome-mime-application-vnd.oasis.opendocument.spreadsheet",
                             "gnome-mime-application-vnd.ms-excel"),
    "application-x-executable": ("gnome-fs-executable", "gnome-mime-application-x-executable"),
    "utilities-terminal": ("gnome-terminal",),
    "utilities-system-monitor": ("gnome-monitor",),
    "system-file-manager": ("file-manager",),
    "web-browser": (),
    "accessories-text-editor": ("text-editor",),
    "help-browser": ("gnome-help",),
    "accessories-calculator": ("gnome-calculator",),
    "applications-internet": ("gnome-globe",),
    "applications-office": ("gnome-applications",),
    "applications-system": ("gnome-system",),
    "preferences-system": (),
    "dialog-warning": ("gtk-dialog-warning",),
    "dialog-error": ("gtk-dialog-error",),
    "dialog-information": ("gtk-dialog-info",),
    "system-search": ("gnome-searchtool",),
    "system-lock-screen": ("gnome-lockscreen",),
}

_AISLERIOT = "{suit}_{rank}"
_KDE = "{rank}_{suit}"
# One deck per design. Left out: re-coloured or re-indexed copies of a deck (anglo_bitmap,
# anglo_modern, anglo_modern_4_color, anglo_poker, gnomangelo and gnomangelo_bitmap, whose 52
# cards are near copies of anglo's, atlasnye_skat and its Cyrillic-named twin,
# neoclassical_4_color, tango_nuevo, oxygen-air, oxygen-white, nicu-white); the decks both
# packages ship (dondorf, paris, tigullio, ornamental: Aisleriot's copy is kept); lattmann, the
# Berlin pattern redrawn; and three KDE decks rsvg-convert 2.54 cannot render: svg-future
# (cards come out as strips), svg-konqi-modern and svg-xskat-french (no intrinsic size).
CARD_DECKS = tuple(
    Deck("gnome-cards-data", f"usr/share/aisleriot/cards/{name}.svgz", name, _AISLERIOT)
    for name in ("ancient_french", "anglo", "atlasnye", "bellot", "berlin", "dondorf", "guyenne-classic",
                 "neoclassical", "orell", "ornamental", "paris", "plastic", "rheinland", "simplistic",
                 "slavic_costumes", "swiss-xvii", "tango", "tarocco", "tigullio")
) + tuple(
    Deck("kdegames-card-data-kf5", f"usr/share/carddecks/svg-{folder}/{file}", folder, _KDE)
    for folder, file in (("ancient-egyptians", "Ancient_Egyptians.svgz"), ("jolly-royal", "jolly-royal.svgz"),
                         ("oxygen", "oxygen.svgz"), ("penguins", "penguins.svgz"), ("standard", "standard.svgz"),
                         ("xskat-german", "german.svgz"))
)

SUITS = ("club", "diamond", "heart", "spade")
RANKS = ("1", "2", "3", "4", "5", "6", "7", "8", "9", "10", "jack", "queen", "king")
CARDS = tuple((suit, rank) for suit in SUITS for rank in RANKS)


@dataclass(frozen=True)
class IconFile:
    """The file a theme draws an icon name with, and the pixel size its folder is meant for."""

    path: Path
    size: int
    vector: bool


def theme_directories(theme_root: Path) -> dict[str, int]:
    """Sub-folder -> the largest pixel size it serves, from the theme's ``index.theme``.

    The freedesktop spec's own description of a theme: a ``Scalable`` folder
    serves up to ``MaxSize`` and ``Scale`` multiplies (``@2x`` folders), so the
    largest drawing of a name can be found without guessing from folder names.
    """
    parser = configparser.ConfigParser(interpolation=None, strict=False)
    parser.optionxform = str
    try:
        parser.read(theme_root / "index.theme", encoding="utf-8")
    except (configparser.Error, UnicodeDecodeError):
        return {}
    if not parser.has_section("Icon Theme"):
        return {}
    head = parser["Icon Theme"]
    names = [d.strip() for key in ("Directories", "ScaledDirectories")
             for d in head.get(key, "").split(",") if d.strip()]
    sizes = {}
    for name in names:
        if not parser.has_section(name):
            continue
        section = parser[name]
        try:
            size = int(section.get("Size", "0"))
            if section.get("Type", "Threshold") == "Scalable":
                size = int(section.get("MaxSize", size))
            sizes[name] = size * int(section.get("Scale", "1"))
        except ValueError:
            continue
    return sizes


def _icon_name(file_name: str) -> str | None:
    """The icon name a file provides, or None for a non-icon or a symbolic (monochrome) variant."""
    for suffix in ICON_SUFFIXES:
        if file_name.endswith(suffix):
            stem = file_name[:-len(suffix)]
            return None if stem.endswith("-symbolic") else stem
    return None


def find_icons(theme_root: Path, names: Collection[str], owned: Callable[[Path], bool]) -> dict[str, IconFile]:
    """The best file for each of ``names`` that one theme folder draws itself.

    Best is the largest size the theme draws it for, a vector file winning a
    tie. Only the theme's own files count: an icon inherited from another
    theme, a link that leaves the theme folder, a file ``owned`` rejects
    (not in the package's file list), ``-symbolic`` variants and rasters
    under ``MIN_RASTER`` are skipped.
    """
    root = theme_root.resolve()
    best: dict[str, IconFile] = {}
    for folder, size in sorted(theme_directories(theme_root).items()):
        if "symbolic" in folder.split("/"):
            continue
        try:
            entries = sorted(os.listdir(theme_root / folder))
        except OSError:
            continue
        for entry in entries:
            name = _icon_name(entry)
            if name not in names:
                continue
            path = theme_root / folder / entry
            candidate = IconFile(path, size, entry.endswith(VECTOR_SUFFIXES))
            held = best.get(name)
            if held is not None and (held.size, held.vector) >= (candidate.size, candidate.vector):
                continue
            if not candidate.vector and candidate.size < MIN_RASTER:
                continue
            if not path.resolve().is_relative_to(root) or not owned(path):
                continue
            best[name] = candidate
    return best


def drawn_names(theme_root: Path, owned: Callable[[Path], bool]) -> set[str]:
    """Every icon name a theme folder draws itself in colour at a usable size (what find_icons would take)."""
    names = set()
    for folder in theme_directories(theme_root):
        try:
            names.update(n for n in map(_icon_name, os.listdir(theme_root / folder)) if n)
        except OSError:
            continue
    return set(find_icons(theme_root, names, owned))


def shared_icon_names(themes: tuple[IconTheme, ...], icons_root: Path, owner_of: Callable[[Path], str | None],
                      min_themes: int) -> dict[str, tuple[str, ...]]:
    """Every subject that at least ``min_themes`` of ``themes`` draw: subjects chosen by a rule, not by hand.

    The hand-picked ``ICON_NAMES`` keep the benchmark small (up to 40 icons
    per theme), and P@1 falls with the number of a group's other members a
    query can find; the issue that set the icon aims measured themes of
    about 95 icons each. This list reaches that size without choosing which
    icons: a GNOME 2 name counts as the standard name ``ICON_NAMES`` maps it
    to, and everything else under its own name, aliases included (a theme
    that links two names to one file keeps the first, as ``theme_icons`` does).
    """
    standard = {old: name for name, legacy in ICON_NAMES.items() for old in legacy}
    counts: Counter[str] = Counter()
    for theme in themes:
        subjects = set()
        for package, folder in theme.parts:
            drawn = drawn_names(icons_root / folder, lambda p, pkg=package: owner_of(p) == pkg)
            subjects.update(standard.get(name, name) for name in drawn)
        counts.update(subjects)
    return {name: ICON_NAMES.get(name, ()) for name in sorted(counts) if counts[name] >= min_themes}


def theme_icons(theme: IconTheme, icons_root: Path, owner_of: Callable[[Path], str | None],
                names: dict[str, tuple[str, ...]] = ICON_NAMES) -> dict[str, tuple[str, IconFile]]:
    """Subject -> (package, file) for every subject of ``names`` the theme draws.

    A subject is looked up by its standard name, then by its legacy names, in
    each part of the theme in turn. Two subjects the theme draws with one
    file (a link) keep only the first: the same picture twice in a group
    would be found by its copy, not by its style.
    """
    wanted = {n for name, legacy in names.items() for n in (name, *legacy)}
    found = [(package, find_icons(icons_root / folder, wanted, lambda p, pkg=package: owner_of(p) == pkg))
             for package, folder in theme.parts]
    chosen: dict[str, tuple[str, IconFile]] = {}
    drawn: set[Path] = set()
    for subject, legacy in names.items():
        hit = next(((package, files[n]) for package, files in found for n in (subject, *legacy) if n in files), None)
        if hit is None or hit[1].path.resolve() in drawn:
            continue
        drawn.add(hit[1].path.resolve())
        chosen[subject] = hit
    return chosen


def fit_centred(img: Image.Image, size: int) -> Image.Image:
    """Trim transparent margins and centre the drawing in ``OBJECT_FILL`` of a transparent square.

    The same framing as the training corpus's objects (trainer.corpora.imaging),
    but always with smooth resampling: icons and cards are not pixel art.
    Transparency stays, so the loader (core.images.to_rgb) composites it on
    grey exactly as it does for a user's files.
    """
    return fit_object(img, size, pixel_art=False)


def render_icon(icon: IconFile, size: int) -> Image.Image:
    """An icon file as a ``size`` square: vectors rendered at twice the size, then reduced."""
    img = render_svg(icon.path, 2 * size) if icon.vector else load_raster(icon.path)
    return fit_centred(img, size)


def card_element(deck: Deck, suit: str, rank: str) -> str:
    return deck.ids.format(suit=suit, rank=rank)


def render_element(path: Path, element: str, zoom: float, timeout: float = 60.0) -> Image.Image:
    """One SVG element at ``zoom``, trimmed to its visible pixels.

    Zoom rather than a target box: librsvg 2.54 gives many card elements a
    bounding box far larger than the card (``<use>`` sizes count), so fitting
    that box would shrink the card to a few pixels; the visible card is cut
    out of the canvas instead.
    """
    img = run_rsvg(path, ["--export-id", element, "--zoom", f"{zoom:.4f}"], element, timeout)
    box = alpha_bbox(img)
    if box is None:
        raise RenderError(f"{path}#{element}: renders nothing")
    return img.crop(box)


def deck_zoom(deck: Deck, path: Path, size: int) -> float:
    """The zoom that draws this deck's cards at twice ``size`` on the longer side.

    Measured once per deck on the ace of spades at zoom 1: all cards of a deck
    share one size, and rendering at twice the output size then reducing gives
    the same anti-aliasing for every deck, whatever its document units.
    """
    probe = render_element(path, card_element(deck, "spade", "1"), 1.0)
    return 2 * size / max(probe.size)


def render_card(deck: Deck, path: Path, suit: str, rank: str, zoom: float, size: int) -> Image.Image:
    return fit_centred(render_element(path, card_element(deck, suit, rank), zoom), size)
