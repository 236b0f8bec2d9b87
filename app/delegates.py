"""Painting of result tiles and moodboard cards, in the palette's colours.

Both delegates draw straight from model roles and never load anything: a
missing thumbnail is a placeholder until the model reports it changed. The
moodboard card's little buttons are regions hit-tested in ``editorEvent`` and
edit the model through ``setData``, like any other editor would. A result tile
carries its calibrated score (:mod:`core.calibration`) as a badge in the top-left
corner, coloured by its label, when the model gives one (``CalibratedScoreRole``).
"""

from __future__ import annotations

import os

from PySide6.QtCore import QEvent, QModelIndex, QPointF, QRect, QRectF, QSize, Qt
from PySide6.QtGui import QColor, QFont, QFontMetrics, QPainter, QPainterPath, QPalette, QPen, QPixmap
from PySide6.QtWidgets import QStyle, QStyledItemDelegate, QStyleOptionViewItem

from app.moodboard_model import MAX_WEIGHT, MIN_WEIGHT
from core.calibration import label_for

from app.roles import CalibratedScoreRole, NegativeRole, PathRole, ThumbFailedRole, WeightRole

RADIUS = 6
NEGATIVE = QColor(214, 69, 65)
WEIGHT_STEP = 0.5
# Badge colours by label: the strong ones stand out, the weak ones recede.
BADGE_COLOURS = {"very close": QColor(30, 140, 70, 225), "close": QColor(35, 105, 170, 225),
                 "related": QColor(0, 0, 0, 150), "weak": QColor(0, 0, 0, 95)}


def mix(a: QColor, b: QColor, t: float) -> QColor:
    return QColor(round(a.red() * (1 - t) + b.red() * t), round(a.green() * (1 - t) + b.green() * t),
                  round(a.blue() * (1 - t) + b.blue() * t))


def draw_thumbnail(painter: QPainter, rect: QRect, pixmap: QPixmap | None, palette: QPalette,
                   failed: str | None = None) -> QRect:
    """Aspect-fit ``pixmap`` into ``rect``; a soft placeholder while it loads. Returns the drawn rect."""
    if pixmap is None or pixmap.isNull():
        path = QPainterPath()
        path.addRoundedRect(QRectF(rect), RADIUS, RADIUS)
        painter.fillPath(path, mix(palette.color(QPalette.ColorRole.Base),
                                   palette.color(QPalette.ColorRole.Text), 0.07))
        if failed:
            painter.setPen(palette.color(QPalette.ColorGroup.Disabled, QPalette.ColorRole.Text))
            painter.drawText(rect.adjusted(6, 6, -6, -6), Qt.AlignmentFlag.AlignCenter | Qt.TextFlag.TextWordWrap,
                             "cannot show\n" + failed)
        return rect
    natural = pixmap.deviceIndependentSize().toSize()
    size = natural if natural.width() <= rect.width() and natural.height() <= rect.height() \
        else natural.scaled(rect.size(), Qt.AspectRatioMode.KeepAspectRatio)
    target = QRect(0, 0, size.width(), size.height())
    target.moveCenter(rect.center())
    if size == natural:
        painter.drawPixmap(target.topLeft(), pixmap)  # corners are rounded already: a plain blit
    else:
        painter.drawPixmap(target, pixmap)
    return target


def chip(painter: QPainter, anchor: QPointF, text: str, font: QFont, bg: QColor, fg: QColor,
         align_right: bool = True) -> QRectF:
    fm = QFontMetrics(font)
    w, h = fm.horizontalAdvance(text) + 10, fm.height() + 2
    rect = QRectF(anchor.x() - w if align_right else anchor.x(), anchor.y(), w, h)
    path = QPainterPath()
    path.addRoundedRect(rect, h / 2, h / 2)
    painter.fillPath(path, bg)
    painter.setFont(font)
    painter.setPen(fg)
    painter.drawText(rect, Qt.AlignmentFlag.AlignCenter, text)
    return rect


def badge_text(percentile: float | None, expanded: bool = False) -> str | None:
    """A tile's badge: the calibrated score, with its label while the tile is hovered or selected."""
    if percentile is None:
        return None
    return f"{percentile:.0f} · {label_for(percentile)}" if expanded else f"{percentile:.0f}"



def begin_tile(painter: QPainter, option: QStyleOptionViewItem) -> tuple[QRect, bool, bool]:
    """Start painting a tile the way every grid and list of images here does: save the painter, smooth
    drawing, and a rounded highlight behind a selected or hovered tile. Returns the tile's cell, selected,
    hovered; the caller restores the painter."""
    painter.save()
    painter.setRenderHint(QPainter.RenderHint.Antialiasing)
    painter.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform)
    cell = option.rect.adjusted(3, 3, -3, -3)
    selected = bool(option.state & QStyle.StateFlag.State_Selected)
    hovered = bool(option.state & QStyle.StateFlag.State_MouseOver)
    if selected or hovered:
        pal = option.palette
        path = QPainterPath()
        path.addRoundedRect(QRectF(cell), RADIUS + 2, RADIUS + 2)
        painter.fillPath(path, mix(pal.color(QPalette.ColorRole.Base), pal.color(QPalette.ColorRole.Highlight),
                                   0.35 if selected else 0.12))
    return cell, selected, hovered


class TileDelegate(QStyledItemDelegate):
    """A results tile: thumbnail, file name, and a badge with the calibrated score when the model gives one."""

    def __init__(self, edge: int = 160, parent=None) -> None:
        super().__init__(parent)
        self.edge = edge

    def caption_height(self, option: QStyleOptionViewItem) -> int:
        return self.caption_height_for(option.font)

    def caption_height_for(self, font: QFont) -> int:
        return QFontMetrics(self.small_font(font)).height() + 6

    @staticmethod
    def small_font(font: QFont) -> QFont:
        f = QFont(font)
        f.setPointSizeF(max(7.0, f.pointSizeF() * 0.85))
        return f

    def sizeHint(self, option: QStyleOptionViewItem, index: QModelIndex) -> QSize:
        return QSize(self.edge + 12, self.edge + 12 + self.caption_height(option))

    def paint(self, painter: QPainter, option: QStyleOptionViewItem, index: QModelIndex) -> None:
        pal = option.palette
        cell, selected, hovered = begin_tile(painter, option)
        thumb = QRect(cell.left() + 3, cell.top() + 3, cell.width() - 6, cell.width() - 6)
        drawn = draw_thumbnail(painter, thumb, index.data(Qt.ItemDataRole.DecorationRole), pal,
                               index.data(ThumbFailedRole))
        if selected:
            painter.setPen(QPen(pal.color(QPalette.ColorRole.Highlight), 2))
            painter.drawRoundedRect(QRectF(drawn).adjusted(-1, -1, 1, 1), 4, 4)
        small = self.small_font(option.font)
        percentile = index.data(CalibratedScoreRole)
        badge = badge_text(percentile, hovered or selected)
        if badge:
            chip(painter, QPointF(drawn.left() + 4, drawn.top() + 4), badge, small,
                 BADGE_COLOURS[label_for(percentile)], QColor(255, 255, 255), align_right=False)
        caption = QRect(cell.left() + 4, thumb.bottom() + 3, cell.width() - 8, self.caption_height(option) - 3)
        painter.setFont(small)
        painter.setPen(pal.color(QPalette.ColorRole.Text if selected or hovered
                                 else QPalette.ColorRole.PlaceholderText))
        name = index.data(Qt.ItemDataRole.DisplayRole) or ""
        path = index.data(PathRole)
        if (hovered or selected) and path:  # the folder tells same-named files apart
            name = f"{os.path.basename(os.path.dirname(path))}/{name}"
        name = QFontMetrics(small).elidedText(name, Qt.TextElideMode.ElideMiddle, caption.width())
        painter.drawText(caption, Qt.AlignmentFlag.AlignHCenter | Qt.AlignmentFlag.AlignTop, name)
        if option.state & QStyle.StateFlag.State_HasFocus and not selected:
            painter.setPen(QPen(pal.color(QPalette.ColorRole.Highlight), 1, Qt.PenStyle.DotLine))
            painter.drawRoundedRect(QRectF(cell), RADIUS + 2, RADIUS + 2)
        painter.restore()


class MoodboardDelegate(QStyledItemDelegate):
    """A moodboard card: thumbnail, a sign toggle, weight steppers and a remove button."""

    CARD = 104
    BAR = 26

    def sizeHint(self, option: QStyleOptionViewItem, index: QModelIndex) -> QSize:
        return QSize(self.CARD + 10, self.CARD + self.BAR + 12)

    def regions(self, rect: QRect) -> dict[str, QRect]:
        """Hit-test rectangles, shared by painting and clicking."""
        card = rect.adjusted(5, 5, -5, -5)
        thumb = QRect(card.left(), card.top(), card.width(), self.CARD)
        bar_top = thumb.bottom() + 4
        b = self.BAR - 4
        return {
            "thumb": thumb,
            "remove": QRect(thumb.right() - b + 1, thumb.top() + 2, b - 2, b - 2),
            "sign": QRect(card.left(), bar_top, b, b),
            "minus": QRect(card.right() - 2 * b - 34, bar_top, b, b),
            "weight": QRect(card.right() - b - 34, bar_top, 34, b),
            "plus": QRect(card.right() - b + 1, bar_top, b, b),
        }

    def paint(self, painter: QPainter, option: QStyleOptionViewItem, index: QModelIndex) -> None:
        pal = option.palette
        r = self.regions(option.rect)
        negative = bool(index.data(NegativeRole))
        weight = float(index.data(WeightRole) or 1.0)
        hovered = bool(option.state & QStyle.StateFlag.State_MouseOver)
        selected = bool(option.state & QStyle.StateFlag.State_Selected)
        accent = NEGATIVE if negative else pal.color(QPalette.ColorRole.Highlight)
        painter.save()
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        painter.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform)
        card = QRectF(option.rect.adjusted(2, 2, -2, -2))
        path = QPainterPath()
        path.addRoundedRect(card, RADIUS + 2, RADIUS + 2)
        painter.fillPath(path, mix(pal.color(QPalette.ColorRole.Base), accent, 0.22 if selected else 0.08))
        painter.setPen(QPen(accent, 2 if selected else 1.2))
        painter.drawPath(path)
        draw_thumbnail(painter, r["thumb"], index.data(Qt.ItemDataRole.DecorationRole), pal)
        if negative:
            painter.fillRect(r["thumb"], QColor(NEGATIVE.red(), NEGATIVE.green(), NEGATIVE.blue(), 60))
        small = TileDelegate.small_font(option.font)
        bold = QFont(small)
        bold.setBold(True)
        # sign toggle: a filled round button, "+" for more like this, "−" for less like this
        sign = QRectF(r["sign"])
        painter.setPen(Qt.PenStyle.NoPen)
        painter.setBrush(accent)
        painter.drawEllipse(sign)
        painter.setPen(QPen(QColor(255, 255, 255), 2))
        c = sign.center()
        painter.drawLine(QPointF(c.x() - 5, c.y()), QPointF(c.x() + 5, c.y()))
        if not negative:
            painter.drawLine(QPointF(c.x(), c.y() - 5), QPointF(c.x(), c.y() + 5))
        text = pal.color(QPalette.ColorRole.Text)
        painter.setPen(text)
        painter.setFont(bold)
        painter.drawText(r["weight"], Qt.AlignmentFlag.AlignCenter, f"×{weight:.1f}")
        for name, glyph in (("minus", "−"), ("plus", "+")):
            rect = QRectF(r[name]).adjusted(2, 2, -2, -2)
            painter.setPen(QPen(mix(pal.color(QPalette.ColorRole.Base), text, 0.45), 1))
            painter.setBrush(Qt.BrushStyle.NoBrush)
            painter.drawRoundedRect(rect, 4, 4)
            painter.setPen(text)
            painter.drawText(rect, Qt.AlignmentFlag.AlignCenter, glyph)
        if hovered or selected:
            rm = QRectF(r["remove"])
            painter.setPen(Qt.PenStyle.NoPen)
            painter.setBrush(QColor(0, 0, 0, 150))
            painter.drawEllipse(rm)
            painter.setPen(QPen(QColor(255, 255, 255), 1.6))
            d = rm.width() * 0.22
            c = rm.center()
            painter.drawLine(QPointF(c.x() - d, c.y() - d), QPointF(c.x() + d, c.y() + d))
            painter.drawLine(QPointF(c.x() - d, c.y() + d), QPointF(c.x() + d, c.y() - d))
        painter.restore()

    def editorEvent(self, event: QEvent, model, option: QStyleOptionViewItem, index: QModelIndex) -> bool:
        if event.type() != QEvent.Type.MouseButtonRelease or event.button() != Qt.MouseButton.LeftButton:
            return super().editorEvent(event, model, option, index)
        pos = event.position().toPoint()
        r = self.regions(option.rect)
        if r["remove"].contains(pos):
            model.remove(index.row())
        elif r["sign"].contains(pos):
            model.setData(index, not index.data(NegativeRole), NegativeRole)
        elif r["minus"].contains(pos):
            model.setData(index, step_weight(index.data(WeightRole), -1), WeightRole)
        elif r["plus"].contains(pos):
            model.setData(index, step_weight(index.data(WeightRole), +1), WeightRole)
        else:
            return super().editorEvent(event, model, option, index)
        return True


def step_weight(weight: float, direction: int) -> float:
    """Weights step 0.5 at a time, with a finer step below 1 so a faint influence is possible."""
    weight = float(weight or 1.0)
    step = WEIGHT_STEP if (weight > 1.0 or (weight == 1.0 and direction > 0)) else 0.25
    return min(MAX_WEIGHT, max(MIN_WEIGHT, round(weight + direction * step, 2)))
