"""The Duplicates page with a real engine on a small indexed library: find, open, reveal, move to the trash."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from PIL import Image
from PySide6.QtCore import QItemSelectionModel

import app.duplicates_page as page_module
from app.duplicates_model import DuplicatesModel
from app.duplicates_page import DuplicatesPage
from app.engine import Engine
from app.thumbnails import ThumbnailProvider
from bench.duplicates import picture
from core.duplicates import DuplicateFile, DuplicateGroup
from core.embedder import Embedder
from core.indexer import index_folders
from core.library import Library
from core.modelfile import load_model_file
from library_fixtures import tiny_model_file

pytestmark = pytest.mark.qt_log_ignore("This plugin does not support")  # offscreen platform limits


class FakeDesktop:
    def __init__(self) -> None:
        self.opened: list[str] = []
        self.revealed: list[str] = []

    def open_path(self, path: str) -> None:
        self.opened.append(path)

    def reveal(self, path: str) -> None:
        self.revealed.append(path)


@pytest.fixture
def world(tmp_path):
    """Three pictures of one style; the first has a resized copy and an identical copy."""
    art = tmp_path / "art"
    art.mkdir()
    for v in range(3):
        picture(0, v, 96).save(art / f"v{v}.png")
    Image.open(art / "v0.png").resize((80, 80)).save(art / "smaller.png")
    shutil.copy(art / "v0.png", art / "same.png")
    model = tiny_model_file(tmp_path / "models", input_size=32)
    library = tmp_path / "library"
    with Library.open(library) as lib:
        list(index_folders(lib, [art], Embedder(load_model_file(model), device="cpu"), workers=0))
    return art, model, library


@pytest.fixture
def page(qtbot, world):
    """The page on a real engine; the trash is the one in the test's own XDG data folder, which Qt uses
    only when that folder exists (conftest points XDG_DATA_HOME at a temp path)."""
    Path(os.environ["XDG_DATA_HOME"]).mkdir(parents=True, exist_ok=True)
    _, model, library = world
    engine = Engine()
    engine.index_in_process = False
    with qtbot.waitSignals([engine.library_ready, engine.model_ready], timeout=20000):
        engine.open_library(str(library))
        engine.load_model(str(model), "cpu")
    thumbs = ThumbnailProvider(48, folder=library.parent / "thumbs")
    page = DuplicatesPage(engine, thumbs, FakeDesktop())
    qtbot.addWidget(page)
    yield page
    thumbs.wait_idle()
    engine.shutdown()


def find(qtbot, page: DuplicatesPage) -> None:
    page.find_button.click()
    qtbot.waitUntil(lambda: not page.searching, timeout=20000)


def select(page: DuplicatesPage, names: set[str]) -> None:
    model, chosen = page.model, page.tree.selectionModel()
    for g in range(model.rowCount()):
        parent = model.index(g, 0)
        for r in range(model.rowCount(parent)):
            index = model.index(r, 0, parent)
            if Path(model.file_at(index).path).name in names:
                chosen.select(index, QItemSelectionModel.SelectionFlag.Select | QItemSelectionModel.SelectionFlag.Rows)


def listed(page: DuplicatesPage) -> list[set[str]]:
    return [{Path(f.path).name for f in g.files} for g in page.model.groups()]


def test_model_passes_the_model_tester(qtmodeltester, qtbot, tmp_path):
    thumbs = ThumbnailProvider(32, folder=tmp_path / "thumbs")
    model = DuplicatesModel(thumbs)
    files = [DuplicateFile(i, str(tmp_path / f"{i}.png"), 100 * i, 10, 8) for i in range(1, 6)]
    model.set_groups([DuplicateGroup(tuple(files[:2]), True), DuplicateGroup(tuple(files[2:]), False),
                      DuplicateGroup(tuple(files[:1]), False)])
    assert model.rowCount() == 2  # a group of one file is no group
    qtmodeltester.check(model)
    child = model.index(1, 3, model.index(1, 0))
    assert child.data() == "10 × 8" and model.index(0, 0).data() == "2 identical files"
    model.remove_paths({files[0].path})
    assert model.rowCount() == 1
    qtmodeltester.check(model)
    thumbs.wait_idle()


def test_find_lists_the_copies_of_one_picture(qtbot, qtmodeltester, page):
    find(qtbot, page)
    assert listed(page) == [{"v0.png", "smaller.png", "same.png"}]
    assert "1 group" in page.status.text() and page.find_button.text() == "Refresh"
    parent = page.model.index(0, 0)
    assert page.model.index(0, 3, parent).data() == "96 × 96"  # the largest picture leads
    qtmodeltester.check(page.model)
    page.engine.library_changed.emit()  # an indexing run elsewhere
    assert "Refresh" in page.status.text()


def test_open_and_reveal_act_on_the_selected_files(qtbot, page, world):
    art, _, _ = world
    find(qtbot, page)
    select(page, {"smaller.png"})
    page.open_button.click()
    page.reveal_button.click()
    assert page.desktop.opened == page.desktop.revealed == [str(art / "smaller.png")]


def test_move_to_trash_asks_then_trashes_and_the_library_follows(qtbot, page, world, monkeypatch):
    art, _, library = world
    asked = []
    monkeypatch.setattr(page_module, "confirm_trash", lambda parent, paths: asked.append(paths) or True)
    find(qtbot, page)
    select(page, {"smaller.png", "same.png"})
    with qtbot.waitSignal(page.engine.library_changed, timeout=10000):
        page.trash_button.click()
    qtbot.waitUntil(lambda: not page.trashing)
    assert sorted(asked[0]) == sorted([str(art / "same.png"), str(art / "smaller.png")])
    assert not (art / "same.png").exists() and not (art / "smaller.png").exists() and (art / "v0.png").exists()
    trash = Path(os.environ["XDG_DATA_HOME"]) / "Trash" / "files"
    assert {"same.png", "smaller.png"} <= {p.name for p in trash.iterdir()}
    assert listed(page) == []  # the original alone is no longer a group
    assert page.status.text() == "Moved 2 files to the trash."
    with Library.open(library) as lib:
        assert lib.find_image(art / "same.png") is None and lib.find_image(art / "smaller.png") is None
        assert lib.find_image(art / "v0.png") is not None
        assert lib.images_sharing_content() == []


def test_nothing_is_moved_when_the_user_says_no(qtbot, page, world, monkeypatch):
    art, _, library = world
    monkeypatch.setattr(page_module, "confirm_trash", lambda parent, paths: False)
    monkeypatch.setattr(page_module, "trash_files", lambda *a: pytest.fail("trashed without consent"))
    find(qtbot, page)
    select(page, {"smaller.png"})
    page.trash_button.click()
    assert not page.trashing and (art / "smaller.png").exists()
    assert listed(page) == [{"v0.png", "smaller.png", "same.png"}]
    with Library.open(library) as lib:
        assert lib.find_image(art / "smaller.png") is not None


def test_without_a_trash_nothing_is_moved_and_the_user_is_told(qtbot, page, world, monkeypatch, tmp_path):
    art, _, _ = world
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "no-such-data-folder"))  # Qt then has no trash to use
    told = []
    monkeypatch.setattr(page_module, "confirm_trash", lambda parent, paths: True)
    monkeypatch.setattr(page_module, "trash_unavailable", lambda parent, message: told.append(message))
    find(qtbot, page)
    select(page, {"smaller.png", "same.png"})
    page.trash_button.click()
    qtbot.waitUntil(lambda: not page.trashing, timeout=10000)
    assert told and "nothing was moved" in told[0]
    assert (art / "smaller.png").exists() and (art / "same.png").exists()
    assert listed(page) == [{"v0.png", "smaller.png", "same.png"}]
