"""Render the app's main states offscreen into PNGs (``python bench/screenshots.py --out docs``).

Runs the real window on a generated collection (bench/collection.py) with the
bundled default model, in a throwaway library, config and cache, so it never
touches the user's own. Dialogs are shown and grabbed the same way.
``--only library,results`` renders just those shots (the states they need still run).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


SHOTS = ("no-model", "first-run", "indexing", "library", "styles", "duplicates", "results", "failures", "settings",
         "preview", "results-dark")


def isolate(base: Path) -> None:
    """Point every user folder (config, data, cache, logs) into ``base``."""
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    for var in ("XDG_CONFIG_HOME", "XDG_DATA_HOME", "XDG_CACHE_HOME", "XDG_STATE_HOME"):
        os.environ[var] = str(base / var.lower())
    os.environ["ALADIN_CACHE_DIR"] = str(base / "cache")
    os.environ["ALADIN_LOG_DIR"] = str(base / "log")


def dark_palette():
    from PySide6.QtGui import QColor, QPalette

    p = QPalette()
    roles = QPalette.ColorRole
    for role, colour in ((roles.Window, "#26282c"), (roles.WindowText, "#e6e6e6"), (roles.Base, "#1d1f22"),
                         (roles.AlternateBase, "#2a2c30"), (roles.Text, "#e6e6e6"), (roles.Button, "#303236"),
                         (roles.ButtonText, "#e6e6e6"), (roles.Highlight, "#3d8fd6"), (roles.HighlightedText, "#ffffff"),
                         (roles.ToolTipBase, "#303236"), (roles.ToolTipText, "#e6e6e6"),
                         (roles.PlaceholderText, "#8a8d93"), (roles.Mid, "#44474c"), (roles.Dark, "#151618"),
                         (roles.Light, "#3a3c40"), (roles.Midlight, "#34363a"), (roles.Shadow, "#000000")):
        p.setColor(role, QColor(colour))
    for role in (roles.Text, roles.WindowText, roles.ButtonText):
        p.setColor(QPalette.ColorGroup.Disabled, role, QColor("#6d7076"))
    return p


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=Path("docs"))
    parser.add_argument("--size", default="1280x820", help="window size WxH")
    parser.add_argument("--model", default="", help="model for the results shots (default: the bundled model)")
    parser.add_argument("--only", default="", help=f"comma-separated shots to render, of {', '.join(SHOTS)} "
                                                    "(default: all)")
    args = parser.parse_args(argv)
    only = set(filter(None, args.only.split(","))) or set(SHOTS)
    unknown = only - set(SHOTS)
    if unknown:
        parser.error(f"unknown shots: {', '.join(sorted(unknown))}")
    work = Path(tempfile.mkdtemp(prefix="aladin-shots-"))
    isolate(work)

    from PySide6.QtCore import QMimeData, QUrl
    from PySide6.QtWidgets import QApplication

    from app.engine import Engine
    from app.mainwindow import MainWindow
    from app.options import Settings
    from bench.collection import make_collection

    app = QApplication.instance() or QApplication(sys.argv[:1])
    app.setStyle("Fusion")
    light = app.palette()
    w_px, h_px = (int(v) for v in args.size.split("x"))
    args.out.mkdir(parents=True, exist_ok=True)
    art = work / "Art references"
    paths = make_collection(art, broken=2)

    def spin(cond: Callable[[], bool], timeout: float = 120.0) -> bool:
        end = time.monotonic() + timeout
        while time.monotonic() < end and not cond():
            app.processEvents()
            time.sleep(0.01)
        app.processEvents()
        return cond()

    def settle(window) -> None:
        spin(lambda: window.thumbs.pending() == 0 and window.board_thumbs.pending() == 0, 30)
        for _ in range(5):
            app.processEvents()
            time.sleep(0.02)

    def shot(widget, name: str) -> None:
        if name not in only:
            return
        path = args.out / f"screenshot-{name}.png"
        widget.grab().save(str(path), "PNG", 0)  # quality 0: smallest PNG (zlib level 9)
        print(path)

    def window_for(model: str, library: str) -> MainWindow:
        settings = Settings(work / "config" / f"{library}.ini")
        settings.set("model", model)
        settings.set("device", "cpu")
        window = MainWindow(settings=settings, engine=Engine(), library_dir=str(work / library))
        window.resize(w_px, h_px)
        window.show()
        return window

    # 1. no trained model installed (an install without the bundled file)
    from core import modelfile

    if "no-model" in only:
        bundled, modelfile.DEFAULT_MODEL = modelfile.DEFAULT_MODEL, work / "absent.safetensors"
        w = window_for("", "lib-empty")
        spin(lambda: w.ui.banner.isVisible())
        settle(w)
        shot(w, "no-model")
        w.close()
        modelfile.DEFAULT_MODEL = bundled

    # 2. first run with a model: the empty state
    w = window_for(args.model, "lib")
    spin(lambda: w.engine.ready)
    w.ui.banner.hide()
    settle(w)
    shot(w, "first-run")

    # 3. indexing in progress
    seen = []
    w.engine.index_progress.connect(lambda p: seen.append(p) if p.phase == "embed" and p.done else None)
    w.library.add_folders([str(art)])
    spin(lambda: len(seen) >= 2)
    app.processEvents()
    shot(w, "indexing")
    spin(lambda: not w.engine.indexing, 600)
    spin(lambda: w.ui.library_label.text().startswith(str(len(paths))), 10)

    # 4. the library while the moodboard is empty, beside a folder that has gone offline
    if "library" in only:
        old = work / "Old drive"
        make_collection(old, styles=2, per_style=2)
        w.library.add_folders([str(old)])
        spin(lambda: not w.engine.indexing, 600)
        old.rename(work / "Old drive (unplugged)")
        w.browser.refresh()
        pane = w.ui.library_pane
        spin(lambda: pane.folders.topLevelItemCount() == 3 and "offline" in pane.folders.topLevelItem(2).text(0))
        pane.set_sort("name")
        spin(lambda: w.library_model.rowCount() == len(paths) + 4)
        w.ui.banner.hide()
        pane.view.setCurrentIndex(w.library_model.index(2))
        settle(w)
        shot(w, "library")
        w.library.remove_folder(str(old))  # the results below come from the art folder alone
        spin(lambda: w.library_model.rowCount() == len(paths))

    # 5. the Styles page with its first style opened
    if "styles" in only:
        w.ui.pages.setCurrentWidget(w.styles)
        spin(lambda: w.styles.styles is not None and not w.styles.computing)
        w.styles.open_style(0)
        spin(lambda: w.styles.members.rowCount() > 0)
        settle(w)
        shot(w, "styles")

    # 6. the Duplicates page, after copies (exact, smaller, re-encoded) were saved in a downloads folder
    if "duplicates" in only:
        from PIL import Image

        downloads = work / "Downloads"
        downloads.mkdir()
        for n, source in enumerate(paths[3:24:7]):
            with Image.open(source) as im:
                im.save(downloads / f"copy {n}.png")
                im.resize((im.width // 2, im.height // 2)).convert("RGB").save(downloads / f"small {n}.jpg",
                                                                               quality=70)
        w.library.add_folders([str(downloads)])
        spin(lambda: not w.engine.indexing, 600)
        w.ui.pages.setCurrentWidget(w.duplicates)
        w.duplicates.refresh()
        spin(lambda: not w.duplicates.searching and w.duplicates.model.rowCount() > 0)
        w.duplicates.tree.expandAll()
        spin(lambda: w.duplicates.model.thumbnails.pending() == 0, 30)
        settle(w)
        shot(w, "duplicates")
        w.library.remove_folder(str(downloads))
        spin(lambda: not w.engine.indexing, 60)
    w.ui.pages.setCurrentIndex(0)

    if not only & {"results", "failures", "settings", "preview", "results-dark"}:
        w.close()
        return 0

    # 7. results for a moodboard: two positives and a negative
    board = [paths[8 * 1 + 2], paths[8 * 8 + 1]]
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(p)) for p in board])
    w.accept_mime(mime)
    spin(lambda: w.moodboard.rowCount() == 2)
    from app.moodboard_model import MoodboardEntry
    from app.roles import NegativeRole, WeightRole

    w.moodboard.add([MoodboardEntry(str(paths[8 * 4 + 3]))])
    w.moodboard.setData(w.moodboard.index(2), True, NegativeRole)
    w.moodboard.setData(w.moodboard.index(0), 2.0, WeightRole)
    w.boards.name = "Warm collage"
    spin(lambda: w.results.rowCount() > 0 and not w.engine.searching)
    w.ui.banner.hide()
    w.ui.view.setCurrentIndex(w.results.index(1))
    settle(w)
    shot(w, "results")

    # 8. the failures list and settings
    w.library.show_failures()
    spin(lambda: w.library.failures_dialog.model.rowCount() > 0, 10)
    shot(w.library.failures_dialog, "failures")
    w.library.failures_dialog.close()
    from app.dialogs import SettingsDialog

    dialog = SettingsDialog(w.models.settings_values(), parent=w)
    dialog.show()
    app.processEvents()
    shot(dialog, "settings")
    dialog.close()

    # 9. the large preview
    w.result_actions.show_preview(w.results.index(1))
    preview = w.result_actions.preview
    spin(lambda: preview.label.pixmap() is not None and not preview.label.pixmap().isNull(), 10)
    shot(preview, "preview")
    preview.close()

    # 10. the same results on a dark palette
    app.setPalette(dark_palette())
    settle(w)
    shot(w, "results-dark")
    app.setPalette(light)
    w.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
