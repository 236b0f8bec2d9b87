"""The app's own line icons (resources/icons), drawn in the palette's text colour.

The SVGs use ``currentColor``; it is replaced with the palette's colour when an
icon is made, so the same files serve light and dark themes. Icons are rebuilt
when the palette changes (the window calls :func:`retint`).
"""

from __future__ import annotations

import weakref
from functools import lru_cache
from pathlib import Path

from PySide6.QtCore import QByteArray, QRectF, QSize, Qt
from PySide6.QtGui import QColor, QGuiApplication, QIcon, QPainter, QPalette, QPixmap
from PySide6.QtSvg import QSvgRenderer

from app import desktop_entry

ICONS = Path(__file__).resolve().parent.parent / "resources" / "icons"
SIZES = (16, 24, 32, 48)


def _render(svg: bytes, size: int, ratio: float) -> QPixmap:
    renderer = QSvgRenderer(QByteArray(svg))
    pix = QPixmap(QSize(round(size * ratio), round(size * ratio)))
    pix.fill(Qt.GlobalColor.transparent)
    painter = QPainter(pix)
    renderer.render(painter, QRectF(0, 0, pix.width(), pix.height()))
    painter.end()
    pix.setDevicePixelRatio(ratio)
    return pix


@lru_cache(maxsize=None)
def _icon(name: str, color: str, disabled: str) -> QIcon:
    text = (ICONS / f"{name}.svg").read_bytes()
    ratio = QGuiApplication.primaryScreen().devicePixelRatio() if QGuiApplication.primaryScreen() else 1.0
    icon = QIcon()
    for mode, c in ((QIcon.Mode.Normal, color), (QIcon.Mode.Disabled, disabled)):
        svg = text.replace(b"currentColor", c.encode())
        for size in SIZES:
            icon.addPixmap(_render(svg, size, ratio), mode)
    return icon


def _opaque(color: QColor, background: QColor) -> str:
    """SVG colours carry no alpha: a translucent palette colour is blended onto the background."""
    a = color.alphaF()
    return QColor(round(color.red() * a + background.red() * (1 - a)),
                  round(color.green() * a + background.green() * (1 - a)),
                  round(color.blue() * a + background.blue() * (1 - a))).name()


def icon(name: str, color: QColor | None = None) -> QIcon:
    """The named icon tinted for the current palette (or ``color``)."""
    pal = QGuiApplication.palette()
    window = pal.color(QPalette.ColorRole.Window)
    normal = color or pal.color(QPalette.ColorRole.WindowText)
    disabled = pal.color(QPalette.ColorGroup.Disabled, QPalette.ColorRole.WindowText)
    return _icon(name, _opaque(normal, window), _opaque(disabled, window))


_bound: list[tuple[weakref.ref, str]] = []


def bind(target, name: str):
    """Give an action or button the named icon, and re-tint it in :func:`retint`."""
    target.setIcon(icon(name))
    _bound.append((weakref.ref(target), name))
    return target


def retint() -> None:
    """After a palette change (light/dark switch): redraw every bound icon in the new colours."""
    clear()
    alive = []
    for ref, name in _bound:
        target = ref()
        if target is None:
            continue
        try:
            target.setIcon(icon(name))
        except RuntimeError:  # the C++ object is gone
            continue
        alive.append((ref, name))
    _bound[:] = alive


def app_icon() -> QIcon:
    """The application icon: the hicolor set the desktop entry installs, one file per size, so
    the title bar and the task switcher each get a size drawn for them rather than a scaled one."""
    result = QIcon()
    for rel in desktop_entry.icon_files():
        if rel.suffix == ".png":
            result.addFile(str(desktop_entry.ICON_THEME / rel))
    return result


def clear() -> None:
    _icon.cache_clear()
