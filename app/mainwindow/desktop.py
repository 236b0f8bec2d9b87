"""Desktop integration: open a file, show it in the file manager, copy paths and images.

Each action hands its work to the desktop, a child process or a worker and
returns at once, so a slow file manager or a huge image never blocks the GUI.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import shiboken6
from PySide6.QtCore import QMimeData, QObject, QProcess, QThreadPool, QUrl, Signal
from PySide6.QtGui import QDesktopServices, QGuiApplication, QImage

from app.dialogs import read_preview
from app.workers import run_in_thread

COPY_EDGE = 8192  # a copied image keeps its pixels up to this edge


def open_external(url: QUrl) -> bool:
    """Hand a file or folder to the desktop; tests replace this to avoid launching viewers."""
    return QDesktopServices.openUrl(url)


def reveal_in_folder(path: str, parent: QObject | None = None) -> bool:
    """Show ``path`` selected in the file manager where the platform can; else open its folder.

    On Linux the freedesktop FileManager1 D-Bus call selects the file (Files, Dolphin, Nemo,
    Caja, Thunar...). ``dbus-send`` runs as a child process so a slow or absent file manager
    never blocks the GUI; if it is missing or the call fails, the folder opens instead.
    """
    if sys.platform == "win32":
        return QProcess.startDetached("explorer", ["/select,", os.path.normpath(path)])[0]
    if sys.platform == "darwin":
        return QProcess.startDetached("open", ["-R", path])[0]
    folder = QUrl.fromLocalFile(str(Path(path).parent))
    proc = QProcess(parent)

    def fall_back(failed: bool) -> None:
        # A process that fails to start emits no finished(); one that ran emits it once.
        if failed:
            open_external(folder)
        proc.deleteLater()

    proc.finished.connect(lambda code, status: fall_back(code != 0 or status != QProcess.ExitStatus.NormalExit))
    proc.errorOccurred.connect(lambda error: fall_back(True) if error == QProcess.ProcessError.FailedToStart else None)
    proc.start("dbus-send", ["--session", "--print-reply", "--reply-timeout=3000",
                             "--dest=org.freedesktop.FileManager1", "--type=method_call",
                             "/org/freedesktop/FileManager1", "org.freedesktop.FileManager1.ShowItems",
                             f"array:string:{QUrl.fromLocalFile(path).toString()}", "string:"])
    return True


class Desktop(QObject):
    """The window's way to the desktop, reporting back in words.

    Signals:
        status(str, int): a status-bar message and how long it shows, in ms.
        error(str): an action failed; the window shows it in the banner.
    """

    status = Signal(str, int)
    error = Signal(str)

    def __init__(self, pool: QThreadPool, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.pool = pool

    def open_path(self, path: str | None) -> None:
        """Open a file or folder in its default application."""
        if path and not open_external(QUrl.fromLocalFile(path)):
            self.status.emit(f"No application could open {path}", 5000)

    def reveal(self, path: str) -> None:
        reveal_in_folder(path, self)

    def copy_paths(self, paths: list[str]) -> None:
        QGuiApplication.clipboard().setText("\n".join(paths))
        self.status.emit("Path copied." if len(paths) == 1 else f"{len(paths)} paths copied.", 3000)

    def copy_image(self, path: str) -> None:
        """Put the image (decoded in a worker) and its file URL on the clipboard."""
        def done(image: QImage) -> None:
            mime = QMimeData()
            mime.setImageData(image)
            mime.setUrls([QUrl.fromLocalFile(path)])
            QGuiApplication.clipboard().setMimeData(mime)
            self.status.emit("Image copied.", 3000)

        run_in_thread(read_preview, path, COPY_EDGE, pool=self.pool, context=self, returned=done,
                      errored=lambda exc: self.error.emit(f"The image could not be copied: {exc}"))


def release_clipboard() -> None:
    """Swap clipboard data made in Python (Copy Image's QMimeData) for a copy Qt owns; call before exit.

    Qt deletes the clipboard's data in its own exit handlers, after Python has shut down; a
    QMimeData that Python created then crashes PySide (a segfault at exit, seen after Copy Image).
    The image or text stays on the clipboard for whoever pastes after we quit; only the file URL goes.
    """
    clipboard = QGuiApplication.clipboard()
    mime = clipboard.mimeData()
    if mime is None or not shiboken6.createdByPython(mime):
        return
    if mime.hasImage():
        clipboard.setImage(clipboard.image())
    elif mime.hasText():
        clipboard.setText(mime.text())
    else:
        clipboard.clear()
