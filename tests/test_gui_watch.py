"""Watched folders in the window: a new image in a library folder is indexed without a rescan by hand;
Pause Watching stops that (and is remembered); a folder that goes away keeps its images, is shown
offline, and is rescanned when it is back; closing the window leaves no watcher thread."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path

import pytest

from core.embedder import Embedder
from core.indexer import index_folders
from core.library import Library
from core.modelfile import load_model_file
from core.watch import EVENTS, WatchTiming
from app.engine import Engine
from app.mainwindow import MainWindow
from app.options import Settings
from library_fixtures import make_tree, style_image, tiny_model_file

pytestmark = pytest.mark.qt_log_ignore("This plugin does not support")  # offscreen platform limits

FAST = WatchTiming(debounce_s=0.2, max_wait_s=3.0, check_s=0.1, poll_s=0.2)


@dataclass
class World:
    art: Path
    more: Path
    model: Path
    library: Path
    settings: Path


@pytest.fixture
def world(tmp_path) -> World:
    """Two indexed folders of four images each, with a 32 px model (the quickest to embed)."""
    art, more = tmp_path / "art", tmp_path / "more"
    make_tree(art, styles=2, per_style=2)
    make_tree(more, styles=2, per_style=2)
    model = tiny_model_file(tmp_path / "models", input_size=32)
    library = tmp_path / "library"
    with Library.open(library) as lib:
        list(index_folders(lib, [art, more], Embedder(load_model_file(model), device="cpu"), workers=0))
    return World(art.resolve(), more.resolve(), model, library, tmp_path / "config" / "aladin.ini")


def open_window(qtbot, world: World, rescan_on_start: bool = False) -> MainWindow:
    settings = Settings(world.settings)
    settings.set("model", str(world.model))
    settings.set("device", "cpu")
    settings.set("rescan_on_start", rescan_on_start)
    engine = Engine()
    engine.index_in_process = False
    engine.index_options = {"workers": 0, "batch_size": 4}
    window = MainWindow(settings=settings, engine=engine, library_dir=str(world.library), start=False)
    qtbot.addWidget(window)
    window.library.watch_timing = FAST
    window.start_engine()
    qtbot.waitUntil(lambda: engine.ready, timeout=20000)
    return window


@pytest.fixture
def window(qtbot, world) -> MainWindow:
    window = open_window(qtbot, world)
    watched(qtbot, window, 2)
    return window


def watched(qtbot, window: MainWindow, n: int) -> None:
    """Wait until the watcher has attached the library's ``n`` roots."""
    qtbot.waitUntil(lambda: window.library.watcher is not None
                    and [s.how for s in window.library.watcher.states().values()] == [EVENTS] * n, timeout=10000)


def indexed(window: MainWindow) -> int:
    return window.engine.library.status().indexed


def test_a_new_image_in_a_library_folder_is_indexed_by_itself(qtbot, window, world):
    assert indexed(window) == 8
    with qtbot.waitSignal(window.engine.index_finished, timeout=20000) as done:
        style_image(world.art / "style01" / "new.png", 5, 1)
    assert done.args[0].added == 1
    assert indexed(window) == 9
    qtbot.waitUntil(lambda: window.ui.library_label.text().startswith("9 images indexed in 2 folders"), timeout=5000)


def test_what_changed_while_the_app_was_closed_is_picked_up_at_start(qtbot, world):
    added, removed = world.art / "style00" / "while closed.png", world.more / "style01" / "v0.png"
    style_image(added, 6, 0)
    removed.unlink()
    window = open_window(qtbot, world, rescan_on_start=True)
    library = window.engine.library
    qtbot.waitUntil(lambda: library.find_image(added) is not None and library.find_image(removed) is None
                    and not window.engine.indexing, timeout=20000)
    assert indexed(window) == 8
    started = []
    window.engine.index_started.connect(started.append)
    window.library.refresh()  # a later status read does not rescan again
    qtbot.wait(500)
    assert started == []


def test_pause_watching_stops_it_is_remembered_and_resuming_catches_up(qtbot, window, world):
    started = []
    window.engine.index_started.connect(started.append)
    window.library.fill_menu()
    assert window.act.watch_paused in window.ui.folders_menu.actions()
    window.act.watch_paused.trigger()  # Folders ▸ Pause Watching
    assert window.library.watcher is None
    assert not [t for t in threading.enumerate() if t.name == "aladin-watch"]
    style_image(world.art / "style00" / "while paused.png", 6, 0)
    qtbot.wait(int((FAST.debounce_s + FAST.check_s) * 1000 * 4))
    assert started == [] and indexed(window) == 8
    qtbot.waitUntil(lambda: "watching paused" in window.ui.library_label.text(), timeout=5000)
    window.settings.sync()
    assert Settings(world.settings).get("watch_paused") is True

    with qtbot.waitSignal(window.engine.index_finished, timeout=20000):
        window.act.watch_paused.trigger()  # resumed: every root is rescanned for what changed meanwhile
    assert indexed(window) == 9
    watched(qtbot, window, 2)
    with qtbot.waitSignal(window.engine.index_finished, timeout=20000):
        style_image(world.more / "after.png", 7, 0)
    assert indexed(window) == 10


def test_after_indexing_is_cancelled_changes_wait_for_the_resume(qtbot, window, world):
    w = window
    def cancel(_progress) -> None:
        w.library.cancel_indexing()

    w.engine.index_progress.connect(cancel)
    with qtbot.waitSignal(w.engine.index_finished, timeout=20000) as done:
        w.library.rescan()
    assert done.args[1] is True
    w.engine.index_progress.disconnect(cancel)
    started = []
    w.engine.index_started.connect(started.append)
    style_image(world.art / "style00" / "saved while paused.png", 6, 1)
    qtbot.wait(int((FAST.debounce_s + FAST.check_s) * 1000 * 4))
    assert started == [] and indexed(w) == 8  # the stopped work is not restarted by a saved file
    with qtbot.waitSignal(w.engine.index_finished, timeout=20000):
        w.ui.index_panel.resume.click()
    assert started == [[]] and indexed(w) == 9


def test_a_paused_library_opens_paused(qtbot, world):
    settings = Settings(world.settings)
    settings.set("watch_paused", True)
    settings.sync()
    window = open_window(qtbot, world)
    qtbot.waitUntil(lambda: len(window.library.roots) == 2, timeout=5000)
    assert window.act.watch_paused.isChecked() and window.library.watcher is None
    assert window.library.watch_text(str(world.art)) == "Watching paused"


def test_a_folder_that_goes_away_keeps_its_images_is_offline_and_rescanned_when_back(qtbot, window, world,
                                                                                    tmp_path):
    runs = []
    window.engine.index_started.connect(runs.append)
    away = tmp_path / "unplugged"
    world.more.rename(away)
    root = str(world.more)
    qtbot.waitUntil(lambda: window.library.offline == {root}, timeout=5000)
    qtbot.waitUntil(lambda: "1 offline" in window.ui.library_label.text(), timeout=5000)
    window.library.fill_menu()
    titles = [a.text() for a in window.ui.folders_menu.actions() if a.menu() is not None]
    assert titles == [str(world.art), f"{root} (offline)"]
    assert window.library.watch_text(root).startswith("Offline")
    qtbot.wait(int((FAST.debounce_s + FAST.check_s) * 1000 * 3))
    assert runs == []  # nothing rescanned it...
    status = window.engine.library.status()
    assert status.indexed == 8 and [r.images for r in status.roots] == [4, 4]  # ...and its images stay

    style_image(away / "added while away.png", 4, 0)
    with qtbot.waitSignal(window.engine.index_finished, timeout=20000) as done:
        away.rename(world.more)
    assert runs == [[root]]
    assert done.args[0].added == 1 and done.args[0].removed == 0
    qtbot.waitUntil(lambda: window.library.offline == set(), timeout=5000)
    assert [r.images for r in window.engine.library.status().roots] == [4, 5]


def python_threads() -> set[threading.Thread]:
    """Threads started from Python (Qt's pool threads show up as "Dummy-N" once they ran Python code)."""
    return {t for t in threading.enumerate() if not t.name.startswith("Dummy-")}


def test_closing_the_window_stops_the_watcher(qtbot, world):
    before = python_threads()
    window = open_window(qtbot, world)
    watched(qtbot, window, 2)
    assert {t.name for t in python_threads() - before} >= {"aladin-watch"}
    window.close()
    assert window.library.watcher is None
    assert python_threads() - before == set()
