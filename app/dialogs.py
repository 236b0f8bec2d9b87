"""Secondary windows: failures list, settings, large preview."""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import QAbstractTableModel, QModelIndex, QPersistentModelIndex, QSize, Qt, Signal
from PySide6.QtGui import QGuiApplication, QImage, QImageReader, QKeyEvent, QPixmap
from PySide6.QtWidgets import (QComboBox, QDialog, QDialogButtonBox, QFileDialog, QFormLayout, QHBoxLayout,
                               QHeaderView, QLabel, QLineEdit, QPushButton, QSlider, QTableView, QVBoxLayout,
                               QWidget)

from app.options import MODEL_BASELINE, MODEL_DEFAULT, THUMB_MAX, THUMB_MIN

Index = QModelIndex | QPersistentModelIndex


class FailuresModel(QAbstractTableModel):
    """Files that could not be indexed (``core.library.Failure``: path, reason)."""

    HEADERS = ("File", "Reason")

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self._rows: list[Any] = []

    def set_failures(self, failures: list[Any]) -> None:
        self.beginResetModel()
        self._rows = list(failures)
        self.endResetModel()

    def rowCount(self, parent: Index = QModelIndex()) -> int:
        return 0 if parent.isValid() else len(self._rows)

    def columnCount(self, parent: Index = QModelIndex()) -> int:
        return 0 if parent.isValid() else 2

    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid() or not 0 <= index.row() < len(self._rows):
            return None
        f = self._rows[index.row()]
        if role in (Qt.ItemDataRole.DisplayRole, Qt.ItemDataRole.ToolTipRole):
            return f.path if index.column() == 0 else f.reason
        return None

    def headerData(self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if role == Qt.ItemDataRole.DisplayRole and orientation == Qt.Orientation.Horizontal and 0 <= section < 2:
            return self.HEADERS[section]
        return None

    def as_text(self) -> str:
        return "\n".join(f"{f.path}\t{f.reason}" for f in self._rows)


class FailuresDialog(QDialog):
    """Signals:
        retry_requested(): the user asks to scan again (fixed files are then indexed).
    """

    retry_requested = Signal()

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Files that could not be read")
        self.resize(760, 420)
        self.model = FailuresModel(self)
        self.summary = QLabel()
        self.table = QTableView()
        self.table.setModel(self.model)
        self.table.setSelectionBehavior(QTableView.SelectionBehavior.SelectRows)
        self.table.setAlternatingRowColors(True)
        self.table.verticalHeader().hide()
        self.table.horizontalHeader().setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        self.table.horizontalHeader().setSectionResizeMode(1, QHeaderView.ResizeMode.ResizeToContents)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        copy = buttons.addButton("Copy list", QDialogButtonBox.ButtonRole.ActionRole)
        retry = buttons.addButton("Scan again", QDialogButtonBox.ButtonRole.ActionRole)
        copy.clicked.connect(lambda: QGuiApplication.clipboard().setText(self.model.as_text()))
        retry.clicked.connect(self.retry_requested)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(self.summary)
        layout.addWidget(self.table)
        layout.addWidget(buttons)

    def set_failures(self, failures: list[Any]) -> None:
        self.model.set_failures(failures)
        self.summary.setText(f"{len(failures):,} files could not be read. They are skipped; "
                             "fix or replace them and scan again." if failures else "Every file could be read.")


def cuda_devices() -> list[tuple[str, str]]:
    """(value, label) for each CUDA GPU torch can see; empty without CUDA."""
    try:
        import torch

        if not torch.cuda.is_available():
            return []
        return [(f"cuda:{i}", f"GPU {i}: {torch.cuda.get_device_name(i)}") for i in range(torch.cuda.device_count())]
    except Exception:  # a broken driver must not stop the settings dialog
        return []


class SettingsDialog(QDialog):
    """Device, model file and thumbnail size. Values are read back with :meth:`values`."""

    def __init__(self, values: dict, devices: list[tuple[str, str]] | None = None, parent=None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Settings")
        self.setMinimumWidth(520)
        form = QFormLayout()
        self.device = QComboBox()
        self.device.addItem("Automatic (CUDA GPU when available, else CPU)", "auto")
        self.device.addItem("CPU", "cpu")
        for value, label in cuda_devices() if devices is None else devices:
            self.device.addItem(label, value)
        i = self.device.findData(values.get("device", "auto"))
        self.device.setCurrentIndex(max(0, i))
        form.addRow("Compute device:", self.device)

        self.model_kind = QComboBox()
        self.model_kind.addItem("Bundled trained model", "default")
        self.model_kind.addItem("Model file…", "file")
        self.model_kind.addItem("Untrained baseline (random network; for testing only)", "baseline")
        self.model_path = QLineEdit()
        self.model_path.setPlaceholderText("path to an ALADIN .safetensors model file")
        browse = QPushButton("Browse…")
        browse.clicked.connect(self._browse)
        row = QHBoxLayout()
        row.addWidget(self.model_path, 1)
        row.addWidget(browse)
        self.model_file_row = QWidget()
        self.model_file_row.setLayout(row)
        row.setContentsMargins(0, 0, 0, 0)
        spec = values.get("model", MODEL_DEFAULT)
        kind = "default" if spec == MODEL_DEFAULT else "baseline" if spec == MODEL_BASELINE else "file"
        self.model_kind.setCurrentIndex(self.model_kind.findData(kind))
        if kind == "file":
            self.model_path.setText(spec)
        self.model_kind.currentIndexChanged.connect(self._kind_changed)
        form.addRow("Model:", self.model_kind)
        form.addRow("", self.model_file_row)
        self._kind_changed()

        self.thumb = QSlider(Qt.Orientation.Horizontal)
        self.thumb.setRange(THUMB_MIN, THUMB_MAX)
        self.thumb.setValue(int(values.get("thumb_size", 160)))
        thumb_label = QLabel()
        self.thumb.valueChanged.connect(lambda v: thumb_label.setText(f"{v} px"))
        thumb_label.setText(f"{self.thumb.value()} px")
        trow = QHBoxLayout()
        trow.addWidget(self.thumb, 1)
        trow.addWidget(thumb_label)
        form.addRow("Thumbnail size:", trow)

        note = QLabel("Changing the model needs the library to be indexed again with it.")
        note.setWordWrap(True)
        note.setForegroundRole(note.foregroundRole())
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(note)
        layout.addWidget(buttons)

    def _kind_changed(self) -> None:
        self.model_file_row.setVisible(self.model_kind.currentData() == "file")

    def _browse(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Choose a model file", self.model_path.text(),
                                              "ALADIN models (*.safetensors);;All files (*)")
        if path:
            self.model_path.setText(path)

    def values(self) -> dict:
        kind = self.model_kind.currentData()
        model = {"default": MODEL_DEFAULT, "baseline": MODEL_BASELINE}.get(kind, self.model_path.text().strip())
        return {"device": self.device.currentData(), "model": model, "thumb_size": self.thumb.value()}


def read_preview(path: str, edge: int) -> QImage:
    """A screen-sized image for the preview; runs in a worker (big files take a while)."""
    reader = QImageReader(path)
    reader.setAutoTransform(True)
    size = reader.size()
    if size.isValid() and max(size.width(), size.height()) > edge:
        reader.setScaledSize(size.scaled(QSize(edge, edge), Qt.AspectRatioMode.KeepAspectRatio))
    image = reader.read()
    if image.isNull():
        from app.thumbnails import pil_to_qimage
        from core.images import decode

        img, _ = decode(path, min_side=edge)
        img.thumbnail((edge, edge))
        image = pil_to_qimage(img)
    return image


class PreviewDialog(QDialog):
    """A large view of one result; Space or Escape closes it, arrows step through results.

    Signals:
        step(int): -1 / +1 for the previous / next result.
    """

    step = Signal(int)

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Preview")
        self.label = QLabel(alignment=Qt.AlignmentFlag.AlignCenter)
        self.label.setMinimumSize(320, 240)
        self.caption = QLabel(alignment=Qt.AlignmentFlag.AlignCenter)
        self.caption.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        layout = QVBoxLayout(self)
        layout.addWidget(self.label, 1)
        layout.addWidget(self.caption)
        self._pixmap = QPixmap()
        self.path = ""

    def set_loading(self, path: str, caption: str) -> None:
        self.path = path
        self._pixmap = QPixmap()
        self.label.setText("Loading…")
        self.caption.setText(caption)

    def set_image(self, path: str, image: QImage) -> None:
        if path != self.path:
            return
        self._pixmap = QPixmap.fromImage(image)
        self._fit()

    def set_error(self, path: str, message: str) -> None:
        if path == self.path:
            self.label.setText(message)

    def resizeEvent(self, event) -> None:
        super().resizeEvent(event)
        self._fit()

    def _fit(self) -> None:
        if not self._pixmap.isNull():
            self.label.setPixmap(self._pixmap.scaled(self.label.size(), Qt.AspectRatioMode.KeepAspectRatio,
                                                     Qt.TransformationMode.SmoothTransformation))

    def keyPressEvent(self, event: QKeyEvent) -> None:
        if event.key() == Qt.Key.Key_Space:
            self.accept()
        elif event.key() in (Qt.Key.Key_Right, Qt.Key.Key_Down):
            self.step.emit(1)
        elif event.key() in (Qt.Key.Key_Left, Qt.Key.Key_Up):
            self.step.emit(-1)
        else:
            super().keyPressEvent(event)
