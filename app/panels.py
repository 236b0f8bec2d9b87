"""Small composite widgets of the main window: message banner, indexing bar, empty state."""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QColor, QFont, QPalette
from PySide6.QtWidgets import (QFrame, QHBoxLayout, QLabel, QProgressBar, QPushButton, QSizePolicy, QToolButton,
                               QVBoxLayout, QWidget)

from app import icons
from app.delegates import NEGATIVE, mix


def format_eta(seconds: float | None) -> str:
    if seconds is None or seconds != seconds or seconds < 0:
        return "–"
    seconds = int(round(seconds))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


PHASES = {"scan": "Scanning", "hash": "Checking files", "embed": "Indexing", "done": "Finishing"}


def progress_text(p) -> str:
    """'Indexing 1,234 / 5,000 · 42.0 images/s · 1:23 left' from a ``core.indexer.IndexProgress``."""
    phase = PHASES.get(p.phase, p.phase.capitalize())
    parts = [f"{phase} {p.done:,} / {p.total:,}" if p.total else f"{phase} {p.done:,}"]
    if p.rate:
        parts.append(f"{p.rate:.1f} images/s")
    if p.eta_s is not None and p.total:
        parts.append(f"{format_eta(p.eta_s)} left")
    return " · ".join(parts)


class Banner(QFrame):
    """A coloured message bar with optional action buttons (info, warning, error).

    Signals:
        closed(): the user dismissed it.
    """

    closed = Signal()
    TONES = {"info": None, "warning": QColor(230, 160, 40), "error": NEGATIVE}

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.setObjectName("banner")
        self.setAutoFillBackground(True)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(12, 8, 8, 8)
        layout.setSpacing(8)
        self.icon = QLabel()
        self.text = QLabel()
        self.text.setWordWrap(True)
        self.text.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.text.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Preferred)
        layout.addWidget(self.icon)
        layout.addWidget(self.text, 1)
        self.buttons = QHBoxLayout()
        layout.addLayout(self.buttons)
        close = QToolButton()
        icons.bind(close, "remove")
        close.setAutoRaise(True)
        close.setToolTip("Dismiss")
        close.clicked.connect(self.dismiss)
        layout.addWidget(close)
        self.tone = "info"
        self.hide()

    def show_message(self, text: str, tone: str = "info",
                     actions: list[tuple[str, Callable[[], None]]] | None = None) -> None:
        self.tone = tone
        self.text.setText(text)
        while self.buttons.count():
            item = self.buttons.takeAt(0)
            item.widget().deleteLater()
        for label, slot in actions or []:
            button = QPushButton(label)
            button.clicked.connect(slot)
            self.buttons.addWidget(button)
        self.icon.setPixmap(icons.icon("warning" if tone != "info" else "image").pixmap(20, 20))
        self._apply_palette()
        self.show()

    def dismiss(self) -> None:
        self.hide()
        self.closed.emit()

    def _apply_palette(self) -> None:
        pal = self.palette()
        base = self.parentWidget().palette() if self.parentWidget() else pal
        tint = self.TONES.get(self.tone) or base.color(QPalette.ColorRole.Highlight)
        pal.setColor(QPalette.ColorRole.Window, mix(base.color(QPalette.ColorRole.Window), tint, 0.18))
        self.setPalette(pal)

    def changeEvent(self, event) -> None:
        super().changeEvent(event)
        if event.type() == event.Type.PaletteChange and self.isVisible():
            self._apply_palette()
            self.icon.setPixmap(icons.icon("warning" if self.tone != "info" else "image").pixmap(20, 20))


class IndexPanel(QFrame):
    """The indexing status line: progress bar with count, rate and ETA, Cancel and Resume.

    Signals:
        cancel_clicked(), resume_clicked(), failures_clicked()
    """

    cancel_clicked = Signal()
    resume_clicked = Signal()
    failures_clicked = Signal()

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(10, 4, 10, 4)
        self.label = QLabel()
        self.bar = QProgressBar()
        self.bar.setTextVisible(False)
        self.bar.setFixedHeight(8)
        self.bar.setMaximumWidth(280)
        self.cancel = icons.bind(QPushButton("Cancel"), "stop")
        self.resume = icons.bind(QPushButton("Resume"), "resume")
        self.failures = icons.bind(QPushButton(""), "warning")
        self.failures.setFlat(True)
        for w in (self.cancel, self.resume, self.failures):
            w.setSizePolicy(QSizePolicy.Policy.Fixed, QSizePolicy.Policy.Fixed)
        layout.addWidget(self.bar)
        layout.addWidget(self.label, 1)
        layout.addWidget(self.failures)
        layout.addWidget(self.resume)
        layout.addWidget(self.cancel)
        self.cancel.clicked.connect(self.cancel_clicked)
        self.resume.clicked.connect(self.resume_clicked)
        self.failures.clicked.connect(self.failures_clicked)
        self.set_idle("")

    def set_running(self, text: str = "Starting…") -> None:
        self.bar.setRange(0, 0)
        self.bar.show()
        self.label.setText(text)
        self.cancel.show()
        self.cancel.setEnabled(True)
        self.resume.hide()
        self.show()

    def set_progress(self, progress) -> None:
        if progress.total:
            self.bar.setRange(0, max(1, progress.total))
            self.bar.setValue(min(progress.done, progress.total))
        else:
            self.bar.setRange(0, 0)
        self.label.setText(progress_text(progress))

    def set_cancelling(self) -> None:
        self.cancel.setEnabled(False)
        self.label.setText(self.label.text() + " · stopping after this batch…")

    def set_paused(self, text: str) -> None:
        self.bar.hide()
        self.label.setText(text)
        self.cancel.hide()
        self.resume.show()
        self.show()

    def set_idle(self, text: str) -> None:
        self.bar.hide()
        self.cancel.hide()
        self.resume.hide()
        self.label.setText(text)

    def set_failures(self, count: int) -> None:
        self.failures.setText(f"{count:,} could not be read")
        self.failures.setVisible(count > 0)


class EmptyState(QWidget):
    """A centred message with a big action: what to do when there is nothing to show."""

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        layout = QVBoxLayout(self)
        layout.addStretch(2)
        self.picture = QLabel(alignment=Qt.AlignmentFlag.AlignCenter)
        self.title = QLabel(alignment=Qt.AlignmentFlag.AlignCenter)
        font = QFont(self.font())
        font.setPointSizeF(font.pointSizeF() * 1.5)
        font.setBold(True)
        self.title.setFont(font)
        self.body = QLabel(alignment=Qt.AlignmentFlag.AlignCenter)
        self.body.setWordWrap(True)
        self.body.setForegroundRole(QPalette.ColorRole.PlaceholderText)
        self.actions = QHBoxLayout()
        self.actions.addStretch(1)
        self.actions.addStretch(1)
        for w in (self.picture, self.title, self.body):
            layout.addWidget(w)
        layout.addSpacing(12)
        layout.addLayout(self.actions)
        layout.addStretch(3)

    def set_content(self, icon_name: str, title: str, body: str, actions: list[QPushButton] = ()) -> None:
        self.picture.setPixmap(icons.icon(icon_name, self.palette().color(QPalette.ColorRole.PlaceholderText))
                               .pixmap(64, 64))
        self.title.setText(title)
        self.body.setText(body)
        while self.actions.count() > 2:
            item = self.actions.takeAt(1)
            if item.widget():
                item.widget().setParent(None)
        for i, button in enumerate(actions):
            self.actions.insertWidget(1 + i, button)
            button.show()  # reparenting hides a widget
