"""Watching the library's folders, so that new, changed, moved and deleted images are picked up by themselves.

A :class:`FolderWatcher` only says which roots may have changed; it never reads or writes the
library. Rescanning a root is the reconciliation (the indexer's mark and sweep finds what changed,
and a rescan that finds nothing costs a directory walk), so a report must be right about *which*
roots to rescan, never about which files.

Each root is watched in one of three ways:

- events: the system's file notifications, through watchdog (inotify, FSEvents, ReadDirectoryChangesW);
- polling: a stat walk of the tree every ``poll_s`` seconds (and never more often than ``POLL_DUTY``
  times the last walk's duration), whose signature of names, sizes and mtimes is compared with the
  last one. Used where notifications are unreliable: network and user-space file systems, removable
  drives, and any folder the system refuses to watch (Linux's inotify watch limit);
- offline: the folder is not there (an unplugged drive, an unmounted share, or a mount point left
  empty by its unmount). Nothing is reported that would rescan it, so its images stay in the library;
  it is checked every ``check_s`` seconds and reported for a rescan when it is back.

Reports are debounced: a root is reported once nothing has changed under it for ``debounce_s``, or at
the latest ``max_wait_s`` after its first change, so copying a thousand files in costs one rescan.
Hidden and temporary files and the ignored folders (the library's own) never count as changes.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import sys
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from watchdog.events import (
    DirCreatedEvent,
    DirDeletedEvent,
    DirMovedEvent,
    FileClosedEvent,
    FileCreatedEvent,
    FileDeletedEvent,
    FileModifiedEvent,
    FileMovedEvent,
    FileSystemEvent,
    FileSystemEventHandler,
)

from core.scan import walk

log = logging.getLogger(__name__)

EVENTS, POLLING, OFFLINE = "events", "polling", "offline"

# Notifications that can mean an image was added, changed, moved or removed. Opens and reads are left
# out: the indexer and the thumbnailer read every image, and each rescan would otherwise start the next.
_EVENT_TYPES = [FileCreatedEvent, DirCreatedEvent, FileModifiedEvent, FileClosedEvent, FileDeletedEvent,
                DirDeletedEvent, FileMovedEvent, DirMovedEvent]
# Names that browsers, editors and copy tools write before the real file appears under its own name.
TEMP_SUFFIXES = frozenset({".tmp", ".temp", ".part", ".partial", ".crdownload", ".download", ".opdownload",
                           ".filepart", ".swp", ".swx", ".kate-swp", ".!qb"})
# Linux file systems whose changes inotify does not see (made on another machine) or that vanish
# with a cable; "fuse.*" (sshfs, rclone, gvfs) counts as network.
NETWORK_FS = frozenset({"nfs", "nfs4", "cifs", "smb3", "smbfs", "ncpfs", "afs", "9p", "ceph", "glusterfs",
                        "lustre", "davfs", "fuse", "sshfs"})
REMOVABLE_FS = frozenset({"vfat", "msdos", "exfat", "ntfs", "ntfs3", "fuseblk", "hfsplus", "udf", "iso9660"})
REMOVABLE_MOUNTS = ("/media/", "/run/media/")
# A polled root waits at least this many times as long as its last walk took: a slow share costs
# under 5 % of the time it is polled.
POLL_DUTY = 20
STOP_WAIT_S = 10.0


@dataclass(frozen=True)
class WatchTiming:
    """How long to wait: for quiet before reporting, at most after a first change, between
    existence checks, and between the polls of a root that is polled."""

    debounce_s: float = 2.0
    max_wait_s: float = 30.0
    check_s: float = 5.0
    poll_s: float = 60.0


@dataclass(frozen=True)
class WatchReport:
    """What changed since the last report.

    Attributes:
        rescan: roots that may have changed, or came back, and were there when reported.
        offline: roots that went away; their images should stay as they are.
    """

    rescan: frozenset[str]
    offline: frozenset[str]


@dataclass(frozen=True)
class RootWatch:
    """How a root is watched now (``EVENTS``, ``POLLING`` or ``OFFLINE``), and why it is polled."""

    how: str
    reason: str = ""


@dataclass
class _Root:
    path: str
    how: str = OFFLINE
    reason: str = ""
    seen: bool = False  # checked once: the first look is the baseline, not a change
    mount: bool = False  # a mount point when last seen: an empty folder in its place means unmounted
    watch: object | None = None
    signature: bytes = b""
    next_poll: float = 0.0


class _Handler(FileSystemEventHandler):
    def __init__(self, watcher: FolderWatcher, root: str) -> None:
        self.watcher = watcher
        self.root = root

    def on_any_event(self, event: FileSystemEvent) -> None:
        self.watcher._event(self.root, event)


class FolderWatcher:
    """Reports, debounced, which library roots to rescan and which went offline.

    ``report`` is called from the watcher's own thread, never while a lock is held; a GUI hands it
    to its own thread. :meth:`stop` ends every thread the watcher started; a stopped watcher can be
    started again and treats the roots as new (no change is reported for what happened meanwhile).

    Args:
        report: called with a :class:`WatchReport` whenever there is something to report.
        ignore: folders whose changes never count (the library's own, caches).
        timing: the waits (see :class:`WatchTiming`).
        use_events: False polls every root (tests, and systems where notifications misbehave).
    """

    def __init__(self, report: Callable[[WatchReport], None], *, ignore: Iterable[str | Path] = (),
                 timing: WatchTiming = WatchTiming(), use_events: bool = True) -> None:
        self._report = report
        self._ignore = tuple(os.path.normcase(os.path.realpath(p)) for p in ignore)
        self.timing = timing
        self.use_events = use_events
        self._cond = threading.Condition()
        self._wanted: list[str] = []
        self._wanted_changed = False
        self._roots: dict[str, _Root] = {}
        self._first: dict[str, float] = {}
        self._last: dict[str, float] = {}
        self._gone: set[str] = set()
        self._stopping = False
        self._thread: threading.Thread | None = None
        self._observer = None

    # -- control (any thread) -------------------------------------------------------------------
    def set_roots(self, roots: Iterable[str | Path]) -> None:
        """Watch these roots from now on (the watcher's thread attaches them; a deep tree takes a while)."""
        wanted = [str(r) for r in roots]
        with self._cond:
            if wanted != self._wanted:
                self._wanted = wanted
                self._wanted_changed = True
                self._cond.notify_all()

    def start(self) -> None:
        with self._cond:
            if self._thread is not None:
                return
            self._stopping = False
            self._wanted_changed = True
            self._thread = threading.Thread(target=self._run, name="aladin-watch", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        """Stop watching and wait for the watcher's threads to end."""
        with self._cond:
            thread, self._thread = self._thread, None
            self._stopping = True
            self._cond.notify_all()
        if thread is not None:
            thread.join(STOP_WAIT_S)
            if thread.is_alive():  # a walk stuck on a dead network share; the thread is a daemon
                log.warning("the folder watcher did not stop within %.0f s", STOP_WAIT_S)

    @property
    def running(self) -> bool:
        return self._thread is not None

    def states(self) -> dict[str, RootWatch]:
        """How each root is watched now; roots not looked at yet are left out."""
        with self._cond:
            return {path: RootWatch(r.how, r.reason) for path, r in self._roots.items() if r.seen}

    # -- the watcher's thread ------------------------------------------------------------------
    def _run(self) -> None:
        next_check = 0.0
        try:
            while True:
                with self._cond:
                    if self._stopping:
                        return
                    wanted = self._wanted if self._wanted_changed else None
                    self._wanted_changed = False
                if wanted is not None and self._follow(wanted):
                    next_check = 0.0
                now = time.monotonic()
                if now >= next_check:
                    self._check(now)
                    next_check = time.monotonic() + self.timing.check_s
                self._flush(time.monotonic())
                with self._cond:
                    if not self._stopping and not self._wanted_changed:
                        self._cond.wait(max(0.0, self._next_deadline(next_check) - time.monotonic()))
        except Exception:  # a bug here must not end watching silently
            log.exception("the folder watcher stopped")
        finally:
            self._detach_all()

    def _follow(self, wanted: list[str]) -> bool:
        """Drop roots no longer wanted, add new ones; True when there are new ones to look at."""
        drop = [r for path, r in self._roots.items() if path not in wanted]
        for root in drop:
            self._detach(root)
        with self._cond:
            for root in drop:
                del self._roots[root.path]
                self._first.pop(root.path, None)
                self._gone.discard(root.path)
            new = [path for path in wanted if path not in self._roots]
            for path in new:
                self._roots[path] = _Root(path)
        return bool(new)

    def _check(self, now: float) -> None:
        """Notice roots that went away or came back, and poll the polled roots that are due."""
        for root in list(self._roots.values()):
            if self._stopping:
                return
            online = os.path.isdir(root.path) and (not root.mount or os.path.ismount(root.path))
            if root.how == OFFLINE and online:
                self._attach(root)
                if root.seen:
                    log.info("library folder %s is back; rescanning it", root.path)
                    self._touch(root.path)
            elif root.how != OFFLINE and not online:
                log.warning("library folder %s went offline; its images are kept until it is back", root.path)
                self._detach(root)
                with self._cond:
                    root.how, root.reason = OFFLINE, ""
                    self._first.pop(root.path, None)
                    self._gone.add(root.path)
            elif root.how == POLLING and now >= root.next_poll:
                if self._poll(root):
                    self._touch(root.path)
            root.seen = True

    def _attach(self, root: _Root) -> None:
        root.mount = os.path.ismount(root.path)
        reason = polling_reason(root.path) if self.use_events else "file notifications are off"
        if reason is None:
            try:
                watch = self._observer_running().schedule(_Handler(self, root.path), root.path, recursive=True,
                                                          event_filter=_EVENT_TYPES)
            except OSError as exc:  # Linux: "inotify watch limit reached", or the folder left meanwhile
                reason = f"the system would not watch it ({exc.strerror or exc})"
                log.warning("cannot watch %s for changes (%s); polling it instead", root.path, exc)
            else:
                with self._cond:
                    root.how, root.reason, root.watch = EVENTS, "", watch
                return
        self._poll(root)
        with self._cond:
            root.how, root.reason = POLLING, reason

    def _poll(self, root: _Root) -> bool:
        """Walk the root; True when its signature changed since the last walk."""
        t0 = time.monotonic()
        signature = tree_signature(root.path, self._ignore, stop=lambda: self._stopping)
        took = time.monotonic() - t0
        root.next_poll = time.monotonic() + max(self.timing.poll_s, POLL_DUTY * took)
        changed = bool(root.signature) and signature != root.signature and not self._stopping
        root.signature = signature
        return changed

    def _observer_running(self):
        if self._observer is None:
            from watchdog.observers import Observer  # the platform's notification API

            observer = Observer()
            observer.start()
            self._observer = observer
        return self._observer

    def _detach(self, root: _Root) -> None:
        if root.watch is not None and self._observer is not None:
            try:
                self._observer.unschedule(root.watch)
            except (KeyError, OSError) as exc:  # the watch ended with its folder
                log.debug("unwatching %s: %s", root.path, exc)
        root.watch = None
        root.signature = b""

    def _detach_all(self) -> None:
        for root in self._roots.values():
            root.watch = None
        with self._cond:
            self._roots.clear()
            self._first.clear()
            self._last.clear()
            self._gone.clear()
            self._wanted_changed = True
        observer, self._observer = self._observer, None
        if observer is not None:
            observer.stop()
            observer.join()

    def _event(self, root: str, event: FileSystemEvent) -> None:
        """A notification (watchdog's thread): it counts when one of its paths is a file that matters."""
        paths = [os.fsdecode(p) for p in (event.src_path, getattr(event, "dest_path", "")) if p]
        if any(self._counts(root, path) for path in paths):
            self._touch(root)

    def _counts(self, root: str, path: str) -> bool:
        norm = os.path.normcase(path)
        if any(norm == folder or norm.startswith(folder + os.sep) for folder in self._ignore):
            return False
        rel = os.path.relpath(path, root)
        return rel == "." or not any(skipped_name(part) for part in Path(rel).parts)

    def _touch(self, root: str) -> None:
        now = time.monotonic()
        with self._cond:
            self._first.setdefault(root, now)
            self._last[root] = now
            self._cond.notify_all()

    def _next_deadline(self, next_check: float) -> float:
        t = self.timing
        due = [min(self._last[r] + t.debounce_s, first + t.max_wait_s) for r, first in self._first.items()]
        return min([next_check, *due])

    def _flush(self, now: float) -> None:
        """Report the roots that have been quiet long enough (or waited too long), and those gone."""
        t = self.timing
        with self._cond:
            due = [r for r, first in self._first.items()
                   if now - self._last[r] >= t.debounce_s or now - first >= t.max_wait_s]
            for r in due:
                del self._first[r]
            gone, self._gone = frozenset(self._gone), set()
            here = {r for r in due if r in self._roots and self._roots[r].how != OFFLINE}
        rescan = frozenset(r for r in here if os.path.isdir(r))  # a root that left since is the next check's
        if rescan or gone:
            try:
                self._report(WatchReport(rescan, gone))
            except Exception:
                log.exception("reporting changed folders failed")


def skipped_name(name: str) -> bool:
    """Hidden and temporary files: the indexer skips the first, the second become other files."""
    return (name.startswith(".") or name.startswith("~$") or name.endswith("~")
            or os.path.splitext(name)[1].lower() in TEMP_SUFFIXES)


def tree_signature(root: str, ignore: tuple[str, ...] = (), stop: Callable[[], bool] = lambda: False) -> bytes:
    """A digest of every name, size and mtime under ``root``: it changes when a file is added,
    changed, moved or removed. Folders are followed through links once, as the indexer's scan does."""
    digest = hashlib.blake2b(digest_size=16)
    for folder in walk(root, stop):
        if folder.error is not None:
            digest.update(b"\0!" + os.fsencode(folder.path) + str(folder.error.errno).encode())
            continue
        for entry in folder.entries:
            if skipped_name(entry.name) or os.path.normcase(entry.path) in ignore:
                continue
            try:
                if entry.is_dir(follow_symlinks=True):
                    folder.descend(entry)
                    digest.update(b"\0d" + os.fsencode(entry.path))
                    continue
                st = entry.stat(follow_symlinks=True)
            except OSError:
                digest.update(b"\0?" + os.fsencode(entry.path))
                continue
            digest.update(b"\0f%s\0%d\0%d" % (os.fsencode(entry.path), st.st_size, st.st_mtime_ns))
    return digest.digest()


def polling_reason(path: str) -> str | None:
    """Why file notifications cannot be trusted under ``path`` (a network or removable drive), or None."""
    if sys.platform.startswith("linux"):
        try:
            mountinfo = Path("/proc/self/mountinfo").read_text(errors="replace")
        except OSError:
            return None
        return linux_polling_reason(os.path.realpath(path), mountinfo)
    if sys.platform == "win32":
        return _windows_polling_reason(os.path.abspath(path))
    return None  # macOS: FSEvents reports local and external drives; network shares are not detected


def linux_polling_reason(path: str, mountinfo: str) -> str | None:
    """The reason for ``path`` from the text of ``/proc/self/mountinfo`` (its deepest mount decides)."""
    best, fstype = "", ""
    for line in mountinfo.splitlines():
        fields = line.split()
        if "-" not in fields[6:]:
            continue
        mountpoint = re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), fields[4])
        inside = path == mountpoint or path.startswith(mountpoint.rstrip("/") + "/")
        if inside and len(mountpoint) >= len(best):
            best, fstype = mountpoint, fields[fields.index("-", 6) + 1]
    if fstype in NETWORK_FS or fstype.startswith("fuse."):
        return f"a network drive ({fstype})"
    if fstype in REMOVABLE_FS and (best + "/").startswith(REMOVABLE_MOUNTS):
        return f"a removable drive ({fstype})"
    return None


def _windows_polling_reason(path: str) -> str | None:
    import ctypes

    drive = os.path.splitdrive(path)[0]
    if drive.startswith("\\\\"):
        return "a network drive"
    kind = ctypes.windll.kernel32.GetDriveTypeW(drive + "\\")
    return {2: "a removable drive", 4: "a network drive"}.get(kind)  # DRIVE_REMOVABLE, DRIVE_REMOTE

