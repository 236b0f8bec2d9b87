"""Unit tests of the GUI's parts: options, the generic worker, drops, thumbnails, models."""

from __future__ import annotations

import os
from types import SimpleNamespace

import pytest
from PySide6.QtCore import QByteArray, QMimeData, Qt, QUrl
from PySide6.QtGui import QColor, QImage

from app.dialogs import FailuresModel
from app.dropping import read_mime, save_pasted
from app.moodboard_model import MAX_WEIGHT, MIN_WEIGHT, MoodboardEntry, MoodboardModel
from app.options import OPTIONS, Settings
from app.panels import format_eta, progress_text
from app.results_model import ResultsModel
from app.roles import ImageIdRole, NegativeRole, PathRole, ScoreRole, ThumbFailedRole, WeightRole
from app.thumbnails import ThumbnailProvider, load_thumbnail, thumbnail_dir
from app.workers import Worker, run_in_thread
from bench.probe import EventLoopProbe
from conftest import make_image

pytestmark = pytest.mark.qt_log_ignore("This plugin does not support")  # offscreen platform limits


def result(path, score=0.5, rank=0, image_id=1):
    return SimpleNamespace(path=str(path), score=score, rank=rank, image_id=image_id)


# -- options ---------------------------------------------------------------------------------
def test_settings_defaults_persist_and_survive_garbage(tmp_path):
    s = Settings(tmp_path / "a.ini")
    assert s.get("thumb_size") == OPTIONS["thumb_size"].default
    assert s.get("exclude_query_folders") is False
    s.set("thumb_size", 200)
    s.set("exclude_query_folders", True)
    s.set_moodboard([{"path": "/x.png", "weight": 2.0, "negative": True}])
    s.set("window/geometry", QByteArray(b"abc"))
    s.sync()
    again = Settings(tmp_path / "a.ini")
    assert again.get("thumb_size") == 200
    assert again.get("exclude_query_folders") is True
    assert again.moodboard() == [{"path": "/x.png", "weight": 2.0, "negative": True}]
    assert bytes(again.get("window/geometry")) == b"abc"
    again.set("thumb_size", "not a number")
    again.set("moodboard", "{broken json")
    assert again.get("thumb_size") == OPTIONS["thumb_size"].default
    assert again.moodboard() == []
    with pytest.raises(KeyError):
        again.set("no_such_option", 1)


def test_settings_default_file_follows_xdg_config_home(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "cfg"))
    assert str(Settings().path).startswith(str(tmp_path / "cfg"))


# -- worker ------------------------------------------------------------------------------------
def test_worker_emits_each_yield_then_the_return_value(qtbot):
    def job(n):
        for i in range(n):
            yield i
        return "done"

    seen = []
    worker = Worker(job, 3)
    worker.signals.progress.connect(seen.append)
    with qtbot.waitSignal(worker.signals.returned, timeout=5000) as ret:
        worker.start()
    assert seen == [0, 1, 2]
    assert ret.args == ["done"]


def test_worker_abort_stops_between_yields_and_closes_the_generator(qtbot):
    import threading

    gate = threading.Event()
    closed = []

    def job():
        try:
            for i in range(1000):
                yield i
                gate.wait(5)
        finally:
            closed.append(True)

    seen = []
    worker = Worker(job)
    worker.signals.progress.connect(seen.append)
    returned = []
    worker.signals.returned.connect(returned.append)
    worker.start()
    qtbot.waitUntil(lambda: seen == [0], timeout=5000)
    with qtbot.waitSignal(worker.signals.aborted, timeout=5000):
        worker.abort()
        gate.set()
    qtbot.waitUntil(lambda: worker.done.is_set())
    assert closed == [True]
    assert len(seen) <= 2 and returned == []


def test_worker_reports_exceptions(qtbot):
    def boom():
        raise ValueError("bad")

    errors = []
    worker = Worker(boom)
    worker.signals.errored.connect(errors.append)
    with qtbot.waitSignal(worker.signals.finished, timeout=5000):
        worker.start()
    assert isinstance(errors[0], ValueError)


def test_run_in_thread_connects_slots(qtbot):
    got = []
    worker = run_in_thread(lambda: 41 + 1, returned=got.append)
    qtbot.waitUntil(lambda: got == [42], timeout=5000)
    assert worker.done.is_set()


# -- drops -----------------------------------------------------------------------------------------
def test_drop_sorts_files_folders_and_refuses_web_links(tmp_path):
    img = make_image(tmp_path / "a.png")
    txt = tmp_path / "notes.txt"
    txt.write_text("x")
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(img)), QUrl.fromLocalFile(str(tmp_path)), QUrl.fromLocalFile(str(txt)),
                  QUrl("https://example.com/picture.jpg")])
    content = read_mime(mime)
    assert content.files == [str(img)]
    assert content.folders == [str(tmp_path)]
    assert content.ignored == [str(txt)]
    assert content.web == ["https://example.com/picture.jpg"]
    assert "not downloaded" in content.message()


def test_web_only_drop_is_empty_with_a_clear_message():
    mime = QMimeData()
    mime.setUrls([QUrl("http://example.com/x.png")])
    content = read_mime(mime)
    assert content.empty
    assert "offline" in content.message()


def test_image_data_is_saved_once_by_content(tmp_path):
    image = QImage(20, 10, QImage.Format.Format_RGB32)
    image.fill(QColor(200, 30, 30))
    mime = QMimeData()
    mime.setImageData(image)
    mime.setUrls([QUrl("https://example.com/x.png")])  # a browser drag: link plus the picture
    content = read_mime(mime)
    assert len(content.images) == 1 and content.message() is None
    a = save_pasted(content.images[0], tmp_path)
    b = save_pasted(content.images[0], tmp_path)
    assert a == b and os.path.isfile(a)
    assert QImage(a).size() == image.size()


# -- thumbnails and models ---------------------------------------------------------------------
def test_thumbnails_load_lazily_off_thread_and_are_cached_on_disk(qtbot, tmp_path):
    paths = [make_image(tmp_path / f"{i}.png", size=(90, 60), seed=i) for i in range(3)]
    provider = ThumbnailProvider(edge=48)
    model = ResultsModel(provider)
    model.set_results([result(p, rank=i, image_id=i) for i, p in enumerate(paths)])
    index = model.index(1)
    assert model.data(index, Qt.ItemDataRole.DecorationRole) is None  # placeholder first
    with qtbot.waitSignal(model.dataChanged, timeout=5000) as changed:
        pass
    assert changed.args[0].row() == 1 and changed.args[1].row() == 1
    pix = model.data(index, Qt.ItemDataRole.DecorationRole)
    assert pix is not None and max(pix.width(), pix.height()) == 48
    qtbot.waitUntil(lambda: provider.pending() == 0, timeout=5000)
    cached = list(thumbnail_dir().rglob("*.jpg"))
    assert len(cached) == 1  # only the row that was asked for
    assert load_thumbnail(str(paths[1]), 30).width() == 30  # served from the disk cache


def test_broken_image_thumbnail_reports_reason(qtbot, tmp_path):
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n broken")
    provider = ThumbnailProvider(edge=48)
    model = ResultsModel(provider)
    model.set_results([result(bad)])
    model.data(model.index(0), Qt.ItemDataRole.DecorationRole)
    qtbot.waitUntil(lambda: model.data(model.index(0), ThumbFailedRole) is not None, timeout=5000)
    assert model.data(model.index(0), Qt.ItemDataRole.DecorationRole) is None


def test_results_model_roles_and_drag_data(qtmodeltester, tmp_path):
    provider = ThumbnailProvider(edge=48)
    model = ResultsModel(provider)
    model.set_results([result(tmp_path / "a.png", 0.9, 0, 7), result(tmp_path / "b.png", 0.8, 1, 8)])
    qtmodeltester.check(model)
    i = model.index(0)
    assert model.data(i, PathRole).endswith("a.png")
    assert model.data(i, ScoreRole) == pytest.approx(0.9)
    assert model.data(i, ImageIdRole) == 7
    assert "score 0.900" in model.data(i, Qt.ItemDataRole.ToolTipRole)
    mime = model.mimeData([model.index(1), model.index(0)])
    assert [u.toLocalFile() for u in mime.urls()] == [str(tmp_path / "a.png"), str(tmp_path / "b.png")]
    assert model.flags(i) & Qt.ItemFlag.ItemIsDragEnabled
    provider.wait_idle()


def test_moodboard_model_edits(qtmodeltester, qtbot):
    model = MoodboardModel(ThumbnailProvider(edge=48))
    with qtbot.waitSignal(model.changed):
        assert model.add([MoodboardEntry("/a.png"), MoodboardEntry("/b.png"), MoodboardEntry("/a.png")]) == 2
    qtmodeltester.check(model)
    assert model.add([MoodboardEntry("/b.png")]) == 0
    i = model.index(1)
    with qtbot.waitSignal(model.changed):
        assert model.setData(i, True, NegativeRole)
    assert model.data(i, NegativeRole) is True
    assert not model.setData(i, True, NegativeRole)  # no change, no signal-worthy edit
    assert model.setData(i, 99, WeightRole) and model.data(i, WeightRole) == MAX_WEIGHT
    assert model.setData(i, -3, WeightRole) and model.data(i, WeightRole) == MIN_WEIGHT
    assert "less like this" in model.data(i, Qt.ItemDataRole.ToolTipRole)
    model.remove(0)
    assert [e.path for e in model.entries()] == ["/b.png"]
    assert MoodboardEntry.from_dict(model.entries()[0].to_dict()) == MoodboardEntry("/b.png", MIN_WEIGHT, True)
    qtmodeltester.check(model)


def test_failures_model(qtmodeltester):
    model = FailuresModel()
    model.set_failures([SimpleNamespace(path="/x/bad.jpg", reason="damaged or truncated image")])
    qtmodeltester.check(model)
    assert model.data(model.index(0, 1)) == "damaged or truncated image"
    assert model.headerData(0, Qt.Orientation.Horizontal) == "File"
    assert model.as_text() == "/x/bad.jpg\tdamaged or truncated image"


def test_progress_text_and_eta():
    p = SimpleNamespace(phase="embed", done=1234, total=5000, rate=42.0, eta_s=83.0)
    assert progress_text(p) == "Indexing 1,234 / 5,000 · 42.0 images/s · 1:23 left"
    assert format_eta(3725) == "1:02:05"
    assert format_eta(None) == "–"


def test_probe_measures_a_stall(qtbot):
    import time

    probe = EventLoopProbe(interval_ms=5)
    probe.start()
    qtbot.wait(50)
    time.sleep(0.15)  # block the event loop on purpose
    qtbot.wait(50)
    probe.stop()
    assert probe.max_gap_ms >= 140
    assert probe.over(100) >= 1
    stall = max(probe.stalls, key=lambda s: s.gap_ms)
    assert stall.cpu_ms < 100  # sleeping is not CPU time: the probe tells waiting from working
    if stall.queued_ms is not None:
        assert stall.blocked_ms >= 50


def test_painting_tiles_without_thumbnails_keeps_none_alive(qtbot, tmp_path):
    """Regression: PySide6 6.12.0 on Python 3.11 drops a reference to None on every void Qt call,
    so painting a grid soon aborts the interpreter; pyproject.toml keeps that version out."""
    import gc
    import sys

    from app.views import ResultsView

    provider = ThumbnailProvider(edge=48)
    model = ResultsModel(provider)
    model.set_results([result(tmp_path / f"missing-{i}.png", rank=i, image_id=i) for i in range(60)])
    view = ResultsView()
    qtbot.addWidget(view)
    view.setModel(model)
    view.resize(600, 400)
    view.set_tile_size(72)
    view.show()
    view.grab()  # the first paint asks for every thumbnail: let those (failing) jobs end and their garbage go,
    provider.wait_idle()  # so that only painting runs while None's count is watched
    gc.collect()
    gc.disable()
    try:
        before = sys.getrefcount(None)
        for _ in range(30):
            view.grab()
        after = sys.getrefcount(None)
    finally:
        gc.enable()
    assert after >= before - 10


def test_prune_cache_keeps_the_newest_thumbnails(tmp_path):
    import time as _time

    from app.thumbnails import prune_cache

    for i in range(5):
        f = tmp_path / "ab" / f"{i}.jpg"
        f.parent.mkdir(exist_ok=True)
        f.write_bytes(b"x" * 100)
        os.utime(f, (_time.time() - 100 + i, _time.time() - 100 + i))
    assert prune_cache(tmp_path, limit=250) == 3
    assert sorted(p.name for p in (tmp_path / "ab").iterdir()) == ["3.jpg", "4.jpg"]


def test_clipboard_data_made_in_python_is_handed_to_qt_before_exit(qapp):
    """Qt frees the clipboard's data after Python has gone; Python-made QMimeData then crashes at exit."""
    import shiboken6
    from PySide6.QtGui import QGuiApplication, QImage

    from app.mainwindow.desktop import release_clipboard

    image = QImage(8, 8, QImage.Format.Format_RGB32)
    image.fill(0xFF2040)
    mime = QMimeData()
    mime.setImageData(image)
    mime.setUrls([QUrl.fromLocalFile("/tmp/a.png")])
    clipboard = QGuiApplication.clipboard()
    clipboard.setMimeData(mime)
    assert shiboken6.createdByPython(clipboard.mimeData())
    release_clipboard()
    assert not shiboken6.createdByPython(clipboard.mimeData())
    assert clipboard.image().pixel(0, 0) == image.pixel(0, 0)


def test_a_finished_worker_lives_until_the_gui_thread_has_its_signals(qtbot):
    """Collected in the pool thread, a worker deleted its signals under events still queued from them."""
    import shiboken6

    from app.workers import Worker, run_in_thread

    got = []
    worker = run_in_thread(lambda: 42, returned=got.append)
    key = id(worker)
    assert worker.done.wait(10)
    signals = worker.signals
    del worker
    assert key in Worker._live and shiboken6.isValid(signals) and got == []  # nothing delivered yet
    qtbot.waitUntil(lambda: key not in Worker._live, timeout=5000)
    assert got == [42]


def test_sigterm_closes_the_window_by_its_close_path_and_is_handed_back_after(qtbot):
    """A desktop session ends apps with SIGTERM: the window closes (settings saved, children reaped)."""
    import os
    import signal

    from PySide6.QtWidgets import QWidget

    from app.main import close_on_sigterm

    closed = []

    class Window(QWidget):
        def closeEvent(self, event) -> None:
            closed.append(True)
            super().closeEvent(event)

    window = Window()
    window.show()
    before = signal.getsignal(signal.SIGTERM)
    close_on_sigterm(window)
    os.kill(os.getpid(), signal.SIGTERM)
    qtbot.waitUntil(lambda: closed == [True], timeout=5000)
    window.deleteLater()
    qtbot.waitUntil(lambda: signal.getsignal(signal.SIGTERM) is before, timeout=5000)
