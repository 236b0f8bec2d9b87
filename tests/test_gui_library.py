"""The library view: browsing every indexed image by folder, sort and name, and dragging images in and out."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from PySide6.QtCore import QModelIndex, QPoint, Qt
from PySide6.QtGui import QDragEnterEvent

from core.errors import QueryError
from core.indexer import index_folders
from core.library import BrowseEntry, BrowseList, Library
from app.library_model import LibraryModel, library_page
from app.library_view import folder_nodes
from app.moodboard_model import MoodboardEntry, MoodboardModel
from app.roles import ImageIdRole, PathRole, ScoreRole
from app.thumbnails import ThumbnailProvider
from app.views import MoodboardStrip
from library_fixtures import style_image, tiny_embedder
from test_gui_window import art, drop, file_mime, index_and_wait, make_window, model_file  # noqa: F401 (fixtures)

pytestmark = pytest.mark.qt_log_ignore("This plugin does not support")  # offscreen platform limits


def browse_tree(root: Path) -> dict[str, Path]:
    """Images with known names, sizes and ages: sizes grow with the name, ages do not follow it."""
    files = {"b/Zebra.png": (2, 48), "b/apple.png": (0, 64), "b/deep/mango.png": (1, 80), "c/Kiwi.png": (3, 96),
             "c/100%.png": (4, 40)}
    made = {}
    for n, (rel, (style, edge)) in enumerate(files.items()):
        path = style_image(root / rel, style, 0, size=(edge, edge))
        os.utime(path, ns=(10**18, 10**18 + [3, 1, 4, 5, 2][n] * 10**9))
        made[rel] = path
    (root / "c" / "broken.png").write_bytes(b"not an image")
    return made


@pytest.fixture
def indexed(tmp_path) -> tuple[Library, Path]:
    art_root = tmp_path / "art"
    browse_tree(art_root)
    library = Library.open(tmp_path / "library")
    for _ in index_folders(library, [art_root], tiny_embedder(tmp_path / "models"), workers=0):
        pass
    yield library, art_root.resolve()
    library.close()


def names(entries: list[BrowseEntry]) -> list[str]:
    return [Path(e.path).name for e in entries]


def test_browse_sorts_and_filters_in_the_database(indexed):
    library, root = indexed
    everything = library.browse()
    assert names(everything) == ["100%.png", "apple.png", "Kiwi.png", "mango.png", "Zebra.png"]  # no broken file
    first = everything[1]
    assert (first.path, first.width, first.height) == (str(root / "b" / "apple.png"), 64, 64)
    assert first.size == (root / "b" / "apple.png").stat().st_size and first.image_id > 0
    assert names(library.browse(sort="modified")) == ["Kiwi.png", "mango.png", "Zebra.png", "100%.png", "apple.png"]
    sizes = [e.size for e in library.browse(sort="size")]
    assert sizes == sorted(sizes, reverse=True) and len(sizes) == 5
    assert names(library.browse(str(root / "b"))) == ["apple.png", "mango.png", "Zebra.png"]
    assert names(library.browse(str(root / "b" / "deep"))) == ["mango.png"]
    assert names(library.browse(str(root), name_filter="AP")) == ["apple.png"]
    assert names(library.browse(name_filter="%")) == ["100%.png"]  # a literal, not a wildcard
    assert names(library.browse(name_filter="b")) == ["Zebra.png"]  # the file name, not its folder "b/"
    assert len(library.browse(str(root.parent / "elsewhere"))) == 0
    assert library.browse(sort="size") == library.browse(sort="size") != library.browse(sort="modified")
    with pytest.raises(QueryError, match="cannot sort by 'colour'"):
        library.browse(sort="colour")


def test_folder_counts_and_the_folder_tree(indexed, tmp_path):
    library, root = indexed
    counts = library.folder_counts()
    assert counts == [(str(root), 0), (str(root / "b"), 2), (str(root / "b" / "deep"), 1), (str(root / "c"), 2)]
    (top,) = folder_nodes([str(root)], counts, offline=set())
    assert (top.images, top.offline, [c.name for c in top.children]) == (5, False, ["b", "c"])
    assert (top.children[0].images, top.children[0].children[0].name) == (3, "deep")
    # a root inside another root owns its folders; a missing root is offline and keeps its counts
    inner = str(root / "b")
    nodes = folder_nodes([str(root), inner], counts, offline={inner})
    assert [(n.path, n.images, n.offline) for n in nodes] == [(str(root), 2, False), (inner, 3, True)]
    assert [c.name for c in nodes[1].children] == ["deep"]


def browse_list(paths: list[Path], ids: list[int]) -> BrowseList:
    stats = [p.stat() for p in paths]
    return BrowseList(ids, [str(p) for p in paths], [st.st_size for st in stats], [st.st_mtime_ns for st in stats],
                      [48] * len(paths), [40] * len(paths))


def test_library_model_roles_and_drag_data(qtmodeltester, qtbot, tmp_path):
    a = style_image(tmp_path / "a.png", 0)
    b = style_image(tmp_path / "b.png", 1)
    provider = ThumbnailProvider(edge=48, folder=tmp_path / "thumbs")
    model = LibraryModel(provider)
    entries = browse_list([a, b], [7, 8])
    assert entries[1] == BrowseEntry(8, str(b), b.stat().st_size, b.stat().st_mtime_ns, 48, 40)
    model.set_page(library_page(entries))
    qtmodeltester.check(model)
    i = model.index(0)
    assert (model.data(i, PathRole), model.data(i, ImageIdRole), model.data(i, ScoreRole)) == (str(a), 7, None)
    assert model.data(i, Qt.ItemDataRole.DisplayRole) == "a.png"
    assert "48 × 40 px" in model.data(i, Qt.ItemDataRole.ToolTipRole)
    assert model.image_ids([str(b), str(tmp_path / "other.png")]) == {str(b): 8}
    # thumbnails load on demand; the drag then carries file URLs and the first image's pixels
    with qtbot.waitSignal(model.dataChanged, timeout=5000):
        assert model.data(i, Qt.ItemDataRole.DecorationRole) is None
    mime = model.mimeData([model.index(1), i])
    assert [u.toLocalFile() for u in mime.urls()] == [str(a), str(b)]
    assert mime.hasImage() and mime.imageData().width() == 48
    assert "application/x-qt-image" in model.mimeTypes()
    provider.wait_idle()


def test_moodboard_cards_move_by_drag(qtmodeltester, qtbot):
    model = MoodboardModel(ThumbnailProvider(edge=48))
    model.add([MoodboardEntry(f"/{n}.png") for n in "abcd"])
    qtmodeltester.check(model)
    root = QModelIndex()
    with qtbot.waitSignal(model.changed):
        assert model.moveRows(root, 0, 1, root, 3)  # "a" dropped before "d"
    assert [e.path for e in model.entries()] == ["/b.png", "/c.png", "/a.png", "/d.png"]
    assert model.moveRow(root, 3, root, 0)  # "d" dropped first
    assert [e.path for e in model.entries()] == ["/d.png", "/b.png", "/c.png", "/a.png"]
    for bad in ((0, 1, 1), (0, 1, 0), (2, 3, 0), (0, 1, 9)):  # onto itself, past the end, out of range
        assert not model.moveRows(root, bad[0], bad[1], root, bad[2])
    assert model.flags(root) & Qt.ItemFlag.ItemIsDropEnabled
    assert model.flags(model.index(0)) & Qt.ItemFlag.ItemIsDragEnabled
    assert model.supportedDropActions() == Qt.DropAction.MoveAction
    strip = MoodboardStrip()
    assert strip.dragDropMode() == strip.DragDropMode.InternalMove
    qtmodeltester.check(model)


@pytest.fixture
def browsing(qtbot, tmp_path, model_file, art):  # noqa: F811 (fixtures imported above)
    window = make_window(qtbot, tmp_path, str(model_file))
    index_and_wait(qtbot, window, [art])
    qtbot.waitUntil(lambda: window.library_model.rowCount() == 12, timeout=10000)
    return window


def shown_paths(window) -> list[str]:
    model = window.library_model
    return [model.index(row).data(PathRole) for row in range(model.rowCount())]


def test_the_library_shows_while_the_moodboard_is_empty(qtbot, browsing, art):
    w, pane = browsing, browsing.ui.library_pane
    assert w.ui.stack.currentWidget() is pane
    assert sorted(shown_paths(w)) == sorted(str(p) for p in art.resolve().rglob("*.png"))
    assert pane.count_label.text() == "12 images"
    tree = pane.folders
    assert [tree.topLevelItem(i).text(0) for i in range(2)] == ["All folders", "art"]
    assert tree.topLevelItem(0).text(1) == "12" and tree.topLevelItem(1).childCount() == 4
    # a folder, a sort, a name filter: each changes what is shown
    assert tree.choose(str(art.resolve() / "style02"))
    qtbot.waitUntil(lambda: w.library_model.rowCount() == 3, timeout=5000)
    assert {Path(p).parent.name for p in shown_paths(w)} == {"style02"}
    newest = art.resolve() / "style02" / "v0.png"
    os.utime(newest, ns=(4 * 10**18, 4 * 10**18))
    w.library.rescan()
    qtbot.waitUntil(lambda: not w.engine.indexing, timeout=30000)
    pane.set_sort("modified")
    qtbot.waitUntil(lambda: shown_paths(w)[:1] == [str(newest)], timeout=5000)
    assert w.settings.get("library_sort") == "modified"  # the next session starts with it
    tree.choose(None)
    pane.name_edit.setText("V1")
    qtbot.waitUntil(lambda: w.library_model.rowCount() == 4, timeout=5000)
    assert {Path(p).name for p in shown_paths(w)} == {"v1.png"}
    pane.name_edit.setText("nothing like it")
    qtbot.waitUntil(lambda: w.library_model.rowCount() == 0, timeout=5000)
    assert pane.count_label.text() == "No file names match the filter"
    pane.name_edit.clear()
    qtbot.waitUntil(lambda: w.library_model.rowCount() == 12, timeout=5000)
    # a moodboard shows results instead; an empty one brings the library back
    with qtbot.waitSignal(w.engine.results, timeout=20000):
        drop(w, file_mime(art / "style00" / "v0.png"))
    qtbot.waitUntil(lambda: w.ui.stack.currentWidget() is w.ui.view, timeout=5000)
    w.boards.clear()
    qtbot.waitUntil(lambda: w.ui.stack.currentWidget() is pane, timeout=5000)


def test_library_images_go_on_the_moodboard_and_out_of_the_app(qtbot, browsing):
    w = browsing
    index = w.library_model.index(2)
    path = index.data(PathRole)
    actions = dict((t, s) for t, s in w.library_actions.for_index(index) if t)
    assert list(actions)[:2] == ["More Like This", "Add to Moodboard"]
    actions["Add to Moodboard"]()
    assert [(e.path, e.image_id) for e in w.moodboard.entries()] == [(path, index.data(ImageIdRole))]
    with qtbot.waitSignal(w.engine.results, timeout=20000):
        w.library_actions.more_like_this(w.library_model.index(5))
    assert [e.path for e in w.moodboard.entries()] == [w.library_model.index(5).data(PathRole)]
    qtbot.waitUntil(lambda: w.ui.stack.currentWidget() is w.ui.view, timeout=5000)
    # dragged out: file URLs, and the thumbnail's pixels once it has loaded
    w.library_model.data(index, Qt.ItemDataRole.DecorationRole)
    qtbot.waitUntil(lambda: w.library_model.data(index, Qt.ItemDataRole.DecorationRole) is not None, timeout=5000)
    mime = w.library_model.mimeData([index])
    assert [u.toLocalFile() for u in mime.urls()] == [path] and mime.hasImage()


def test_reordered_cards_are_kept_and_saved(qtbot, browsing, art, tmp_path, model_file):  # noqa: F811
    w = browsing
    paths = [str(art / f"style0{n}" / "v0.png") for n in range(3)]
    w.moodboard.add([MoodboardEntry(p) for p in paths])
    root = QModelIndex()
    assert w.moodboard.moveRows(root, 2, 1, root, 0)
    order = [paths[2], paths[0], paths[1]]
    # the strip takes only its own cards: it leaves a file dragged over it to the window's drop handling
    enter = QDragEnterEvent(QPoint(5, 5), Qt.DropAction.CopyAction, file_mime(paths[0]), Qt.MouseButton.LeftButton,
                            Qt.KeyboardModifier.NoModifier)
    w.ui.query.strip.dragEnterEvent(enter)
    assert not enter.isAccepted()
    assert [d["path"] for d in w.settings.moodboard()] == order  # the session's board follows at once
    w.boards.save("Ordered")
    qtbot.waitUntil(lambda: w.boards.name == "Ordered", timeout=5000)
    w.boards.clear()
    w.boards.load("Ordered")
    qtbot.waitUntil(lambda: w.moodboard.rowCount() == 3, timeout=5000)
    assert [e.path for e in w.moodboard.entries()] == order


def test_the_library_follows_indexing_and_marks_offline_folders(qtbot, browsing, tmp_path):
    w = browsing
    more = tmp_path / "more"
    for n in range(2):
        style_image(more / f"new{n}.png", 5, n)
    index_and_wait(qtbot, w, [more])
    qtbot.waitUntil(lambda: w.library_model.rowCount() == 14, timeout=10000)
    tree = w.ui.library_pane.folders
    qtbot.waitUntil(lambda: tree.topLevelItemCount() == 3, timeout=5000)
    shutil.move(str(more), str(tmp_path / "unplugged"))
    w.browser.refresh()
    qtbot.waitUntil(lambda: tree.topLevelItem(2).text(0) == "more (offline)", timeout=5000)
    assert tree.topLevelItem(2).text(1) == "2" and w.library_model.rowCount() == 14  # its images stay


def test_the_pages_beside_browse_and_a_drop_brings_browse_back(qtbot, tmp_path, model_file):  # noqa: F811
    window = make_window(qtbot, tmp_path, str(model_file), ready=False)
    pages = window.ui.pages
    assert [pages.tabText(i) for i in range(pages.count())] == ["Browse", "Styles", "Duplicates"]
    assert pages.currentWidget() is window.ui.browse_page and pages.tabBar().isVisible()
    assert all(not pages.tabIcon(i).isNull() for i in range(pages.count()))
    pages.setCurrentWidget(window.styles)
    assert window.styles.isVisible() and not window.ui.browse_page.isVisible()
    drop(window, file_mime(style_image(tmp_path / "dropped.png", 1)))  # an image dropped on another page
    assert pages.currentWidget() is window.ui.browse_page and window.moodboard.rowCount() == 1


def test_reads_are_throttled_while_indexing_and_put_off_while_hidden(qtbot, monkeypatch):
    from types import SimpleNamespace

    from app.engine import Engine
    from app.library_view import LibraryPane
    from app.mainwindow import library_browser

    engine = Engine()
    asked = []
    monkeypatch.setattr(engine, "library_job", lambda job, *args, returned: asked.append(job.__name__))
    pane = LibraryPane()
    qtbot.addWidget(pane)
    browser = library_browser.LibraryBrowser(engine, pane, LibraryModel(ThumbnailProvider(edge=48)))
    engine.library_changed.emit()
    assert asked == [] and browser.stale  # hidden: nothing read yet
    pane.show()
    qtbot.waitUntil(lambda: asked == ["read_folders", "read_page"], timeout=2000)
    engine.index_progress.emit(SimpleNamespace(phase="scan"))
    assert not browser.throttle.isActive()
    browser.throttle.setInterval(50)
    for _ in range(5):  # a burst of progress reports: one read
        engine.index_progress.emit(SimpleNamespace(phase="embed"))
    qtbot.wait(400)
    assert asked[2:] == ["read_folders", "read_page"], asked
