"""The folder watcher: changes under a root become one debounced report of that root, by file
notifications or by polling; ignored and temporary files do not count; a root that leaves is
reported offline (never for a rescan) and rescanned when it is back; stop() ends every thread."""

from __future__ import annotations

import errno
import os
import shutil
import threading
import time
from pathlib import Path

import pytest
from watchdog.observers.api import BaseObserver

from core.watch import EVENTS, OFFLINE, POLLING, FolderWatcher, WatchReport, WatchTiming, linux_polling_reason

FAST = WatchTiming(debounce_s=0.2, max_wait_s=5.0, check_s=0.05, poll_s=0.05)
MODES = {EVENTS: True, POLLING: False}


class Reports:
    """What the watcher reported, from its thread."""

    def __init__(self) -> None:
        self.items: list[WatchReport] = []
        self.lock = threading.Lock()

    def __call__(self, report: WatchReport) -> None:
        with self.lock:
            self.items.append(report)

    def wait(self, n: int = 1, timeout: float = 5.0) -> list[WatchReport]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and len(self.items) < n:
            time.sleep(0.02)
        assert len(self.items) >= n, f"expected {n} report(s), got {self.items}"
        return list(self.items)


def write(path: Path, data: bytes = b"\x89PNG\r\n\x1a\n image") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


@pytest.fixture
def roots(tmp_path) -> tuple[Path, Path]:
    a, b = tmp_path.resolve() / "a", tmp_path.resolve() / "b"  # the library's roots are resolved paths
    for root in (a, b):
        write(root / "old.png")
        write(root / "sub" / "deep.png")
    return a, b


def attached(watcher: FolderWatcher, n: int, how: str) -> None:
    """Wait until the watcher's thread has attached ``n`` roots, each watched ``how``."""
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and [s.how for s in watcher.states().values()] != [how] * n:
        time.sleep(0.02)
    assert [s.how for s in watcher.states().values()] == [how] * n


def watching(roots, report, mode: str = EVENTS, timing: WatchTiming = FAST, **options) -> FolderWatcher:
    watcher = FolderWatcher(report, timing=timing, use_events=MODES[mode], **options)
    watcher.set_roots([str(r) for r in roots])
    watcher.start()
    attached(watcher, len(roots), mode)
    return watcher


def create(root: Path) -> None:
    for i in range(3):
        write(root / "sub" / f"new{i}.png")


def modify(root: Path) -> None:
    write(root / "sub" / "deep.png", b"\x89PNG\r\n\x1a\n changed, and longer")


def move(root: Path) -> None:
    (root / "sub" / "deep.png").rename(root / "moved.png")


def delete(root: Path) -> None:
    (root / "old.png").unlink()


@pytest.mark.parametrize("mode", [EVENTS, POLLING])
def test_each_change_gives_one_debounced_report_of_its_root(roots, mode):
    a, b = roots
    reports = Reports()
    watcher = watching(roots, reports, mode)
    try:
        for n, change in enumerate((create, modify, move, delete), 1):
            change(a)
            assert reports.wait(n)[n - 1] == WatchReport(frozenset({str(a)}), frozenset()), change.__name__
            time.sleep(FAST.debounce_s * 2)  # the burst's later events make no second report
            assert len(reports.items) == n, (change.__name__, reports.items)
    finally:
        watcher.stop()


def test_changes_that_never_stop_are_reported_after_the_longest_wait(roots):
    a, _ = roots
    reports = Reports()
    watcher = watching(roots, reports, timing=WatchTiming(debounce_s=0.5, max_wait_s=0.6, check_s=0.05))
    try:
        t0 = time.monotonic()
        for i in range(40):  # a change every 50 ms: never 0.5 s of quiet
            write(a / f"copy{i}.png")
            time.sleep(0.05)
            if reports.items:
                break
        assert reports.items and time.monotonic() - t0 < 1.5
        assert reports.items[0].rescan == {str(a)}
    finally:
        watcher.stop()


@pytest.mark.parametrize("mode", [EVENTS, POLLING])
def test_the_library_folder_hidden_and_temporary_files_do_not_count(tmp_path, roots, mode):
    a, b = roots
    library = a / "library"  # a library kept inside an art folder
    write(library / "library.db", b"x")
    reports = Reports()
    watcher = watching(roots, reports, mode, ignore=[library])
    try:
        write(library / "library.db", b"written by the indexer")
        write(library / "library.db-wal", b"wal")
        for name in ("download.png.part", "img.png.crdownload", "img.png~", "~$sheet.png", ".hidden.png",
                     "tmp123.tmp"):
            write(a / name)
        write(a / ".thumbnails" / "t.png")
        time.sleep(FAST.debounce_s * 3 + FAST.poll_s * 2)
        assert reports.items == []
        write(b / "real.png")
        assert reports.wait() == [WatchReport(frozenset({str(b)}), frozenset())]
    finally:
        watcher.stop()


@pytest.mark.parametrize("mode", [EVENTS, POLLING])
def test_a_root_that_leaves_is_offline_and_rescanned_when_back(tmp_path, roots, mode):
    a, b = roots
    reports = Reports()
    watcher = watching(roots, reports, mode)
    try:
        away = tmp_path / "unplugged"
        a.rename(away)
        assert reports.wait() == [WatchReport(frozenset(), frozenset({str(a)}))]
        assert watcher.states()[str(a)].how == OFFLINE
        write(away / "added while away.png")
        away.rename(a)
        assert reports.wait(2)[1] == WatchReport(frozenset({str(a)}), frozenset())
        assert watcher.states()[str(a)].how == mode
        write(a / "after.png")  # watched again
        assert reports.wait(3)[2].rescan == {str(a)}
    finally:
        watcher.stop()


def test_an_unmounted_share_left_as_an_empty_folder_is_offline(roots, monkeypatch):
    a, b = roots
    mounted = {str(a): True}
    real_ismount = os.path.ismount
    monkeypatch.setattr(os.path, "ismount", lambda p: mounted.get(os.fspath(p), real_ismount(p)))
    reports = Reports()
    watcher = watching(roots, reports, POLLING)
    try:
        mounted[str(a)] = False  # the share is unmounted: its mount point is still a folder, now empty
        shutil.rmtree(a / "sub")
        (a / "old.png").unlink()
        assert reports.wait() == [WatchReport(frozenset(), frozenset({str(a)}))]
        time.sleep(FAST.debounce_s * 2)
        assert len(reports.items) == 1  # never reported for a rescan that would empty it
        mounted[str(a)] = True
        write(a / "old.png")
        assert reports.wait(2)[1].rescan == {str(a)}
    finally:
        watcher.stop()


def test_a_root_the_system_refuses_to_watch_is_polled(roots, monkeypatch):
    def refuse(self, handler, path, **kwargs):
        raise OSError(errno.ENOSPC, "inotify watch limit reached")

    monkeypatch.setattr(BaseObserver, "schedule", refuse)
    a, _ = roots
    reports = Reports()
    watcher = FolderWatcher(reports, timing=FAST)
    watcher.set_roots([str(r) for r in roots])
    watcher.start()
    try:
        attached(watcher, 2, POLLING)
        assert "watch limit" in watcher.states()[str(a)].reason
        delete(a)
        assert reports.wait() == [WatchReport(frozenset({str(a)}), frozenset())]
    finally:
        watcher.stop()


MOUNTINFO = r"""22 1 8:2 / / rw,relatime shared:1 - ext4 /dev/sda2 rw
40 22 0:35 / /mnt/nas rw,relatime shared:20 - nfs4 server:/export rw,vers=4.2
41 22 8:17 / /run/media/ana/CARD\040ONE rw,nosuid shared:21 - vfat /dev/sdb1 rw
42 22 8:33 / /srv/data rw,relatime - exfat /dev/sdc1 rw
43 22 0:50 / /home/ana/remote rw,nosuid master:5 - fuse.sshfs ana@host:/ rw
"""


@pytest.mark.parametrize("path, reason", [
    ("/home/ana/art", None),
    ("/mnt/nas/art", "a network drive (nfs4)"),
    ("/mnt/nas", "a network drive (nfs4)"),
    ("/mnt/nasty", None),
    ("/run/media/ana/CARD ONE/DCIM", "a removable drive (vfat)"),
    ("/srv/data/art", None),  # exFAT, but a fixed disk outside the removable mounts
    ("/home/ana/remote/art", "a network drive (fuse.sshfs)"),
])
def test_network_and_removable_drives_are_polled(path, reason):
    assert linux_polling_reason(path, MOUNTINFO) == reason


def test_stop_leaves_no_thread_and_a_stopped_watcher_starts_again(roots):
    a, _ = roots
    before = set(threading.enumerate())
    reports = Reports()
    watcher = watching(roots, reports)
    assert len(set(threading.enumerate()) - before) >= 2  # the watcher's and watchdog's
    watcher.stop()
    assert set(threading.enumerate()) - before == set()
    assert not watcher.running
    watcher.start()
    try:
        attached(watcher, 2, EVENTS)
        create(a)
        assert reports.wait()[0].rescan == {str(a)}
    finally:
        watcher.stop()
    assert set(threading.enumerate()) - before == set()
