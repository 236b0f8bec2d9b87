"""The main window's widgets: toolbar, pages (Browse first), moodboard area, filter bar, results, status bar.

Building is kept apart from behaviour: :class:`MainWidgets` lays everything
out and holds the widgets; the controllers and the window decide what they
show. :class:`FilterBar` is the one widget with state of its own: its four
fields always travel together, as one :class:`core.query.SearchFilters` and
as four saved options.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QAction, QPalette
from PySide6.QtWidgets import (QApplication, QCheckBox, QComboBox, QFileDialog, QFrame, QHBoxLayout, QLabel,
                               QLineEdit, QMainWindow, QMenu, QPushButton, QSizePolicy, QSlider, QSpinBox,
                               QStackedWidget, QTabWidget, QToolButton, QVBoxLayout, QWidget)

from core.calibration import STRONG
from core.expansion import TOP as EXPAND_TOP
from core.query import SearchFilters

from app import icons
from app.delegates import mix
from app.library_model import LibraryModel
from app.library_view import LibraryPane
from app.mainwindow.actions import MainActions
from app.moodboard_model import MoodboardModel
from app.options import THUMB_MAX, THUMB_MIN, Settings
from app.panels import Banner, EmptyState, IndexPanel
from app.results_model import ResultsModel
from app.views import MoodboardStrip, ResultsView


class QueryArea(QFrame):
    """The drop zone: the moodboard's title and hint, then its strip (or, while empty, a drop hint).

    It is highlighted while something is dragged over the window.
    """

    def __init__(self, moodboard: MoodboardModel, clear: QAction, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("queryArea")
        self.setFrameShape(QFrame.Shape.StyledPanel)
        self.setProperty("dropping", False)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(10, 6, 10, 6)
        layout.setSpacing(2)
        header = QHBoxLayout()
        self.title = QLabel()
        font = self.title.font()
        font.setBold(True)
        self.title.setFont(font)
        hint = QLabel("Drop images here or paste (Ctrl+V) · ⊕ more like · ⊖ less like · ×weight")
        hint.setForegroundRole(QPalette.ColorRole.PlaceholderText)
        clear_button = QToolButton()
        clear_button.setDefaultAction(clear)
        clear_button.setAutoRaise(True)
        header.addWidget(self.title)
        header.addSpacing(8)
        header.addWidget(hint, 1)
        header.addWidget(clear_button)
        layout.addLayout(header)
        self.strip = MoodboardStrip()
        self.strip.setModel(moodboard)
        self.placeholder = QLabel("Drop one or more images here (from a file manager or a browser), "
                                  "or paste one with Ctrl+V, to find art in the same style.")
        self.placeholder.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.placeholder.setWordWrap(True)
        self.placeholder.setForegroundRole(QPalette.ColorRole.PlaceholderText)
        self.placeholder.setObjectName("dropHint")
        self.placeholder.setStyleSheet("#dropHint { border: 2px dashed palette(mid); border-radius: 10px; }")
        self.placeholder.setFixedHeight(self.strip.height() - 8)
        layout.addWidget(self.strip)
        layout.addWidget(self.placeholder)

    def show_board(self, title: str, has_entries: bool) -> None:
        self.title.setText(title)
        self.strip.setVisible(has_entries)
        self.placeholder.setVisible(not has_entries)

    def set_dropping(self, on: bool) -> None:
        self.setProperty("dropping", on)
        self.setAutoFillBackground(on)
        pal = QApplication.palette(self)
        if on:
            pal.setColor(QPalette.ColorRole.Window, mix(pal.color(QPalette.ColorRole.Window),
                                                        pal.color(QPalette.ColorRole.Highlight), 0.2))
        self.setPalette(pal)


class FilterBar(QWidget):
    """Where to search and how much to show: root, folder, "exclude the query's folders",
    "strong matches only" (a calibrated score of at least ``core.calibration.STRONG``), "follow the first
    matches" (query expansion, ``core.expansion``), result count.

    Signals:
        changed(): the user changed a filter; the search runs again.
    """

    changed = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.root_combo = QComboBox()
        self.root_combo.setMinimumContentsLength(16)
        self.root_combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.folder_edit = QLineEdit()
        self.folder_edit.setPlaceholderText("any folder")
        self.folder_edit.setClearButtonEnabled(True)
        browse = QToolButton()
        browse.setText("…")
        browse.setToolTip("Choose a folder to search in")
        browse.clicked.connect(self.choose_folder)
        self.exclude_check = QCheckBox("Exclude the query's folders")
        self.strong_check = QCheckBox("Strong matches only")
        self.strong_check.setToolTip(f"Only results with a score of {STRONG:.0f} or more: closer to the query than "
                                     f"{STRONG:.0f} % of the library's own near neighbours ('close' or 'very close')")
        self.expand_check = QCheckBox("Follow the first matches")
        self.expand_check.setToolTip(f"Rank the results after the first {EXPAND_TOP} by the query and those "
                                     f"{EXPAND_TOP} together, so the list follows the query's style through other "
                                     "subjects. Off: every result ranked by its own likeness to the query. A "
                                     "moodboard of several images is never widened this way.")
        self.k_spin = QSpinBox()
        self.k_spin.setRange(1, 10000)
        self.k_spin.setSingleStep(50)
        self.k_spin.setAccelerated(True)
        bar = QHBoxLayout(self)
        bar.setContentsMargins(10, 6, 10, 6)
        bar.addWidget(QLabel("Search in"))
        bar.addWidget(self.root_combo)
        bar.addWidget(QLabel("Folder"))
        bar.addWidget(self.folder_edit, 1)
        bar.addWidget(browse)
        bar.addSpacing(8)
        bar.addWidget(self.exclude_check)
        bar.addWidget(self.strong_check)
        bar.addWidget(self.expand_check)
        bar.addSpacing(8)
        bar.addWidget(QLabel("Results"))
        bar.addWidget(self.k_spin)
        self.root_combo.currentIndexChanged.connect(self.changed)
        self.folder_edit.editingFinished.connect(self.changed)
        self.folder_edit.textChanged.connect(lambda text: text or self.changed.emit())  # the clear button
        self.exclude_check.toggled.connect(self.changed)
        self.strong_check.toggled.connect(self.changed)
        self.expand_check.toggled.connect(self.changed)
        self.k_spin.valueChanged.connect(self.changed)

    def root(self) -> str:
        """The chosen root; "" for all folders (also while the combo is still empty)."""
        return self.root_combo.currentData() if self.root_combo.currentIndex() >= 0 else ""

    def filters(self) -> SearchFilters:
        root = self.root() or None
        return SearchFilters(roots=[root] if root else None, folder=self.folder_edit.text().strip() or None,
                             exclude_query_folders=self.exclude_check.isChecked(), k=self.k_spin.value(),
                             min_score=STRONG if self.strong_check.isChecked() else None,
                             expand=self.expand_check.isChecked())

    def set_roots(self, roots: list, current: str) -> None:
        """Offer ``roots`` (``core.library.RootStatus``), keeping ``current`` chosen when it is still there."""
        combo = self.root_combo
        combo.blockSignals(True)
        combo.clear()
        combo.addItem("All folders", "")
        for root in roots:
            combo.addItem(Path(root.path).name or root.path, root.path)
            combo.setItemData(combo.count() - 1, f"{root.path}\n{root.images:,} images" +
                              ("" if root.exists else " · folder is missing"), Qt.ItemDataRole.ToolTipRole)
        combo.setCurrentIndex(max(0, combo.findData(current)))
        combo.blockSignals(False)

    def choose_root(self, root: str) -> None:
        self.root_combo.setCurrentIndex(max(0, self.root_combo.findData(root)))

    def choose_folder(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Search only in this folder", self.folder_edit.text())
        if folder:
            self.folder_edit.setText(folder)
            self.changed.emit()

    def restore(self, settings: Settings) -> None:
        """The filters of the last session (the root follows once the library's roots are known)."""
        for w in (self.exclude_check, self.strong_check, self.expand_check, self.k_spin, self.folder_edit):
            w.blockSignals(True)
        self.exclude_check.setChecked(settings.get("exclude_query_folders"))
        self.strong_check.setChecked(settings.get("strong_only"))
        self.expand_check.setChecked(settings.get("expand_results"))
        self.k_spin.setValue(settings.get("results_k"))
        self.folder_edit.setText(settings.get("filter_folder"))
        for w in (self.exclude_check, self.strong_check, self.expand_check, self.k_spin, self.folder_edit):
            w.blockSignals(False)

    def save(self, settings: Settings) -> None:
        settings.set("filter_root", self.root())
        settings.set("filter_folder", self.folder_edit.text().strip())
        settings.set("exclude_query_folders", self.exclude_check.isChecked())
        settings.set("strong_only", self.strong_check.isChecked())
        settings.set("expand_results", self.expand_check.isChecked())
        settings.set("results_k", self.k_spin.value())


def _menu_button(text: str, icon: str, menu: QMenu, tip: str | None = None) -> QToolButton:
    button = QToolButton()
    button.setText(text)
    icons.bind(button, icon)
    button.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
    if tip:
        button.setToolTip(tip)
    button.setPopupMode(QToolButton.ToolButtonPopupMode.InstantPopup)
    button.setMenu(menu)
    return button


class MainWidgets:
    """Lays out ``window`` and holds its widgets (the shape of a Qt Designer ``Ui`` class).

    Toolbar: add folder, rescan, the Folders and Moodboards menus, save, paste, settings.
    Centre, top to bottom: banner, the pages, indexing panel. The first page, "Browse",
    holds the moodboard area, the filter bar and a stack of the results, the library
    (while the moodboard is empty) or an empty state; more pages come from :meth:`add_page`,
    and the page tabs show once there are two. Status bar: library counts, model, tile size.
    """

    def __init__(self, window: QMainWindow, act: MainActions, moodboard: MoodboardModel,
                 results: ResultsModel, library: LibraryModel) -> None:
        tb = window.addToolBar("Main")
        tb.setObjectName("mainToolbar")
        tb.setMovable(False)
        tb.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        tb.addAction(act.add)
        tb.addAction(act.rescan)
        self.folders_menu = QMenu(window)
        tb.addWidget(_menu_button("Folders", "folder", self.folders_menu,
                                  "The library's folders: remove one, see unreadable files"))
        tb.addSeparator()
        self.boards_menu = QMenu(window)
        tb.addWidget(_menu_button("Moodboards", "moodboard", self.boards_menu))
        tb.addAction(act.save)
        tb.addAction(act.paste)
        spacer = QWidget()
        spacer.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Preferred)
        tb.addWidget(spacer)
        tb.addAction(act.settings)

        central = QWidget()
        layout = QVBoxLayout(central)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(0)
        self.banner = Banner(central)
        layout.addWidget(self.banner)
        self.pages = QTabWidget()
        self.pages.setDocumentMode(True)
        self.pages.setTabBarAutoHide(True)
        self._page_icons: dict[QWidget, str] = {}
        layout.addWidget(self.pages, 1)
        self.browse_page = QWidget()
        browse = QVBoxLayout(self.browse_page)
        browse.setContentsMargins(0, 0, 0, 0)
        browse.setSpacing(0)
        self.query = QueryArea(moodboard, act.clear)
        browse.addWidget(self.query)
        self.filters = FilterBar()
        browse.addWidget(self.filters)
        self.stack = QStackedWidget()
        self.empty = EmptyState()
        self.view = ResultsView()
        self.view.setModel(results)
        self.library_pane = LibraryPane()
        self.library_pane.view.setModel(library)
        for page in (self.empty, self.view, self.library_pane):
            self.stack.addWidget(page)
        browse.addWidget(self.stack, 1)
        self.add_page(self.browse_page, "Browse", "search")
        self.index_panel = IndexPanel()
        layout.addWidget(self.index_panel)
        window.setCentralWidget(central)

        # The empty state's own button, shown on it when it is the next step.
        self.empty_add = icons.bind(QPushButton("Add Folder…"), "folder-add")

        sb = window.statusBar()
        self.library_label = QLabel()
        self.model_label = QLabel()
        self.tile_slider = QSlider(Qt.Orientation.Horizontal)
        self.tile_slider.setRange(THUMB_MIN, THUMB_MAX)
        self.tile_slider.setFixedWidth(120)
        self.tile_slider.setToolTip("Tile size (Ctrl+plus / Ctrl+minus)")
        self.scores_button = QToolButton()
        self.scores_button.setDefaultAction(act.show_scores)
        self.scores_button.setAutoRaise(True)
        sb.addWidget(self.library_label, 1)
        sb.addPermanentWidget(self.model_label)
        sb.addPermanentWidget(self.scores_button)
        sb.addPermanentWidget(self.tile_slider)

    def add_page(self, widget: QWidget, title: str, icon_name: str | None = None) -> int:
        """Add a page (a tab beside Browse); ``icon_name`` is one of ``resources/icons``. Returns its index."""
        index = self.pages.addTab(widget, title)
        if icon_name:
            self._page_icons[widget] = icon_name
            self.pages.setTabIcon(index, icons.icon(icon_name))
        return index

    def retint_pages(self) -> None:
        """The page icons in the palette's new colours (after a light/dark switch)."""
        for widget, name in self._page_icons.items():
            self.pages.setTabIcon(self.pages.indexOf(widget), icons.icon(name))
