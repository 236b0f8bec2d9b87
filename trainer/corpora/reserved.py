"""The guard that keeps evaluation-only art out of every training corpus.

Freedesktop icon themes, icon fonts (emoji and dingbat fonts draw pictograms,
not letters) and playing-card decks are reserved for independent
evaluation of the style model (see DATA.md). Training on them, even by
accident through a package that bundles a deck, would make that evaluation
measure memory instead of style. Every source, package and file the builder
touches passes through :func:`reserved_reason`, and the tests check the
configured sources and a built manifest against it.
"""

from __future__ import annotations

import re
from pathlib import PurePosixPath

# Folders that hold freedesktop icon and cursor themes, wherever they are installed.
_ICON_DIRS = ("share/icons", "share/pixmaps", ".icons")
# Package names (Debian or PyPI) that are icon themes or card games / card art.
_PACKAGE_PATTERNS = (
    r"icon-?theme", r"(^|[-_])icons?\d*($|[-_])", r"cursor-?theme", r"^hicolor", r"^adwaita",
    r"^breeze", r"^oxygen-icons", r"^gnome-themes", r"card", r"deck", r"aisleriot", r"pysol",
    r"^kpat", r"^lskat", r"solitaire", r"patience", r"poker", r"skat", r"freecell", r"tarot", r"emoji",
)
# Path components that mean "this folder is a card deck or an icon theme".
_COMPONENT_PATTERNS = (
    r"card", r"deck", r"aisleriot", r"pysol", r"^kpat$", r"^lskat$", r"solitaire", r"patience",
    r"poker", r"tarot", r"icon-?theme", r"cursors?$",
    # Any icon folder or file, a game's own included ("icons", "ui-icons", "skill_icons", "tux_icon").
    r"(^|[-_])icons?$",
    # Icon fonts: emoji and dingbat families ("Head-Ding_Maker_BRK", "Line_Dings_BRK", "Wingdings"),
    # matched as whole words so "buildings" and "padding" stay usable.
    r"emoji", r"dingbat", r"(^|[-_ ])dings?($|[-_ ])", r"wingdings?", r"webdings?",
)
# Sets of suited game pieces drawn like a deck (mahjong and domino tiles): close enough to
# playing cards in layout and purpose that they stay out too.
_DECK_LIKE = re.compile(r"mahjongg?(lib)?/tilesets|dominoe?s", re.IGNORECASE)
_PACKAGE_RE = re.compile("|".join(_PACKAGE_PATTERNS), re.IGNORECASE)
_COMPONENT_RE = re.compile("|".join(_COMPONENT_PATTERNS), re.IGNORECASE)


def reserved_reason(name: str) -> str | None:
    """Why ``name`` (a package name or a file path) is reserved, or None when it may be used.

    Deliberately broad: a false positive costs a few training images, a false
    negative costs the honesty of the evaluation.
    """
    text = str(name).strip()
    if not text:
        return None
    if "/" not in text:
        if _PACKAGE_RE.search(text):
            return f"package {text!r} is an icon theme or a card game/deck (reserved for evaluation)"
        return None
    posix = PurePosixPath(text.replace("\\", "/"))
    joined = "/" + "/".join(posix.parts).lstrip("/") + "/"
    if _DECK_LIKE.search(joined):
        return f"{text}: a deck-like tile set (mahjong/domino), reserved with the card decks"
    for folder in _ICON_DIRS:
        if f"/{folder}/" in joined:
            return f"{text}: under {folder}/ (freedesktop icon themes are reserved for evaluation)"
    for part in posix.parts[:-1] + (posix.stem,):
        if _COMPONENT_RE.search(part):
            return f"{text}: {part!r} looks like a card deck, icon theme or icon font (reserved for evaluation)"
    return None


def is_reserved(name: str) -> bool:
    """True when :func:`reserved_reason` rejects ``name``."""
    return reserved_reason(name) is not None
