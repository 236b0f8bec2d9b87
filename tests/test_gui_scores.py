"""Calibrated score badges on result tiles, their setting, and the "strong matches only" and "follow the first
matches" filters."""

from __future__ import annotations

import pytest
from PySide6.QtCore import QRect, Qt
from PySide6.QtGui import QColor, QImage, QPainter, QStandardItem, QStandardItemModel
from PySide6.QtWidgets import QStyleOptionViewItem

from app.delegates import TileDelegate, badge_text
from app.mainwindow.widgets import FilterBar
from app.options import Settings
from app.results_model import ResultsModel
from app.roles import CalibratedScoreRole
from app.thumbnails import ThumbnailProvider
from core.calibration import STRONG
from core.expansion import EXPAND_DEFAULT
from core.query import SearchResult

EDGE = 96


def results(tmp_path, percentiles):
    return [SearchResult(path=str(tmp_path / f"missing-{n}.png"), score=0.5 + n / 100, rank=n + 1, image_id=n,
                         percentile=p, label=None if p is None else "related") for n, p in enumerate(percentiles)]


def paint(model, row: int) -> QImage:
    """The tile of ``row`` painted by the results delegate onto a white image."""
    delegate = TileDelegate(edge=EDGE)
    option = QStyleOptionViewItem()
    option.rect = QRect(0, 0, EDGE + 12, EDGE + 40)
    image = QImage(option.rect.size(), QImage.Format.Format_ARGB32)
    image.fill(QColor(255, 255, 255))
    painter = QPainter(image)
    delegate.paint(painter, option, model.index(row, 0))
    painter.end()
    return image


def badge_area(image: QImage) -> list[int]:
    """Pixels of the tile's top-left corner, where the badge sits."""
    return [image.pixel(x, y) for x in range(8, 30) for y in range(8, 20)]


@pytest.fixture
def model(qapp, qtmodeltester, tmp_path):
    provider = ThumbnailProvider(edge=EDGE)
    model = ResultsModel(provider)
    model.set_results(results(tmp_path, [82.4, None]))
    qtmodeltester.check(model)
    yield model
    provider.wait_idle()


def test_model_gives_the_calibrated_score_only_while_scores_are_shown(model, qtbot):
    assert model.data(model.index(0), CalibratedScoreRole) == pytest.approx(82.4)
    assert model.data(model.index(1), CalibratedScoreRole) is None
    assert "closer than 82 %" in model.data(model.index(0), Qt.ItemDataRole.ToolTipRole)
    with qtbot.waitSignal(model.dataChanged) as changed:
        model.set_show_scores(False)
    assert changed.args[2] == [CalibratedScoreRole] and changed.args[1].row() == 1
    assert model.data(model.index(0), CalibratedScoreRole) is None


def test_badge_is_painted_only_for_a_score_with_scores_shown(model):
    blank = QStandardItemModel()
    blank.appendRow(QStandardItem("no score"))  # a tile with no score at all, as in the library view
    plain = badge_area(paint(blank, 0))
    assert badge_area(paint(model, 0)) != plain
    assert badge_area(paint(model, 1)) == plain
    model.set_show_scores(False)
    assert badge_area(paint(model, 0)) == plain


def test_badge_text():
    assert badge_text(None) is None and badge_text(None, expanded=True) is None
    assert badge_text(82.4) == "82"
    assert badge_text(92.0, expanded=True) == "92 · very close"
    assert badge_text(10.0, expanded=True) == "10 · weak"


@pytest.mark.parametrize("check, field, first, then", [
    ("strong_check", "min_score", None, STRONG),  # "Strong matches only": off, then the strong threshold
    ("expand_check", "expand", EXPAND_DEFAULT, not EXPAND_DEFAULT),  # "Follow the first matches": on, then off
])
def test_filter_checkbox_maps_to_its_search_filter_and_round_trips(qtbot, tmp_path, check, field, first, then):
    settings = Settings(tmp_path / "settings.ini")
    bar = FilterBar()
    qtbot.addWidget(bar)
    bar.restore(settings)
    assert getattr(bar.filters(), field) == first
    with qtbot.waitSignal(bar.changed):
        getattr(bar, check).toggle()
    assert getattr(bar.filters(), field) == then
    bar.save(settings)
    settings.sync()
    again = FilterBar()
    qtbot.addWidget(again)
    with qtbot.assertNotEmitted(again.changed):
        again.restore(Settings(tmp_path / "settings.ini"))
    assert getattr(again.filters(), field) == then


def test_show_scores_option_defaults_on_and_persists(tmp_path):
    settings = Settings(tmp_path / "settings.ini")
    assert settings.get("show_scores") is True
    settings.set("show_scores", False)
    settings.sync()
    assert Settings(tmp_path / "settings.ini").get("show_scores") is False
