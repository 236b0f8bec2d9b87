"""Entry point: ``aladin gui``, ``aladin [IMAGE...]`` and ``python -m app``.

A launch while the app already runs on the same library opens no second window: it
hands its images to the running one (:mod:`app.single_instance`) and exits, before
anything of the GUI is built.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING

from core.logs import setup_logging
from core.paths import library_dir

if TYPE_CHECKING:
    from PySide6.QtWidgets import QWidget


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="aladin gui", description="The ALADIN Style Browser desktop app.")
    parser.add_argument("--library", default=None, metavar="FOLDER",
                        help="library folder (default: $ALADIN_LIBRARY or the per-user data folder)")
    parser.add_argument("-v", "--verbose", action="store_true", help="print debug messages on stderr")
    parser.add_argument("images", nargs="*", metavar="IMAGE", help="images to put on the moodboard")
    return parser.parse_args(list(argv))


def close_on_sigterm(window: QWidget) -> None:
    """Close ``window`` when the process gets SIGTERM, as a desktop session does when it ends.

    Without this SIGTERM kills the app where it stands: no settings or moodboard saved, an indexing
    run cut mid-batch, and its indexing process left unreaped. Python runs signal handlers only
    between bytecodes, which a waiting Qt event loop never reaches, so the signal is also written to
    a socket (``signal.set_wakeup_fd``) that a QSocketNotifier watches; closing the window is the
    path the close button takes.
    """
    import signal
    import socket

    from PySide6.QtCore import QSocketNotifier

    reader, writer = socket.socketpair()
    writer.setblocking(False)
    previous_fd = signal.set_wakeup_fd(writer.fileno(), warn_on_full_buffer=False)
    previous_handler = signal.signal(signal.SIGTERM, lambda *_: None)  # the work happens in on_signal
    notifier = QSocketNotifier(reader.fileno(), QSocketNotifier.Type.Read, window)

    def on_signal() -> None:
        if signal.SIGTERM in reader.recv(64):
            window.close()

    def restore() -> None:
        signal.signal(signal.SIGTERM, previous_handler)
        signal.set_wakeup_fd(previous_fd)
        reader.close()
        writer.close()

    notifier.activated.connect(on_signal)
    window.destroyed.connect(restore)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    if not logging.getLogger().handlers:
        setup_logging(args.verbose)
    from app.single_instance import InstanceServer, send, server_name

    images = [os.path.abspath(p) for p in args.images]
    name = server_name(args.library or library_dir())
    if send(name, images):
        done = f"handed it {len(images)} file(s)" if images else "showed its window"
        print(f"aladin: the app already runs on this library; {done}", file=sys.stderr)
        return 0

    from PySide6.QtWidgets import QApplication

    from app.desktop_entry import APP_ID
    from app.icons import app_icon
    from app.mainwindow import MainWindow
    from app.mainwindow.desktop import release_clipboard

    app = QApplication.instance() or QApplication(sys.argv[:1])
    # The name is the X11 window class the desktop entry's StartupWMClass names, and the
    # desktop file name is Wayland's app id: both let the desktop match windows to the entry.
    app.setApplicationName(APP_ID)
    app.setApplicationDisplayName("ALADIN Style Browser")
    app.setOrganizationName(APP_ID)
    app.setDesktopFileName(APP_ID)
    app.setWindowIcon(app_icon())
    window = MainWindow(library_dir=args.library)
    server = InstanceServer(name, window)
    server.received.connect(window.open_files)
    server.listen()
    app.aboutToQuit.connect(release_clipboard)
    close_on_sigterm(window)
    window.show()
    if images:
        window.open_files(images)
    code = app.exec()
    server.close()  # its socket file goes now, not whenever the window happens to be collected
    return code


if __name__ == "__main__":
    sys.exit(main())
