"""The Styles page: style clusters computed off the GUI thread, shown as rows of representative thumbnails,
opened into their images ranked by closeness, saved as a moodboard or sent to the moodboard."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

import core.clusters
from app.engine import Engine
from app.styles_model import PixmapsRole, RepresentativesRole, SizeRole
from app.styles_page import MOODBOARD_IMAGES, StylesPage
from app.thumbnails import ThumbnailProvider
from core.clusters import default_k
from core.library import Library
from library_fixtures import started_engine, style_image
from test_clusters import PER_STYLE, STYLES, indexed, world  # noqa: F401,F811 (fixtures: one library a module)

pytestmark = pytest.mark.qt_log_ignore("This plugin does not support")  # offscreen platform limits


@pytest.fixture
def engine(qtbot, world):
    engine = started_engine(qtbot, world.library, world.model, batch_size=8)
    yield engine
    engine.shutdown()


@pytest.fixture
def page(qtbot, engine, tmp_path):
    page = StylesPage(engine, ThumbnailProvider(folder=tmp_path / "thumbs"))
    qtbot.addWidget(page)
    page.resize(1100, 700)
    yield page
    page.thumbs.wait_idle()


def shown(qtbot, page: StylesPage) -> None:
    page.show()
    settle(qtbot, page)


def settle(qtbot, page: StylesPage) -> None:
    """Wait for the newest clustering and the opened style's images."""
    qtbot.waitUntil(lambda: not page.computing and not page.settle.isActive(), timeout=20000)
    qtbot.waitUntil(lambda: page.opened is None or page.members.rowCount() == page.opened.size, timeout=10000)


def style_of(path: str) -> str:
    return Path(path).parent.name


def test_styles_appear_when_shown_with_k_for_the_library_size(qtbot, qtmodeltester, page):
    assert page.model.rowCount() == 0 and page.stale  # nothing is computed for a hidden page
    shown(qtbot, page)
    n = STYLES * PER_STYLE
    assert page.model.rowCount() == default_k(n)
    assert sum(page.model.index(r).data(SizeRole) for r in range(page.model.rowCount())) == n
    assert page.status.text().startswith(f"{default_k(n)} styles in {n} images")
    qtmodeltester.check(page.model)


def test_the_number_of_styles_can_be_set_and_styles_are_found(qtbot, qtmodeltester, page):
    shown(qtbot, page)
    page.count.setValue(STYLES)
    settle(qtbot, page)
    assert page.model.rowCount() == STYLES and page.styles.requested_k == STYLES
    for row in range(STYLES):
        paths = page.model.index(row).data(RepresentativesRole)
        assert paths and len({style_of(p) for p in paths}) == 1  # each row is one generated style
    qtmodeltester.check(page.model)


def test_opening_a_style_lists_its_images_closest_first(qtbot, page):
    shown(qtbot, page)
    page.count.setValue(STYLES)
    settle(qtbot, page)
    page.list.setCurrentIndex(page.model.index(2))
    settle(qtbot, page)
    cluster = page.model.cluster(2)
    results = page.members.results()
    assert page.opened is cluster and [r.image_id for r in results] == cluster.ids.tolist()
    assert [r.score for r in results] == sorted((r.score for r in results), reverse=True)
    assert results[0].path == cluster.representatives[0]
    assert "Style 3" in page.title.text() and page.save_button.isEnabled()


def test_thumbnails_load_lazily_for_painted_rows(qtbot, page):
    shown(qtbot, page)
    index = page.model.index(0)
    qtbot.waitUntil(lambda: all(p is not None for p in index.data(PixmapsRole)), timeout=10000)
    assert not page.grab().isNull()


def test_a_style_saved_as_a_moodboard_and_sent_to_the_moodboard(qtbot, page, engine, world):
    shown(qtbot, page)
    with qtbot.waitSignal(engine.moodboard_saved, timeout=10000) as saved:
        page.save_as_moodboard("inky")
    assert saved.args == ["inky"]
    expected = [r.path for r in page.members.results()[:MOODBOARD_IMAGES]]
    with Library.open(world.library) as lib:
        assert [i.path for i in lib.load_moodboard("inky")] == expected
    with qtbot.waitSignal(page.add_to_moodboard) as added:
        page.add_button.click()
    assert added.args == [expected]
    selection = page.grid.selectionModel()
    for row in (1, 3):
        selection.select(page.members.index(row), selection.SelectionFlag.Select)
    with qtbot.waitSignal(page.add_to_moodboard) as added:
        page.add_button.click()
    assert added.args == [[page.members.result(1).path, page.members.result(3).path]]
    with qtbot.waitSignal(page.more_like_this) as more:
        page.grid.open_requested.emit(page.members.index(0))
    assert more.args == [page.members.result(0).path]


def test_clustering_runs_off_the_gui_thread(qtbot, page, monkeypatch):
    threads = []
    real = core.clusters.spherical_kmeans

    def spy(*args, **kwargs):
        threads.append(threading.current_thread())
        return real(*args, **kwargs)

    monkeypatch.setattr(core.clusters, "spherical_kmeans", spy)
    shown(qtbot, page)
    page.recompute_button.click()
    assert not page.recompute_button.isEnabled() and page.computing  # the click returned before the run
    settle(qtbot, page)
    assert len(threads) == 2 and all(t is not threading.main_thread() for t in threads)


def test_new_images_join_the_styles_after_indexing(qtbot, page, engine, world):
    shown(qtbot, page)
    page.count.setValue(STYLES)
    settle(qtbot, page)
    before = page.styles.count
    for v in range(2):
        style_image(world.art / "style01" / f"new{v}.png", 1, 40 + v)
    with qtbot.waitSignal(engine.index_finished, timeout=30000):
        engine.index()
    qtbot.waitUntil(lambda: page.styles.count == before + 2, timeout=20000)
    settle(qtbot, page)
    assert page.styles.assigned == 2 and "2 changed since" in page.status.text()
    rows = [r for r in range(page.model.rowCount())
            if any(style_of(p) == "style01" for p in page.model.index(r).data(RepresentativesRole))]
    assert len(rows) == 1 and page.model.index(rows[0]).data(SizeRole) == PER_STYLE + 2
    page.recompute_button.click()
    settle(qtbot, page)
    assert page.styles.assigned == 0 and page.styles.count == before + 2


def test_an_empty_library_says_so(qtbot, indexed, tmp_path):
    engine = Engine()
    with qtbot.waitSignals([engine.library_ready, engine.model_ready], timeout=20000):
        engine.open_library(str(tmp_path / "empty"))
        engine.load_model(str(indexed.model), "cpu")
    page = StylesPage(engine, ThumbnailProvider(folder=tmp_path / "thumbs"))
    qtbot.addWidget(page)
    try:
        shown(qtbot, page)
        assert page.model.rowCount() == 0 and "empty" in page.status.text() and not page.save_button.isEnabled()
    finally:
        engine.shutdown()
