"""The "Teach Styles" dialog: groups in, a fine-tuned model out, with figures to decide by.

The user lists groups (library folders or saved moodboards), starts, watches the progress,
then compares the held-out figures of the current and the new model and keeps the new one
(Use New Model) or drops it (Discard). Everything slow happens in
:class:`app.teach.controller.TeachController`; this class only shows its state.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtGui import QFont, QPalette
from PySide6.QtWidgets import (QAbstractItemView, QDialog, QFileDialog, QFormLayout, QGridLayout,
                               QGroupBox, QHBoxLayout, QHeaderView, QLabel, QLineEdit, QMenu, QProgressBar,
                               QPushButton, QSpinBox, QTableView, QToolButton, QVBoxLayout, QWidget)

from app.engine import Engine
from app.panels import format_eta
from app.teach.controller import TeachController
from app.teach.groups import FOLDER, HOLDOUT_SHARE, MIN_GROUPS, MIN_IMAGES, MOODBOARD
from app.teach.groups_model import GroupsModel
from app.teach.pipeline import (DEFAULT_STEPS, EXPORT, MEASURE_AFTER, MEASURE_BEFORE, TRAIN, Figures, TeachOutcome,
                                TeachProgress)
from app.teach.store import name_problem

MAX_STEPS = 5000
STAGES = {MEASURE_BEFORE: "Measuring the current model on the held-out images…",
          EXPORT: "Writing the new model…", MEASURE_AFTER: "Measuring the new model on the held-out images…"}


def default_name() -> str:
    return datetime.now().strftime("my-styles-%Y%m%d-%H%M")


def progress_text(p: TeachProgress) -> str:
    """What the run is doing, in words: the stage, or the training step with its loss and time left."""
    if p.stage != TRAIN:
        return STAGES[p.stage]
    if not p.step:
        return "Preparing the training images…"
    text = f"Training: step {p.step:,} of {p.steps:,}"
    if p.loss is not None:
        text += f" · loss {p.loss:.3f}"
    if p.eta_s is not None:
        text += f" · {format_eta(p.eta_s)} left"
    return text


class FiguresPanel(QGroupBox):
    """P@1 and mAP on the held-out images, before and after, side by side."""

    ROWS = (("P@1", "p_at_1", "share of held-out images whose closest other held-out image is of their group"),
            ("mAP", "map", "mean average precision: how high the rest of each image's group ranks"))

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__("Held-out images", parent)
        grid = QGridLayout(self)
        self.note = QLabel()
        self.note.setWordWrap(True)
        self.note.setForegroundRole(QPalette.ColorRole.PlaceholderText)
        grid.addWidget(self.note, 0, 0, 1, 3)
        for column, title in ((1, "Current model"), (2, "New model")):
            header = QLabel(title)
            header.setAlignment(Qt.AlignmentFlag.AlignRight)
            grid.addWidget(header, 1, column)
        self.cells: dict[tuple[str, str], QLabel] = {}
        bold = QFont(self.font())
        bold.setBold(True)
        for row, (label, key, tip) in enumerate(self.ROWS, start=2):
            name = QLabel(label)
            name.setToolTip(tip)
            grid.addWidget(name, row, 0)
            for column, when in ((1, "before"), (2, "after")):
                cell = QLabel("–")
                cell.setAlignment(Qt.AlignmentFlag.AlignRight)
                if when == "after":
                    cell.setFont(bold)
                grid.addWidget(cell, row, column)
                self.cells[(key, when)] = cell
        grid.setColumnStretch(0, 1)
        self.clear()

    def clear(self) -> None:
        for cell in self.cells.values():
            cell.setText("–")
        self.note.setText(f"{HOLDOUT_SHARE:.0%} of every group (at least 2 images) is held out of training; "
                          "both models are measured on those images.")

    def show_figures(self, when: str, figures: Figures) -> None:
        for _, key, _ in self.ROWS:
            self.cells[(key, when)].setText(f"{getattr(figures, key):.3f}")
        self.note.setText(f"Measured on {figures.queries:,} held-out images the new model never trained on.")


class TeachDialog(QDialog):
    """Lists the groups, runs the session and offers the new model.

    Closing the window only hides it: a run goes on and a finished one waits for a decision
    (Teach Styles shows it again). Discard drops the new model; Use New Model keeps it.

    Attributes:
        controller: does the work; its signals drive this dialog's state.
    """

    def __init__(self, engine: Engine, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Teach Styles")
        self.resize(680, 560)
        self.engine = engine
        self.model = GroupsModel(self)
        self.controller = TeachController(engine, self.model, self)
        self._build()
        self._connect()
        engine.read_moodboards()
        self.update_state()

    def _build(self) -> None:
        intro = QLabel(f"Teach the model in use your own styles: list at least {MIN_GROUPS} groups of at least "
                       f"{MIN_IMAGES} images, each a library folder or a saved moodboard of one style. The model "
                       "is fine-tuned in the background and measured before and after; you then keep it or not.")
        intro.setWordWrap(True)
        self.table = QTableView()
        self.table.setModel(self.model)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.verticalHeader().hide()
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(1, QHeaderView.ResizeMode.Stretch)
        header.setSectionResizeMode(2, QHeaderView.ResizeMode.ResizeToContents)
        self.add_folder = QPushButton("Add Folder…")
        self.boards_menu = QMenu(self)
        self.add_board = QToolButton()
        self.add_board.setText("Add Moodboard")
        self.add_board.setMenu(self.boards_menu)
        self.add_board.setPopupMode(QToolButton.ToolButtonPopupMode.InstantPopup)
        self.remove = QPushButton("Remove")
        row = QHBoxLayout()
        for w in (self.add_folder, self.add_board, self.remove):
            row.addWidget(w)
        row.addStretch(1)
        self.problems = QLabel()
        self.problems.setWordWrap(True)
        self.problems.setTextFormat(Qt.TextFormat.PlainText)

        self.name = QLineEdit(default_name())
        self.steps = QSpinBox()
        self.steps.setRange(1, MAX_STEPS)
        self.steps.setSingleStep(10)
        self.steps.setValue(DEFAULT_STEPS)
        self.steps.setToolTip("More steps learn more and take longer: about 0.15 s each for 4 groups on "
                              "2 idle CPU cores, ten times that when they are busy")
        form = QFormLayout()
        form.addRow("New model's name:", self.name)
        form.addRow("Training steps:", self.steps)

        self.bar = QProgressBar()
        self.bar.setTextVisible(False)
        self.status = QLabel()
        self.status.setWordWrap(True)
        self.cancel = QPushButton("Cancel")
        progress = QHBoxLayout()
        progress.addWidget(self.bar, 1)
        progress.addWidget(self.cancel)
        self.figures = FiguresPanel()

        self.start = QPushButton("Start Teaching")
        self.close_button = QPushButton("Close")
        self.use = QPushButton("Use New Model")
        buttons = QHBoxLayout()
        buttons.addWidget(self.start)
        buttons.addStretch(1)
        buttons.addWidget(self.close_button)
        buttons.addWidget(self.use)

        layout = QVBoxLayout(self)
        layout.addWidget(intro)
        layout.addWidget(self.table, 1)
        layout.addLayout(row)
        layout.addWidget(self.problems)
        layout.addLayout(form)
        layout.addLayout(progress)
        layout.addWidget(self.status)
        layout.addWidget(self.figures)
        layout.addLayout(buttons)

    def _connect(self) -> None:
        c = self.controller
        self.add_folder.clicked.connect(self.choose_folder)
        self.remove.clicked.connect(
            lambda: self.model.remove([i.row() for i in self.table.selectionModel().selectedRows()]))
        self.table.selectionModel().selectionChanged.connect(self.update_state)
        self.model.changed.connect(self.update_state)
        self.name.textChanged.connect(self.update_state)
        self.engine.moodboards_read.connect(self._fill_boards)
        self.start.clicked.connect(self.start_teaching)
        self.cancel.clicked.connect(self._cancel)
        self.use.clicked.connect(self._use)
        self.close_button.clicked.connect(self._close_clicked)
        c.progress.connect(self._progress)
        c.finished.connect(self._finished)
        c.cancelled.connect(lambda: self._stopped("Cancelled. Nothing was changed."))
        c.failed.connect(lambda message: self._stopped(f"⚠ {message}"))
        c.kept.connect(lambda _path: self.accept())

    # -- groups ------------------------------------------------------------------------------------
    def choose_folder(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Choose a library folder of one style")
        if folder:
            self.add_group(FOLDER, folder)

    def add_group(self, kind: str, source: str) -> None:
        """Add a library folder (by path) or a saved moodboard (by name); its images are counted next."""
        name = (Path(source).name or source) if kind == FOLDER else source
        self.controller.add_group(kind, source, name)

    def _fill_boards(self, names: list[str]) -> None:
        self.boards_menu.clear()
        for name in names:
            self.boards_menu.addAction(name, lambda n=name: self.add_group(MOODBOARD, n))
        if not names:
            self.boards_menu.addAction("No saved moodboards").setEnabled(False)

    # -- state -----------------------------------------------------------------------------------------
    def blockers(self) -> list[str]:
        """Everything that keeps Start disabled, one sentence each."""
        found = self.model.problems()
        for problem in (self.controller.base_problem(), name_problem(self.name.text().strip())):
            if problem:
                found.append(problem)
        return found

    def update_state(self) -> None:
        c = self.controller
        idle = not c.running and c.outcome is None
        blockers = self.blockers()
        self.problems.setText("\n".join(f"⚠ {b}" for b in blockers))
        self.problems.setVisible(idle and bool(blockers))
        for w in (self.add_folder, self.add_board, self.name, self.steps):
            w.setEnabled(idle)
        self.remove.setEnabled(idle and self.table.selectionModel().hasSelection())
        self.start.setEnabled(idle and not blockers and not self.model.counting)
        self.use.setEnabled(c.outcome is not None)
        (self.use if c.outcome is not None else self.start).setDefault(True)
        self.close_button.setText("Discard" if c.outcome is not None else "Close")
        self.cancel.setVisible(c.running)
        self.cancel.setEnabled(c.running)
        self.bar.setVisible(c.running)

    def start_teaching(self) -> None:
        self.figures.clear()
        self.status.setText("Starting…")
        self.bar.setRange(0, 0)
        self.controller.start(self.name.text().strip(), self.steps.value())
        self.update_state()

    def _progress(self, p: TeachProgress) -> None:
        if p.before is not None:
            self.figures.show_figures("before", p.before)
        if p.stage == TRAIN and p.step:
            self.bar.setRange(0, p.steps)
            self.bar.setValue(p.step)
        else:
            self.bar.setRange(0, 0)
        self.status.setText(progress_text(p))

    def _finished(self, outcome: TeachOutcome) -> None:
        self.figures.show_figures("before", outcome.before)
        self.figures.show_figures("after", outcome.after)
        self.status.setText(f"Done in {format_eta(outcome.seconds)}. Use the new model to re-index the library "
                            "with it (searches keep working meanwhile), or discard it.")
        self.update_state()

    def _stopped(self, message: str) -> None:
        self.status.setText(message)
        self.update_state()

    def _cancel(self) -> None:
        self.cancel.setEnabled(False)
        self.status.setText("Stopping…")
        self.controller.cancel()

    def _use(self) -> None:
        self.use.setEnabled(False)
        self.status.setText("Saving the new model…")
        self.controller.keep()

    def _close_clicked(self) -> None:
        """Discard a finished run's model (nothing is kept), or just close."""
        if self.controller.outcome is not None:
            self.controller.discard()
        self.reject()
