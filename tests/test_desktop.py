"""Desktop integration: the freedesktop entry and icons, ``aladin desktop-install``, and one window
per library ("Open with" hands images to a running app). ``aladin IMAGE...`` parsing: test_cli.py."""

from __future__ import annotations

import configparser
import shutil
import socket
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from PIL import Image
from PySide6.QtCore import QDir
from PySide6.QtNetwork import QLocalSocket

import app.main
from app import desktop_entry, single_instance
from app.desktop_entry import APP_ID, ENTRY, ICON_THEME
from app.engine import Engine
from app.launcher import main as aladin
from app.mainwindow import MainWindow
from app.options import Settings
from conftest import make_image
from core.scan import IMAGE_EXTENSIONS

pytestmark = pytest.mark.qt_log_ignore("This plugin does not support")  # offscreen platform limits

# The MIME type a file manager gives each extension the indexer takes (shared-mime-info's names).
EXTENSION_TYPES = {".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".jpe": "image/jpeg", ".jfif": "image/jpeg",
                   ".png": "image/png", ".apng": "image/apng", ".webp": "image/webp", ".gif": "image/gif",
                   ".bmp": "image/bmp", ".dib": "image/bmp", ".tif": "image/tiff", ".tiff": "image/tiff",
                   ".psd": "image/vnd.adobe.photoshop"}
ICON_SIZES = (16, 24, 32, 48, 64, 128, 256)


def read_entry(path: Path) -> dict[str, str]:
    parser = configparser.RawConfigParser(delimiters=("=",))
    parser.optionxform = str
    parser.read(path, encoding="utf-8")
    return dict(parser["Desktop Entry"])


# -- the entry and the icons ------------------------------------------------------------------------
def test_the_entry_names_the_app_its_icon_and_every_indexed_image_type():
    entry = read_entry(ENTRY)
    assert entry["Name"] == "ALADIN Style Browser" and entry["Exec"] == "aladin %F"
    assert entry["Icon"] == entry["StartupWMClass"] == APP_ID == ENTRY.stem
    assert entry["Terminal"] == "false" and entry["Categories"] == "Graphics;Viewer;"
    assert set(EXTENSION_TYPES) == IMAGE_EXTENSIONS, "a new image extension needs its MIME type in the entry"
    assert set(EXTENSION_TYPES.values()) <= set(entry["MimeType"].strip(";").split(";"))


def test_every_icon_size_is_drawn_and_the_window_uses_them(qapp):
    from app.icons import app_icon

    files = [str(p) for p in desktop_entry.icon_files()]
    assert files == sorted([f"{s}x{s}/apps/{APP_ID}.png" for s in ICON_SIZES] + [f"scalable/apps/{APP_ID}.svg"])
    for size in ICON_SIZES:
        with Image.open(ICON_THEME / f"{size}x{size}" / "apps" / f"{APP_ID}.png") as image:
            assert image.size == (size, size) and image.mode == "RGBA"
    assert sorted(s.width() for s in app_icon().availableSizes()) == list(ICON_SIZES)


# -- aladin desktop-install ---------------------------------------------------------------------------
@pytest.fixture
def program(tmp_path, monkeypatch) -> Path:
    """An ``aladin`` console script in a venv whose path needs quoting, run as ``sys.argv[0]``."""
    script = tmp_path / "My Apps" / "venv" / "bin" / APP_ID
    script.parent.mkdir(parents=True)
    script.write_text("#!/bin/sh\n")
    script.chmod(0o755)
    monkeypatch.setattr(sys, "argv", [str(script), "desktop-install"])
    return script


def installed(data: Path) -> list[Path]:
    return [data / "applications" / f"{APP_ID}.desktop"] + [data / "icons" / "hicolor" / rel
                                                           for rel in desktop_entry.icon_files()]


def test_desktop_install_points_the_entry_at_this_program_and_uninstall_removes_it(tmp_path, program,
                                                                                  monkeypatch, capsys):
    data = tmp_path / "xdg-data"
    monkeypatch.setenv("XDG_DATA_HOME", str(data))
    assert aladin(["desktop-install"]) == 0
    files = installed(data)
    assert all(f.is_file() for f in files) and len(files) == len(ICON_SIZES) + 2
    entry = read_entry(files[0])
    assert entry["Exec"] == f'"{program}" %F' and Path(entry["TryExec"]) == program and program.is_absolute()
    assert (data / "icons" / "hicolor" / "48x48" / "apps" / f"{APP_ID}.png").read_bytes() == \
        (ICON_THEME / "48x48" / "apps" / f"{APP_ID}.png").read_bytes()
    assert str(program) in capsys.readouterr().out

    assert aladin(["desktop-install", "--uninstall"]) == 0
    assert not any(f.exists() for f in files)
    assert aladin(["desktop-install", "--uninstall"]) == 0 and "nothing to remove" in capsys.readouterr().out


@pytest.mark.skipif(shutil.which("desktop-file-validate") is None, reason="desktop-file-utils not installed")
def test_the_entry_and_the_installed_entry_validate(tmp_path, program):
    written = desktop_entry.install(tmp_path, program)[0]
    for path in (ENTRY, written):
        run = subprocess.run(["desktop-file-validate", str(path)], capture_output=True, text=True, timeout=60)
        assert run.returncode == 0 and not run.stdout.strip(), run.stdout + run.stderr


def test_prefix_installs_under_share_and_the_desktop_caches_are_refreshed(tmp_path, program, monkeypatch):
    calls = []
    monkeypatch.setattr(desktop_entry.shutil, "which", lambda tool: f"/usr/bin/{tool}")
    monkeypatch.setattr(desktop_entry.subprocess, "run", lambda command, **kw: calls.append(command)
                        or subprocess.CompletedProcess(command, 0, "", ""))
    assert aladin(["desktop-install", "--prefix", str(tmp_path / "usr")]) == 0
    data = tmp_path / "usr" / "share"
    assert all(f.is_file() for f in installed(data))
    assert [c[0] for c in calls] == ["update-desktop-database", "gtk-update-icon-cache"]
    assert calls[0][-1] == str(data / "applications") and calls[1][-1] == str(data / "icons" / "hicolor")


def test_a_folder_that_cannot_be_written_is_one_line_not_a_traceback(tmp_path, program, capsys):
    blocker = tmp_path / "usr"
    blocker.write_text("a file where the prefix's folder should be")
    assert aladin(["desktop-install", "--prefix", str(blocker)]) == 2
    assert capsys.readouterr().err.startswith("aladin: error: cannot write")


def test_the_program_is_found_from_a_bundle_a_script_or_beside_the_interpreter(tmp_path, program, monkeypatch):
    assert desktop_entry.program() == program
    monkeypatch.setattr(sys, "argv", ["-m"])  # python -m ...: the script beside the venv's python
    monkeypatch.setattr(sys, "executable", str(program.with_name("python")))
    assert desktop_entry.program() == program
    monkeypatch.setattr(sys, "frozen", True, raising=False)  # a PyInstaller bundle runs itself
    assert desktop_entry.program() == program.with_name("python")


@pytest.mark.parametrize("path, expected", [
    ("/opt/aladin/bin/aladin", "/opt/aladin/bin/aladin"),
    ("/home/a b/100%/$x/aladin", '"/home/a b/100%%/\\\\$x/aladin"'),
])
def test_exec_arguments_are_quoted_as_the_spec_says(path, expected):
    assert desktop_entry.exec_argument(path) == expected


# -- one window per library ---------------------------------------------------------------------------------
@pytest.fixture
def window(qtbot, tmp_path) -> MainWindow:
    """A window that opens no library and loads no model: the moodboard is all these tests need."""
    win = MainWindow(settings=Settings(tmp_path / "config" / "aladin.ini"), engine=Engine(),
                     library_dir=str(tmp_path / "library"), start=False)
    qtbot.addWidget(win)
    win.show()
    return win


@pytest.fixture
def name() -> str:
    return f"aladin-test-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def serve(window):
    """Starts servers on the window; closes them (their socket files go) when the test ends."""
    started = []

    def start(name: str) -> single_instance.InstanceServer:
        server = single_instance.InstanceServer(name, window)
        started.append(server)
        return server

    yield start
    for server in started:
        server.close()


def board(window: MainWindow) -> list[str]:
    return [e.path for e in window.moodboard.entries()]


def test_a_later_launch_hands_its_images_to_the_running_window(qtbot, window, tmp_path, name, serve):
    server = serve(name)
    server.received.connect(window.open_files)
    assert server.listen()
    a, b = make_image(tmp_path / "a.png"), make_image(tmp_path / "b.png", seed=1)
    with qtbot.waitSignal(server.received, timeout=5000):
        assert single_instance.send(name, [str(a), str(b)])
    assert board(window) == [str(a), str(b)]
    server.close()  # the app quits: its socket goes, and the next launch starts its own
    assert not (Path(QDir.tempPath()) / name).exists() and not single_instance.send(name, [str(a)])


def test_the_app_main_hands_over_and_exits_without_a_window(qtbot, window, tmp_path, monkeypatch, serve, capsys):
    monkeypatch.chdir(tmp_path)
    library = tmp_path / "library"
    server = serve(single_instance.server_name(library))
    server.received.connect(window.open_files)
    assert server.listen()
    image = make_image(tmp_path / "c.png")
    monkeypatch.setattr(MainWindow, "__init__", lambda *a, **k: pytest.fail("a second window was built"))
    with qtbot.waitSignal(server.received, timeout=5000):
        assert app.main.main(["--library", str(library), "c.png"]) == 0
    assert board(window) == [str(image)]
    assert "already runs on this library; handed it 1 file(s)" in capsys.readouterr().err


def test_open_with_starts_the_app_named_for_its_entry_with_the_images_on_the_board(qtbot, tmp_path,
                                                                                    monkeypatch):
    """``aladin IMAGE`` with no app running: one window, the image on its moodboard, and the names the
    desktop matches to the entry. The event loop is replaced (quitting a real one would end pytest-qt's)."""
    from PySide6.QtWidgets import QApplication

    image = make_image(tmp_path / "a.png")
    seen = []

    def fake_exec(self=None):
        app_ = QApplication.instance()
        seen.append((app_.applicationName(), app_.desktopFileName(), len(app_.windowIcon().availableSizes())))
        for w in [w for w in QApplication.topLevelWidgets() if isinstance(w, MainWindow) and w.isVisible()]:
            seen.append(board(w))
            qtbot.waitUntil(lambda w=w: w.engine.library is not None, timeout=10000)
            w.close()
            w.deleteLater()
        return 0

    monkeypatch.setattr(QApplication, "exec", fake_exec)
    assert aladin([str(image)]) == 0
    assert seen == [(APP_ID, APP_ID, len(ICON_SIZES)), [str(image)]]


def test_bad_and_missing_files_get_one_message_and_the_rest_still_join(window, tmp_path):
    good = make_image(tmp_path / "good.png")
    notes = tmp_path / "notes.txt"
    notes.write_text("x")
    content = window.open_files([str(notes), str(tmp_path / "gone.png"), str(good)])
    assert board(window) == [str(good)]
    banner = window.ui.banner.text.text()
    assert banner == content.message() == "Not an image: notes.txt. Not found: gone.png."


def test_a_crashed_apps_socket_does_not_block_the_next_start(qtbot, name, serve):
    stale = Path(QDir.tempPath()) / name
    left = socket.socket(socket.AF_UNIX)
    left.bind(str(stale))  # bound, never listening, closed: what a killed app leaves behind
    left.close()
    assert stale.exists()
    assert not single_instance.send(name, ["/x.png"])
    server = serve(name)
    assert server.listen()
    got = []
    server.received.connect(got.append)
    assert single_instance.send(name, [])
    qtbot.waitUntil(lambda: got == [[]], timeout=5000)


def test_a_live_app_keeps_its_name_and_liveness_checks_open_nothing(qtbot, name, serve):
    first = serve(name)
    assert first.listen()
    got = []
    first.received.connect(got.append)
    assert not serve(name).listen()  # checks, does not steal it
    assert single_instance.send(name, ["/a.png"])
    qtbot.waitUntil(lambda: got == [["/a.png"]], timeout=5000)


def test_junk_on_the_socket_is_ignored(qtbot, name, caplog, serve):
    server = serve(name)
    assert server.listen()
    got = []
    server.received.connect(got.append)
    client = QLocalSocket()
    client.connectToServer(name)
    assert client.waitForConnected(1000)
    client.write(b'{"open": "not a list"}\n')
    client.waitForBytesWritten(1000)
    qtbot.waitUntil(lambda: "not a list of paths" in caplog.text, timeout=5000)
    client.abort()
    assert got == []


def test_names_differ_per_library_and_not_per_spelling(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "one").mkdir()
    assert single_instance.server_name(tmp_path / "one") == single_instance.server_name("one/../one")
    assert single_instance.server_name(tmp_path / "one") != single_instance.server_name(tmp_path / "two")
