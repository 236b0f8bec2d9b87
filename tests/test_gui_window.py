"""The main window end to end, offscreen, with a 64 px model and tiny generated art."""

from __future__ import annotations

import shutil
import sys
import threading
from pathlib import Path

import pytest
from PySide6.QtCore import QMimeData, QPoint, QPointF, Qt, QUrl
from PySide6.QtGui import QColor, QDropEvent, QGuiApplication, QImage

from core import modelfile
from core.library import Library
from app.engine import Engine
from app.mainwindow import MainWindow, desktop
from app.moodboard_model import MoodboardEntry
from app.options import MODEL_BASELINE, Settings
from app.roles import NegativeRole, PathRole, WeightRole
from library_fixtures import make_tree, style_image, tiny_model_file

pytestmark = pytest.mark.qt_log_ignore("This plugin does not support")  # offscreen platform limits


@pytest.fixture
def art(tmp_path) -> Path:
    make_tree(tmp_path / "art", styles=4, per_style=3)
    return tmp_path / "art"


@pytest.fixture
def model_file(tmp_path) -> Path:
    return tiny_model_file(tmp_path / "models")


def make_window(qtbot, tmp_path, model: str, ready: bool = True, in_process: bool = False) -> MainWindow:
    """The app's window; indexing runs in a thread here (a child process per run costs seconds)."""
    settings = Settings(tmp_path / "config" / "aladin.ini")
    settings.set("model", model)
    settings.set("device", "cpu")
    settings.set("rescan_on_start", False)  # tests start their own indexing runs
    engine = Engine()
    engine.index_options = {"workers": 0, "batch_size": 4}
    engine.index_in_process = in_process
    window = MainWindow(settings=settings, engine=engine, library_dir=str(tmp_path / "library"))
    qtbot.addWidget(window)
    window.show()
    if ready:
        qtbot.waitUntil(lambda: engine.ready, timeout=20000)
    return window


@pytest.fixture
def window(qtbot, tmp_path, model_file) -> MainWindow:
    return make_window(qtbot, tmp_path, str(model_file))


def index_and_wait(qtbot, window: MainWindow, folders) -> tuple:
    with qtbot.waitSignal(window.engine.index_finished, timeout=30000) as done:
        window.library.add_folders([str(f) for f in folders])
    return done.args


def drop(window: MainWindow, mime: QMimeData) -> None:
    """A real drop event on the moodboard area."""
    pos = window.ui.query.mapTo(window, window.ui.query.rect().center())
    event = QDropEvent(QPointF(pos), Qt.DropAction.CopyAction, mime, Qt.MouseButton.LeftButton,
                       Qt.KeyboardModifier.NoModifier)
    window.dropEvent(event)


def file_mime(*paths) -> QMimeData:
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(p)) for p in paths])
    return mime


@pytest.fixture
def searched(qtbot, window, art) -> MainWindow:
    """A window with the art indexed and the first style00 image on the moodboard."""
    index_and_wait(qtbot, window, [art])
    with qtbot.waitSignal(window.engine.results, timeout=20000):
        drop(window, file_mime(art / "style00" / "v0.png"))
    return window


def test_first_run_shows_what_to_do(window):
    assert window.ui.stack.currentWidget() is window.ui.empty
    assert "Add your art folders" in window.ui.empty.title.text()
    assert window.ui.empty_add.isVisibleTo(window)


def test_index_drop_and_see_the_same_style_first(qtbot, searched, art):
    w = searched
    assert w.ui.stack.currentWidget() is w.ui.view
    paths = [r.path for r in w.results.results()]
    assert str(art / "style00" / "v0.png") not in paths  # the query itself is left out
    assert {Path(p).parent.name for p in paths[:2]} == {"style00"}
    assert len(paths) == 11
    assert "12 images indexed in 1 folder" in w.ui.library_label.text() or qtbot.waitUntil(
        lambda: "12 images indexed in 1 folder" in w.ui.library_label.text(), timeout=5000) is None
    # thumbnails arrive for the visible tiles
    qtbot.waitUntil(lambda: w.results.data(w.results.index(0), Qt.ItemDataRole.DecorationRole) is not None,
                    timeout=10000)


def test_filters_restrict_and_exclude(qtbot, searched, art):
    w = searched
    filters = w.ui.filters
    with qtbot.waitSignal(w.engine.results, timeout=20000):
        filters.exclude_check.setChecked(True)
    assert all(Path(r.path).parent.name != "style00" for r in w.results.results())
    with qtbot.waitSignal(w.engine.results, timeout=20000):
        filters.k_spin.setValue(3)
    assert len(w.results.results()) == 3
    with qtbot.waitSignal(w.engine.results, timeout=20000):
        filters.exclude_check.setChecked(False)
        filters.folder_edit.setText(str(art / "style02"))
        filters.folder_edit.editingFinished.emit()
    assert {Path(r.path).parent.name for r in w.results.results()} == {"style02"}
    assert w.settings.get("results_k") == 3


def test_moodboard_edits_rerun_the_search(qtbot, searched, art):
    w = searched
    with qtbot.waitSignal(w.engine.results, timeout=20000):
        drop(w, file_mime(art / "style01" / "v0.png"))
    assert w.moodboard.rowCount() == 2
    # click the second card's sign button: it becomes "less like this"
    strip = w.ui.query.strip
    rect = strip.visualRect(w.moodboard.index(1))
    sign = strip.itemDelegate().regions(rect)["sign"].center()
    with qtbot.waitSignal(w.engine.results, timeout=20000):
        qtbot.mouseClick(strip.viewport(), Qt.MouseButton.LeftButton, pos=sign)
    assert w.moodboard.data(w.moodboard.index(1), NegativeRole) is True
    assert all(Path(r.path).parent.name != "style01" for r in w.results.results()[:6])
    plus = strip.itemDelegate().regions(rect)["plus"].center()
    with qtbot.waitSignal(w.engine.results, timeout=20000):
        qtbot.mouseClick(strip.viewport(), Qt.MouseButton.LeftButton, pos=plus)
    assert w.moodboard.data(w.moodboard.index(1), WeightRole) == 1.5
    # keyboard: Delete removes the current card
    strip.setCurrentIndex(w.moodboard.index(1))
    with qtbot.waitSignal(w.engine.results, timeout=20000):
        qtbot.keyClick(strip, Qt.Key.Key_Delete)
    assert [Path(e.path).name for e in w.moodboard.entries()] == ["v0.png"]
    # only negatives: no search, a clear message instead
    w.moodboard.setData(w.moodboard.index(0), True, NegativeRole)
    qtbot.waitUntil(lambda: w.results.rowCount() == 0 and "positive" in (w.search.last_error or ""), timeout=5000)


def test_named_moodboards_and_restore_on_start(qtbot, searched, art, tmp_path, model_file):
    w = searched
    drop(w, file_mime(art / "style03" / "v1.png"))
    w.moodboard.setData(w.moodboard.index(1), True, NegativeRole)
    w.moodboard.setData(w.moodboard.index(1), 2.0, WeightRole)
    w.boards.save("Blue stripes")
    qtbot.waitUntil(lambda: w.boards.name == "Blue stripes", timeout=5000)
    assert w.boards.saved == ["Blue stripes"]  # the names arrive before the "saved" signal
    w.boards.rename("Blue stripes", "Stripes")
    qtbot.waitUntil(lambda: w.boards.saved == ["Stripes"] and w.boards.name == "Stripes", timeout=5000)
    w.boards.clear()
    assert w.moodboard.rowCount() == 0 and w.ui.stack.currentWidget() is w.ui.library_pane
    assert not w.ui.filters.isVisibleTo(w)  # the library shows, without the search filters
    w.boards.load("Stripes")
    qtbot.waitUntil(lambda: w.moodboard.rowCount() == 2, timeout=5000)
    second = w.moodboard.entries()[1]
    assert (Path(second.path).name, second.negative, second.weight) == ("v1.png", True, 2.0)
    qtbot.waitUntil(lambda: w.results.rowCount() > 0, timeout=20000)
    # the menu lists saved boards
    w.boards.fill_menu()
    assert "Stripes" in [a.text() for a in w.ui.boards_menu.actions()]
    w.boards.delete("Stripes")
    qtbot.waitUntil(lambda: w.boards.saved == [] and w.boards.name is None, timeout=5000)
    # a new window restores the last moodboard, tile size and window geometry
    w.set_tile_size(120)
    w.resize(760, 560)
    w.close()
    again = make_window(qtbot, tmp_path, str(model_file))
    assert [(Path(e.path).name, e.negative) for e in again.moodboard.entries()] == [("v0.png", False),
                                                                                    ("v1.png", True)]
    assert again.thumbs.edge == 120 and again.ui.tile_slider.value() == 120
    assert again.size() == w.size()
    qtbot.waitUntil(lambda: again.results.rowCount() > 0, timeout=20000)


LIBRARY_READS = ("roots", "status", "failures", "model_record", "generation", "moodboards", "save_moodboard",
                 "load_moodboard", "rename_moodboard", "delete_moodboard", "remove_root", "browse", "folder_counts")


def test_the_gui_thread_never_touches_the_database(qtbot, tmp_path, model_file, art, monkeypatch):
    """Status, folders, moodboards and the searcher are read in workers; the GUI thread only gets data."""
    on_gui_thread = []

    def spy(name):
        method = getattr(Library, name)

        def call(self, *args, **kwargs):
            if threading.current_thread() is threading.main_thread():
                on_gui_thread.append(name)
            return method(self, *args, **kwargs)
        return call

    for name in LIBRARY_READS:
        monkeypatch.setattr(Library, name, spy(name))
    w = make_window(qtbot, tmp_path, str(model_file))
    index_and_wait(qtbot, w, [art])
    qtbot.waitUntil(lambda: w.library_model.rowCount() == 12, timeout=5000)  # the library page was read
    with qtbot.waitSignal(w.engine.results, timeout=20000):
        drop(w, file_mime(art / "style00" / "v0.png"))
    w.ui.folders_menu.aboutToShow.emit()
    w.ui.boards_menu.aboutToShow.emit()
    qtbot.waitUntil(lambda: w.library.roots == [str(art.resolve())], timeout=5000)
    w.boards.save("Board")
    qtbot.waitUntil(lambda: w.boards.name == "Board", timeout=5000)
    w.boards.clear()
    w.boards.load("Board")
    qtbot.waitUntil(lambda: w.moodboard.rowCount() == 1 and w.results.rowCount() > 0, timeout=20000)
    w.library.rescan()
    qtbot.waitUntil(lambda: not w.engine.indexing, timeout=30000)
    assert on_gui_thread == []


def test_cancel_and_resume_indexing(qtbot, window, tmp_path):
    folder = tmp_path / "many"
    for i in range(40):
        style_image(folder / f"{i:03d}.png", i % 5, i)
    w = window
    cancelled = []

    def cancel_on_first_embed(progress):
        if progress.phase == "embed" and progress.done > 0 and not cancelled:
            cancelled.append(progress.done)
            w.library.cancel_indexing()

    w.engine.index_progress.connect(cancel_on_first_embed)
    summary, was_cancelled = index_and_wait(qtbot, w, [folder])
    assert was_cancelled and summary.cancelled
    assert w.ui.index_panel.resume.isVisibleTo(w)
    partial = w.engine.library.status()
    assert 0 < partial.indexed < 40
    # the partial library is searchable
    with qtbot.waitSignal(w.engine.results, timeout=20000):
        w.moodboard.add([MoodboardEntry(str(folder / "000.png"))])
    assert 0 < w.results.rowCount() < 40
    w.engine.index_progress.disconnect(cancel_on_first_embed)
    with qtbot.waitSignal(w.engine.index_finished, timeout=30000) as done:
        qtbot.mouseClick(w.ui.index_panel.resume, Qt.MouseButton.LeftButton)
    assert done.args[1] is False
    assert w.engine.library.status().indexed == 40
    assert done.args[0].added + done.args[0].unchanged >= 40 - partial.indexed
    assert "up to date" in w.ui.index_panel.label.text()


def test_failures_view_lists_unreadable_files(qtbot, window, art):
    (art / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    index_and_wait(qtbot, window, [art])
    qtbot.waitUntil(lambda: len(window.library.failures) == 1, timeout=5000)
    window.library.show_failures()
    dialog = window.library.failures_dialog
    qtbot.waitUntil(lambda: dialog.model.rowCount() == 1, timeout=5000)
    assert dialog.model.data(dialog.model.index(0, 0)).endswith("broken.jpg")
    assert dialog.model.data(dialog.model.index(0, 1))
    assert window.ui.index_panel.failures.isVisibleTo(window)
    dialog.close()


def fake_dbus_send(folder: Path, exit_code: int) -> Path:
    """A dbus-send on PATH that records its arguments and exits with ``exit_code``.

    The record appears whole (written aside, then renamed): a test waiting for it never reads it half-written.
    """
    bin_dir = folder / "bin"
    bin_dir.mkdir(exist_ok=True)
    script = bin_dir / "dbus-send"
    script.write_text(f'#!/bin/sh\nprintf "%s\\n" "$@" > "{folder}/dbus-args.part"\n'
                      f'{shutil.which("mv")} "{folder}/dbus-args.part" "{folder}/dbus-args.txt"\nexit {exit_code}\n')
    script.chmod(0o755)
    return bin_dir


@pytest.mark.skipif(sys.platform != "linux", reason="the freedesktop D-Bus call is the Linux path")
@pytest.mark.parametrize("exit_code", [0, 1])
def test_show_in_folder_selects_the_file_through_dbus_or_opens_the_folder(qtbot, tmp_path, monkeypatch,
                                                                          exit_code):
    opened = []
    monkeypatch.setattr(desktop, "open_external", lambda url: opened.append(url.toLocalFile()) or True)
    monkeypatch.setenv("PATH", str(fake_dbus_send(tmp_path, exit_code)))
    target = tmp_path / "art dir" / "ü picture.png"
    assert desktop.reveal_in_folder(str(target))
    record = tmp_path / "dbus-args.txt"
    qtbot.waitUntil(record.exists, timeout=5000)
    args = record.read_text().splitlines()
    assert "org.freedesktop.FileManager1.ShowItems" in args
    assert f"array:string:{QUrl.fromLocalFile(str(target)).toString()}" in args
    expected = [] if exit_code == 0 else [str(target.parent)]
    qtbot.waitUntil(lambda: opened == expected, timeout=5000)
    qtbot.wait(200)
    assert opened == expected


@pytest.mark.skipif(sys.platform != "linux", reason="the freedesktop D-Bus call is the Linux path")
def test_show_in_folder_without_dbus_send_opens_the_folder(qtbot, tmp_path, monkeypatch):
    opened = []
    monkeypatch.setattr(desktop, "open_external", lambda url: opened.append(url.toLocalFile()) or True)
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    desktop.reveal_in_folder(str(tmp_path / "a.png"))
    qtbot.waitUntil(lambda: opened == [str(tmp_path)], timeout=5000)


def test_context_actions(qtbot, searched, art, monkeypatch, tmp_path):
    w = searched
    opened = []
    monkeypatch.setattr(desktop, "open_external", lambda url: opened.append(url.toLocalFile()) or True)
    index = w.results.index(0)
    path = index.data(PathRole)
    actions = dict((t, s) for t, s in w.result_actions.for_index(index) if t)
    assert list(actions) == ["More Like This", "Add to Moodboard", "Open", "Show in Folder", "Copy Path",
                             "Copy Image"]
    monkeypatch.setenv("PATH", str(fake_dbus_send(tmp_path, exit_code=1)))
    actions["Open"]()
    actions["Show in Folder"]()
    # The file manager call failed: the folder opens instead, without blocking the GUI.
    qtbot.waitUntil(lambda: opened == [path, str(Path(path).parent)], timeout=5000)
    actions["Copy Path"]()
    assert QGuiApplication.clipboard().text() == path
    actions["Copy Image"]()
    qtbot.waitUntil(lambda: not QGuiApplication.clipboard().image().isNull(), timeout=5000)
    assert QGuiApplication.clipboard().image().width() == 48
    actions["Add to Moodboard"]()
    assert [e.path for e in w.moodboard.entries()][-1] == path
    with qtbot.waitSignal(w.engine.results, timeout=20000):
        actions["More Like This"]()
    assert [e.path for e in w.moodboard.entries()] == [path]
    assert w.moodboard.entries()[0].image_id is not None
    assert path not in [r.path for r in w.results.results()]
    # double-click and Enter open; Space previews
    opened.clear()
    view = w.ui.view
    view.setCurrentIndex(w.results.index(0))
    qtbot.keyClick(view, Qt.Key.Key_Return)
    assert opened == [w.results.index(0).data(PathRole)]
    qtbot.keyClick(view, Qt.Key.Key_Space)
    ra = w.result_actions
    qtbot.waitUntil(lambda: ra.preview is not None and ra.preview.label.pixmap() is not None
                    and not ra.preview.label.pixmap().isNull(), timeout=5000)
    qtbot.keyClick(ra.preview, Qt.Key.Key_Right)
    assert view.currentIndex().row() == 1
    # results drag out as file URLs
    mime = w.results.mimeData([w.results.index(0)])
    assert mime.urls()[0].toLocalFile() == w.results.index(0).data(PathRole)


def test_web_links_are_refused_and_pasted_images_join_the_board(qtbot, searched):
    w = searched
    web = QMimeData()
    web.setUrls([QUrl("https://example.com/art.jpg")])
    drop(w, web)
    assert w.ui.banner.isVisible() and "not downloaded" in w.ui.banner.text.text()
    assert w.moodboard.rowCount() == 1
    image = QImage(40, 30, QImage.Format.Format_RGB32)
    image.fill(QColor(20, 120, 200))
    QGuiApplication.clipboard().setImage(image)
    with qtbot.waitSignal(w.engine.results, timeout=20000):
        w.paste()
    assert w.moodboard.rowCount() == 2
    assert Path(w.moodboard.entries()[1].path).name.startswith("pasted-")


def test_folder_drop_adds_it_to_the_library(qtbot, window, art):
    with qtbot.waitSignal(window.engine.index_finished, timeout=30000):
        drop(window, file_mime(art))
    qtbot.waitUntil(lambda: [Path(r) for r in window.library.roots] == [art.resolve()], timeout=5000)


def test_the_bundled_model_loads_when_none_is_chosen(qtbot, tmp_path):
    w = make_window(qtbot, tmp_path, "")
    assert w.engine.ready and not w.ui.banner.isVisible()
    assert "ALADIN-S default" in w.ui.model_label.text()


def test_no_trained_model_offers_a_way_out(qtbot, tmp_path, monkeypatch):
    # A packager may strip the bundled model; the app must still offer a way on.
    monkeypatch.setattr(modelfile, "DEFAULT_MODEL", tmp_path / "absent.safetensors")
    w = make_window(qtbot, tmp_path, "", ready=False)
    banner = w.ui.banner
    qtbot.waitUntil(lambda: banner.isVisible() and "No trained style model" in banner.text.text(),
                    timeout=20000)
    labels = [banner.buttons.itemAt(i).widget().text() for i in range(banner.buttons.count())]
    assert labels == ["Choose Model File…", "Use Untrained Baseline"]
    qtbot.waitUntil(lambda: w.ui.empty.title.text() == "No style model", timeout=5000)
    with qtbot.waitSignal(w.engine.model_ready, timeout=20000):
        banner.buttons.itemAt(1).widget().click()
    assert w.settings.get("model") == MODEL_BASELINE
    assert "untrained baseline" in w.ui.model_label.text()
    assert "untrained baseline" in banner.text.text()


def test_tile_size_and_settings_dialog(qtbot, window):
    from app.dialogs import SettingsDialog

    dialog = SettingsDialog(window.models.settings_values(), devices=[("cuda:0", "GPU 0: Test Card")])
    qtbot.addWidget(dialog)
    assert [dialog.device.itemData(i) for i in range(dialog.device.count())] == ["auto", "cpu", "cuda:0"]
    assert dialog.device.itemText(2) == "GPU 0: Test Card"
    assert dialog.values()["model"] == window.settings.get("model")
    dialog.model_kind.setCurrentIndex(dialog.model_kind.findData("baseline"))
    dialog.thumb.setValue(200)
    assert dialog.values() == {"device": "cpu", "model": MODEL_BASELINE, "thumb_size": 200}
    window.set_tile_size(10_000)
    assert window.thumbs.edge == 320 and window.ui.view.gridSize().width() == 336
    qtbot.keyClick(window, Qt.Key.Key_Minus, Qt.KeyboardModifier.ControlModifier)
    assert window.thumbs.edge == 296


def test_aladin_without_arguments_starts_the_app(qtbot, monkeypatch):
    """``aladin`` (and ``aladin gui``) build and show the main window, then run the event loop.

    The loop itself is replaced: quitting a real nested loop would end pytest-qt's too.
    """
    from PySide6.QtWidgets import QApplication

    from app.launcher import main as aladin_main

    seen = []

    def fake_exec(self=None):
        windows = [w for w in QApplication.topLevelWidgets() if isinstance(w, MainWindow) and w.isVisible()]
        seen.extend(w.windowTitle() for w in windows)
        for w in windows:
            qtbot.waitUntil(lambda w=w: w.engine.library is not None, timeout=10000)
            w.close()
            w.deleteLater()
        return 0

    monkeypatch.setattr(QApplication, "exec", fake_exec)
    assert aladin_main([]) == 0
    assert seen == ["ALADIN Style Browser"]


def test_icons_follow_a_palette_switch(qtbot, window):
    from PySide6.QtWidgets import QApplication

    from bench.screenshots import dark_palette

    def icon_colour():
        image = window.act.save.icon().pixmap(24, 24).toImage()
        return max((image.pixelColor(x, y) for x in range(24) for y in range(24)),
                   key=lambda c: c.alpha()).lightness()

    app = QApplication.instance()
    light = app.palette()
    before = icon_colour()
    try:
        app.setPalette(dark_palette())
        qtbot.waitUntil(lambda: icon_colour() != before, timeout=3000)
        assert icon_colour() > before  # light strokes on a dark window
    finally:
        app.setPalette(light)
    qtbot.waitUntil(lambda: icon_colour() == before, timeout=3000)


def test_remove_a_folder_from_the_library(qtbot, window, tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    make_tree(a, styles=2, per_style=2)
    make_tree(b, styles=2, per_style=2)
    index_and_wait(qtbot, window, [a, b])
    with qtbot.waitSignal(window.engine.results, timeout=20000):
        window.moodboard.add([MoodboardEntry(str(a / "style00" / "v0.png"))])
    assert any(Path(r.path).is_relative_to(b) for r in window.results.results())
    qtbot.waitUntil(lambda: len(window.library.roots) == 2, timeout=5000)  # the folders arrive with a status
    window.library.fill_menu()
    window.library.fill_menu()  # refilled menus do not pile up sub-menus
    titles = [act.text() for act in window.ui.folders_menu.actions() if act.menu() is not None]
    assert titles == sorted(str(p.resolve()) for p in (a, b))
    with qtbot.waitSignal(window.engine.results, timeout=20000):
        window.library.remove_folder(str(b.resolve()))
    qtbot.waitUntil(lambda: window.library.roots == [str(a.resolve())], timeout=5000)
    assert all(Path(r.path).is_relative_to(a) for r in window.results.results())


def test_a_damaged_library_is_reported_not_crashed_on(qtbot, tmp_path, model_file):
    library = tmp_path / "library"
    library.mkdir()
    (library / "library.sqlite").write_bytes(b"this is not a database" * 100)
    w = make_window(qtbot, tmp_path, str(model_file), ready=False)
    qtbot.waitUntil(lambda: w.library.open_error is not None, timeout=20000)
    assert w.ui.banner.isVisible() and "cannot be opened" in w.ui.banner.text.text()
    assert w.ui.stack.currentWidget() is w.ui.empty and "cannot be opened" in w.ui.empty.title.text()
    assert (library / "library.sqlite").read_bytes().startswith(b"this is not a database")  # nothing lost


def test_indexing_in_a_child_process_cancels_and_resumes(qtbot, tmp_path, model_file):
    """The app's real path: the indexer runs in its own process (which starts its own decoder
    process) and reports progress, cancellation and its summary through a queue."""
    folder = tmp_path / "many"
    for i in range(24):
        style_image(folder / f"{i:03d}.png", i % 4, i)
    w = make_window(qtbot, tmp_path, str(model_file), in_process=True)
    w.engine.index_options = {"workers": 1, "batch_size": 4}  # the child starts its own decoder process
    phases = []

    def cancel_on_first_embed(progress):
        phases.append(progress.phase)
        if progress.phase == "embed" and progress.done > 0:
            w.library.cancel_indexing()

    w.engine.index_progress.connect(cancel_on_first_embed)
    summary, cancelled = index_and_wait(qtbot, w, [folder])
    assert cancelled and summary.cancelled and "scan" in phases
    assert 0 < w.engine.library.status().indexed < 24
    w.engine.index_progress.disconnect(cancel_on_first_embed)
    # Resuming picks up what the child committed; it runs in a thread here to keep the test short.
    w.engine.index_in_process = False
    with qtbot.waitSignal(w.engine.index_finished, timeout=60000) as done:
        w.library.rescan()
    assert done.args[1] is False
    assert w.engine.library.status().indexed == 24
    with qtbot.waitSignal(w.engine.results, timeout=20000):
        w.moodboard.add([MoodboardEntry(str(folder / "000.png"))])
    assert {Path(r.path).name for r in w.results.results()[:5]} == {f"{i:03d}.png" for i in (4, 8, 12, 16, 20)}


def test_indexing_process_errors_come_back_as_messages(tmp_path):
    from app.index_process import index_in_process
    from core.errors import LibraryError

    not_a_folder = tmp_path / "library"
    not_a_folder.write_text("a file where the library folder should be")
    gen = index_in_process(str(not_a_folder), [str(tmp_path)], "untrained-s", "cpu", lambda: False, {"workers": 0})
    with pytest.raises(LibraryError, match="cannot create the library folder"):
        next(gen)


def test_switching_model_asks_to_reindex_then_searches_again(qtbot, searched, tmp_path):
    w = searched
    other = tiny_model_file(tmp_path / "models", seed=11, name="other-s")
    with qtbot.waitSignal(w.engine.model_mismatch, timeout=20000) as mismatch:
        w.models.apply_settings({"model": str(other), "device": "cpu", "thumb_size": 160})
    assert "different model" in w.ui.banner.text.text() and not mismatch.args[0].updated
    rescan = w.ui.banner.buttons.itemAt(0).widget()
    assert rescan.text() == "Re-index With This Model"
    with qtbot.waitSignal(w.engine.index_finished, timeout=30000) as done:
        rescan.click()
    assert done.args[1] is False
    assert w.engine.library.model_record().name == "other-s"
    qtbot.waitUntil(lambda: w.engine.searcher is not None, timeout=5000)
    with qtbot.waitSignal(w.engine.results, timeout=20000):
        w.search.schedule()
    assert len(w.results.results()) == 11


def test_a_model_file_changed_under_its_name_is_called_an_update(qtbot, searched, tmp_path):
    """What every user of the previous bundled default meets after an update: same name, new weights."""
    w = searched
    updated = tiny_model_file(tmp_path / "updated", seed=11)  # the fixture's name, other weights
    with qtbot.waitSignal(w.engine.model_mismatch, timeout=20000) as mismatch:
        w.models.apply_settings({"model": str(updated), "device": "cpu", "thumb_size": 160})
    assert mismatch.args[0].updated and not mismatch.args[0].keeps_vectors
    assert "has changed since this library was indexed" in w.ui.banner.text.text()
    assert "every image is re-embedded" in w.ui.banner.text.text()
    assert w.ui.banner.buttons.itemAt(0).widget().text() == "Re-index With This Model"


def test_an_update_that_keeps_the_stored_vectors_says_so_and_switches_without_re_embedding(
        qtbot, searched, model_file, tmp_path):
    """A new bundled default that re-weights the same network (a re-export) re-indexes in seconds."""
    from core.modelfile import load_model_file
    from trainer.cli import main

    w = searched
    reexported = tmp_path / "reexported" / model_file.name
    assert main(["export", str(model_file), str(reexported)]) == 0
    with qtbot.waitSignal(w.engine.model_mismatch, timeout=20000) as mismatch:
        w.models.apply_settings({"model": str(reexported), "device": "cpu", "thumb_size": 160})
    assert mismatch.args[0].updated and mismatch.args[0].keeps_vectors
    assert "keeps the library's stored vectors" in w.ui.banner.text.text()
    with qtbot.waitSignal(w.engine.index_finished, timeout=30000) as done:
        w.ui.banner.buttons.itemAt(0).widget().click()
    summary, cancelled = done.args
    assert summary.embedded == 0 and not cancelled
    assert w.engine.library.model_record().checksum == load_model_file(reexported).checksum


def test_the_styles_page_searches_and_fills_the_moodboard_and_scores_can_be_hidden(qtbot, window, art):
    index_and_wait(qtbot, window, [art])
    pages = window.ui.pages
    assert [pages.tabText(i) for i in range(pages.count())] == ["Browse", "Styles", "Duplicates"]
    pages.setCurrentWidget(window.styles)
    path = str(art / "style01" / "v0.png")
    with qtbot.waitSignal(window.engine.results, timeout=20000):
        window.styles.more_like_this.emit(path)
    assert [e.path for e in window.moodboard.entries()] == [path] and pages.currentIndex() == 0
    assert window.ui.filters.isVisibleTo(window)  # search filters show with a moodboard, not on the library page
    window.styles.add_to_moodboard.emit([str(art / "style01" / "v1.png")])
    assert [e.path for e in window.moodboard.entries()][-1] == str(art / "style01" / "v1.png")
    assert window.results.show_scores and window.act.show_scores.isChecked()
    window.ui.scores_button.click()  # the status bar's Scores toggle hides the badges and is remembered
    assert not window.results.show_scores and window.settings.get("show_scores") is False
