"""Entry point: ``aladin gui``, ``aladin`` with no command, and ``python -m app``."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from core.logs import setup_logging

log = logging.getLogger(__name__)


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="aladin gui", description="The ALADIN Style Browser desktop app.")
    parser.add_argument("--library", default=None, metavar="FOLDER",
                        help="library folder (default: $ALADIN_LIBRARY or the per-user data folder)")
    parser.add_argument("-v", "--verbose", action="store_true", help="print debug messages on stderr")
    return parser.parse_args(list(argv))


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    if not logging.getLogger().handlers:
        setup_logging(args.verbose)
    from PySide6.QtWidgets import QApplication

    from app.icons import app_icon
    from app.mainwindow import MainWindow

    app = QApplication.instance() or QApplication(sys.argv[:1])
    app.setApplicationName("ALADIN Style Browser")
    app.setOrganizationName("aladin")
    app.setDesktopFileName("aladin")
    app.setWindowIcon(app_icon())
    window = MainWindow(library_dir=args.library)
    window.show()
    return app.exec()


if __name__ == "__main__":
    sys.exit(main())
