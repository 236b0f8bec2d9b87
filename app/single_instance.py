"""One window per library: a later ``aladin [IMAGE...]`` hands its images to the running app.

The running app listens on a local socket (a ``QLocalServer``) named after the user and
the library folder, so two libraries can be open side by side and users never reach
each other's app (the socket is also readable by its owner only). A later launch
connects, sends one line of JSON, ``{"open": ["/abs/a.png", ...]}``, and exits at once
without waiting for an answer; the running window comes to the front and takes the
paths as if they were dropped on it (an empty list only brings it to the front).

A crashed app leaves its socket file behind; a name that nobody answers on is removed
before listening, so it never blocks the next start.
"""

from __future__ import annotations

import getpass
import hashlib
import json
import logging
import os
import re
from collections.abc import Sequence
from pathlib import Path

from PySide6.QtCore import QObject, Signal
from PySide6.QtNetwork import QLocalServer, QLocalSocket

log = logging.getLogger(__name__)

# A live app accepts at once (the kernel queues the connection even while its event loop is busy);
# no answer within this is no app.
CONNECT_TIMEOUT_MS = 1000
WRITE_TIMEOUT_MS = 3000
# A message is a list of paths: a whole folder's worth of "Open with" fits; anything longer is not ours.
MAX_MESSAGE_BYTES = 8 * 1024 * 1024


def server_name(library: str | Path) -> str:
    """The socket name for this user and library folder (the same folder however it is spelled)."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # no login name (a container without a passwd entry)
        user = str(os.getuid()) if hasattr(os, "getuid") else "user"
    folder = os.fsencode(Path(library).expanduser().resolve())
    digest = hashlib.sha256(folder).hexdigest()[:16]
    return f"aladin-{re.sub(r'[^A-Za-z0-9_.-]', '_', user)}-{digest}"


def encode(paths: Sequence[str]) -> bytes:
    return json.dumps({"open": [os.path.abspath(p) for p in paths]}).encode() + b"\n"


def decode(message: bytes) -> list[str] | None:
    """The paths in a message, or None when it is not one (logged, never raised: any local
    process of this user may connect)."""
    try:
        paths = json.loads(message)["open"]
    except (ValueError, KeyError, TypeError):
        paths = None
    if not isinstance(paths, list) or not all(isinstance(p, str) for p in paths):
        log.warning("ignored a message on the app's socket that is not a list of paths: %.200r", message)
        return None
    return paths


def send(name: str, paths: Sequence[str]) -> bool:
    """Hand ``paths`` to the app listening on ``name``; False when none is (start one).

    Needs no ``QApplication``: a later launch answers without starting a GUI.
    """
    socket = QLocalSocket()
    socket.connectToServer(name)
    if not socket.waitForConnected(CONNECT_TIMEOUT_MS):
        return False
    socket.write(encode(paths))
    written = socket.waitForBytesWritten(WRITE_TIMEOUT_MS)
    socket.disconnectFromServer()
    if socket.state() != QLocalSocket.LocalSocketState.UnconnectedState:
        socket.waitForDisconnected(WRITE_TIMEOUT_MS)
    if not written:
        log.warning("the running app on %s did not take the paths: %s", name, socket.errorString())
    return True


class InstanceServer(QObject):
    """The running app's end of the socket.

    Args:
        name: from :func:`server_name`.
        parent: the window; the socket closes (and its file goes) with it.

    Signals:
        received(list): a later launch asked to open these absolute paths (maybe none: show the window).
    """

    received = Signal(list)

    def __init__(self, name: str, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.name = name
        self._server = QLocalServer(self)
        self._server.setSocketOptions(QLocalServer.SocketOption.UserAccessOption)
        self._server.newConnection.connect(self._accept)

    def listen(self) -> bool:
        """Start listening; False (logged) when a live app holds the name (two started at once).

        The check comes first because Qt, asked for owner-only access, binds elsewhere and
        renames the socket into place: ``listen`` would take a live app's name without an error.
        """
        if _answers(self.name):
            log.warning("another app already listens on %s; later launches go to it", self.name)
            return False
        QLocalServer.removeServer(self.name)  # nobody answers: a crashed app's socket file, if one is left
        if self._server.listen(self.name):
            return True
        log.warning("later launches will open their own window: cannot listen on %s: %s",
                    self.name, self._server.errorString())
        return False

    def close(self) -> None:
        """Stop listening and remove the socket file: later launches start their own app."""
        self._server.close()

    def _accept(self) -> None:
        while (socket := self._server.nextPendingConnection()) is not None:
            socket.readyRead.connect(lambda s=socket: self._read(s))
            socket.disconnected.connect(lambda s=socket: self._read(s, closed=True))

    def _read(self, socket: QLocalSocket, closed: bool = False) -> None:
        """Act on a complete line; a connection that closes without one (a liveness check) is dropped."""
        if socket.canReadLine():
            paths = decode(bytes(socket.readLine()))
            socket.disconnectFromServer()
            if paths is not None:
                self.received.emit(paths)
        elif socket.bytesAvailable() > MAX_MESSAGE_BYTES:
            log.warning("dropped an over-long message on the app's socket")
            socket.abort()
        if closed:
            socket.deleteLater()


def _answers(name: str) -> bool:
    """Whether a live app listens on ``name``; connecting and closing sends it nothing."""
    socket = QLocalSocket()
    socket.connectToServer(name)
    alive = socket.waitForConnected(CONNECT_TIMEOUT_MS)
    socket.abort()
    return alive
