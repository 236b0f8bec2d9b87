"""The app as the desktop sees it: its id, its freedesktop entry and icons, ``aladin desktop-install``.

A pip install puts an ``aladin`` script in a virtual environment's ``bin``, which no
application menu knows about. ``aladin desktop-install`` writes the entry from
``resources/desktop`` into the user's data folder with ``Exec`` set to that script's
absolute path (so it starts from the menu without the environment on ``PATH``), and
copies the hicolor icons beside it; menus, docks and file managers ("Open with") then
find the app. The same command registers a PyInstaller bundle, whose executable is
the bundle's own. No Qt here: the launcher registers this command on every start.
"""

from __future__ import annotations

import argparse
import logging
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

from core.cli.output import print_lines
from core.errors import AladinError
from core.files import write_text_atomic

log = logging.getLogger(__name__)

# The entry's file name without ".desktop": Qt's desktopFileName, the window class the entry's
# StartupWMClass names (Qt's applicationName), and the icon's name in the theme.
APP_ID = "aladin"
RESOURCES = Path(__file__).resolve().parent.parent / "resources"
ENTRY = RESOURCES / "desktop" / f"{APP_ID}.desktop"
ICON_THEME = RESOURCES / "icons" / "hicolor"
# Caches the desktop keeps of entries and icons; a missing tool is fine (the desktop rescans later).
REFRESH_TIMEOUT_S = 60
# Characters that make an Exec argument need quotes (Desktop Entry Specification, "The Exec key").
EXEC_RESERVED = frozenset(" \t\n\"'\\><~|&;$*?#()`")


class DesktopInstallError(AladinError):
    """The entry or icons cannot be written or removed, or the ``aladin`` program cannot be found."""


def icon_files() -> list[Path]:
    """The app's icons, relative to the hicolor theme folder (``48x48/apps/aladin.png``...)."""
    return sorted(p.relative_to(ICON_THEME) for p in ICON_THEME.glob(f"*/apps/{APP_ID}.*"))


def data_home(prefix: Path | None = None) -> Path:
    """``PREFIX/share`` when given, else ``$XDG_DATA_HOME``, else ``~/.local/share`` (the XDG default)."""
    if prefix is not None:
        return prefix.expanduser().absolute() / "share"
    env = os.environ.get("XDG_DATA_HOME", "")
    return Path(env) if os.path.isabs(env) else Path.home() / ".local" / "share"


def program() -> Path:
    """The absolute path of the ``aladin`` executable running now, for the entry's ``Exec``.

    Raises:
        DesktopInstallError: started some other way (``python -m ...``) with no ``aladin``
            beside the interpreter or on ``PATH``.
    """
    if getattr(sys, "frozen", False):  # a PyInstaller bundle: the interpreter is the bundle's aladin
        return Path(sys.executable)
    script = Path(sys.argv[0])
    if script.name == APP_ID and script.is_file():
        return script.absolute()
    beside = Path(sys.executable).with_name(APP_ID)  # .venv/bin/python -> .venv/bin/aladin
    if beside.is_file():
        return beside.absolute()
    found = shutil.which(APP_ID)
    if found:
        return Path(found).absolute()
    raise DesktopInstallError("cannot find the aladin program to start from the menu; "
                              "run this command as `aladin desktop-install`")


def _escape_string(value: str) -> str:
    """A desktop-entry string value: backslash and control characters escaped."""
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace("\t", "\\t").replace("\r", "\\r")


def exec_argument(arg: str) -> str:
    """One argument of an ``Exec`` value, quoted when it must be (a venv under "My Apps")."""
    arg = arg.replace("%", "%%")
    if any(c in EXEC_RESERVED for c in arg):
        arg = '"' + re.sub(r'(["`$\\])', r"\\\1", arg) + '"'
    return _escape_string(arg)


def entry_text(executable: Path) -> str:
    """The entry from ``resources/desktop`` with ``Exec`` and ``TryExec`` naming ``executable``.

    ``TryExec`` hides the entry once the executable is gone (a deleted venv) instead of
    leaving a menu item that does nothing.
    """
    lines = []
    for line in ENTRY.read_text(encoding="utf-8").splitlines():
        key, _, value = line.partition("=")
        if key == "Exec":
            arguments = value.partition(" ")[2]  # the field codes after the program (%F)
            line = f"Exec={exec_argument(str(executable))} {arguments}".rstrip()
        elif key == "TryExec":
            line = f"TryExec={_escape_string(str(executable))}"
        lines.append(line)
    return "\n".join(lines) + "\n"


def _targets(data: Path) -> tuple[Path, list[tuple[Path, Path]]]:
    """Where the entry goes, and each icon with where it goes."""
    icons = data / "icons" / "hicolor"
    return data / "applications" / ENTRY.name, [(ICON_THEME / rel, icons / rel) for rel in icon_files()]


def refresh(data: Path) -> None:
    """Tell the desktop's caches about changed entries and icons, with whichever tools are installed."""
    for command in (["update-desktop-database", "-q", str(data / "applications")],
                    ["gtk-update-icon-cache", "-q", "-t", "-f", str(data / "icons" / "hicolor")]):
        if shutil.which(command[0]) is None:
            continue
        try:
            run = subprocess.run(command, capture_output=True, text=True, timeout=REFRESH_TIMEOUT_S)
        except (OSError, subprocess.TimeoutExpired) as exc:
            log.info("%s did not run: %s", command[0], exc)
            continue
        if run.returncode != 0:
            log.info("%s exited with %d: %s", command[0], run.returncode, run.stderr.strip())


def install(data: Path, executable: Path) -> list[Path]:
    """Write the entry and copy the icons under the data folder ``data``; returns the files written.

    Raises:
        DesktopInstallError: a file cannot be written (a system prefix without permission).
    """
    entry, icons = _targets(data)
    try:
        entry.parent.mkdir(parents=True, exist_ok=True)
        write_text_atomic(entry, entry_text(executable))
        for source, target in icons:
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source, target)
    except OSError as exc:
        raise DesktopInstallError(f"cannot write {exc.filename or data}: {exc.strerror}") from exc
    refresh(data)
    return [entry] + [target for _source, target in icons]


def uninstall(data: Path) -> list[Path]:
    """Remove what :func:`install` wrote under ``data``; returns the files removed.

    Raises:
        DesktopInstallError: a file cannot be removed.
    """
    entry, icons = _targets(data)
    removed = []
    for path in [entry] + [target for _source, target in icons]:
        try:
            path.unlink()
        except FileNotFoundError:
            continue
        except OSError as exc:
            raise DesktopInstallError(f"cannot remove {path}: {exc.strerror}") from exc
        removed.append(path)
    refresh(data)
    return removed


def run(args: argparse.Namespace) -> int:
    data = data_home(args.prefix)
    if args.uninstall:
        removed = uninstall(data)
        print_lines([f"removed {path}" for path in removed] or [f"nothing to remove under {data}"])
        return 0
    executable = program()
    entry, *icons = install(data, executable)
    print_lines([f"wrote {entry} (starts {executable})",
                 f"wrote {len(icons)} icons under {data / 'icons' / 'hicolor'}",
                 "ALADIN Style Browser is in the application menu and in \"Open with\" for images."])
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("desktop-install",
                       help="add the app to the desktop's application menu and \"Open with\" (freedesktop)")
    p.add_argument("--uninstall", action="store_true", help="remove what desktop-install added")
    p.add_argument("--prefix", type=Path, default=None, metavar="DIR",
                   help="install under DIR/share (default: $XDG_DATA_HOME, else ~/.local/share)")
    p.set_defaults(func=run)
