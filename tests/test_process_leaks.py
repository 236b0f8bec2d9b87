"""Child processes die with their parent: ``kill -9`` of an indexer leaves no decoder or resource tracker behind.

Each test starts a process tree, notes every descendant from /proc while it works,
kills the top with SIGKILL, and asserts that all the descendants exit within a few seconds.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from core.library import DB_NAME
from library_fixtures import style_image, tiny_model_file

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads the process table in /proc")

REPO = Path(__file__).resolve().parent.parent
EXIT_GRACE_S = 5.0
Proc = tuple[int, int]  # (pid, start time in clock ticks): a pid the kernel reused is another process
Tree = dict[Proc, tuple[int, str]]  # each process's parent pid and command line


def _table() -> Tree:
    """Every live (not zombie) process: parent pid and command line."""
    table = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:  # exited while we looked
            continue
        if fields[0] != "Z":
            table[(int(entry.name), int(fields[19]))] = (int(fields[1]), cmdline)
    return table


def _descendants(pid: int) -> Tree:
    """Live descendants of ``pid``."""
    table = _table()
    found: Tree = {}
    parents = {pid}
    while True:
        new = {p: row for p, row in table.items() if row[0] in parents and p not in found}
        if not new:
            return found
        found.update(new)
        parents = {p[0] for p in new}


def _survivors(procs: Tree, wait_s: float) -> Tree:
    """The processes of ``procs`` still alive after up to ``wait_s`` seconds."""
    deadline = time.monotonic() + wait_s
    while True:
        table = _table()
        alive = {p: row for p, row in procs.items() if p in table}
        if not alive or time.monotonic() > deadline:
            return alive
        time.sleep(0.05)


def _kill(procs: Tree) -> None:
    """Clean up after a failed test: SIGKILL each of ``procs`` that is still the process it was."""
    for proc in _survivors(procs, 0):
        os.kill(proc[0], signal.SIGKILL)


def _wait_until(done, proc: subprocess.Popen, log: Path, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not done():
        assert proc.poll() is None, log.read_text()[-3000:]
        assert time.monotonic() < deadline, "the process never got mid-run:\n" + log.read_text()[-3000:]
        time.sleep(0.05)


def _vectors(lib: Path) -> int:
    try:
        con = sqlite3.connect(lib / DB_NAME, timeout=5)
        try:
            return con.execute("SELECT count(*) FROM vectors").fetchone()[0]
        finally:
            con.close()
    except sqlite3.OperationalError:  # not created yet
        return 0


def _art(folder: Path, count: int) -> Path:
    """``count`` small PNGs (copies of one: decoding and embedding cost the same)."""
    first = style_image(folder / "000.png", 1, size=(40, 32))
    for i in range(1, count):
        (folder / f"{i:03d}.png").write_bytes(first.read_bytes())
    return folder


def _env() -> dict:
    return {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}


def _kill_9_and_check(proc: subprocess.Popen, tree: Tree) -> None:
    """Kill ``proc`` with SIGKILL; every process of ``tree`` (its descendants) must follow it."""
    try:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
        left = _survivors(tree, EXIT_GRACE_S)
        assert not left, f"still running {EXIT_GRACE_S} s after their parent was killed: {sorted(left.values())}"
    finally:
        _kill(tree)


@pytest.mark.slow
def test_kill_9_of_aladin_index_leaves_no_process_behind(tmp_path):
    art, lib, log = _art(tmp_path / "art", 240), tmp_path / "lib", tmp_path / "index.log"
    command = [sys.executable, "-m", "app.launcher", "index", str(art), "--library", str(lib), "--model",
               str(tiny_model_file(tmp_path)), "--device", "cpu", "--workers", "1", "--batch-size", "2"]
    with open(log, "wb") as out:
        proc = subprocess.Popen(command, cwd=REPO, env=_env(), stdout=out, stderr=subprocess.STDOUT)
    tree: Tree = {}
    try:
        _wait_until(lambda: _vectors(lib) >= 4, proc, log)
        tree = _descendants(proc.pid)
    finally:
        if not tree:
            proc.kill()
            proc.wait()
    assert any("spawn_main" in cmd for _, cmd in tree.values()), tree  # a decoder worker ...
    assert any("resource_tracker" in cmd for _, cmd in tree.values()), tree  # ... and the tracker it brought
    _kill_9_and_check(proc, tree)
    assert _vectors(lib) < 240, "the run ended before it was killed"


GUI_SCRIPT = """
import sys, time
from app.index_process import index_in_process

library, art, model, marker = sys.argv[1:]
for progress in index_in_process(library, [art], model, "cpu", lambda: False, {"workers": 1, "batch_size": 2}):
    if progress.phase == "embed" and progress.done >= 4:
        open(marker, "w").close()
        time.sleep(300)  # the app is busy when it crashes
"""


@pytest.mark.slow
def test_the_apps_indexing_process_and_its_decoders_die_with_the_app(tmp_path):
    # The indexing child goes on while the app sleeps at the marker, and its decoders come and go with its
    # decode passes: one reading of the tree at the marker once found none in CI. So the tree is read until
    # they show, with 2,000 images to keep the child busy that long.
    art, marker, log = _art(tmp_path / "art", 2000), tmp_path / "mid-run", tmp_path / "app.log"
    args = [str(tmp_path / "lib"), str(art), str(tiny_model_file(tmp_path)), str(marker)]
    with open(log, "wb") as out:
        proc = subprocess.Popen([sys.executable, "-c", GUI_SCRIPT, *args], cwd=REPO, env=_env(), stdout=out,
                                stderr=subprocess.STDOUT)
    tree: Tree = {}

    def decoders_running() -> bool:
        nonlocal tree
        tree = _descendants(proc.pid)
        return any("spawn_main" in cmd and ppid != proc.pid for ppid, cmd in tree.values())

    seen = False
    try:
        _wait_until(marker.exists, proc, log)
        # Read the tree until the indexer's decoders show: they start and stop with its decode passes.
        _wait_until(decoders_running, proc, log, timeout=30)
        seen = True
    finally:
        if not seen:
            proc.kill()
            proc.wait()
            _kill(tree)
    indexer = [p for p, (ppid, cmd) in tree.items() if "spawn_main" in cmd and ppid == proc.pid]
    _kill_9_and_check(proc, tree)
    assert len(indexer) == 1, tree


ORPHAN_SCRIPT = """
import multiprocessing, sys, time
from core import lifetime

def orphan():
    lifetime._kill_me_with_parent = lambda: False  # as on macOS and Windows: only the watch thread
    lifetime.die_with_parent()
    time.sleep(300)

if __name__ == "__main__":
    child = multiprocessing.get_context("spawn").Process(target=orphan)
    child.start()
    print(child.pid, flush=True)
    time.sleep(300)
"""


def test_where_the_kernel_cannot_the_watch_thread_ends_an_orphan(tmp_path):
    script = tmp_path / "orphans.py"
    script.write_text(ORPHAN_SCRIPT)
    proc = subprocess.Popen([sys.executable, str(script)], cwd=REPO, env=_env(), stdout=subprocess.PIPE)
    try:
        child = int(proc.stdout.readline())
        tree = _descendants(proc.pid)
    except BaseException:
        proc.kill()
        proc.wait()
        raise
    finally:
        proc.stdout.close()
    assert child in {p[0] for p in tree}, tree
    _kill_9_and_check(proc, tree)


def test_quitting_waits_for_an_indexing_process_that_has_answered():
    import multiprocessing

    from app.index_process import wait_for_children

    ctx = multiprocessing.get_context("spawn")
    tearing_down = ctx.Process(target=time.sleep, args=(0.5,))
    tearing_down.start()
    assert wait_for_children(20) and not tearing_down.is_alive() and not multiprocessing.active_children()
    stuck = ctx.Process(target=time.sleep, args=(30,))
    stuck.start()
    try:
        assert wait_for_children(0.3) is False  # it gives up after its timeout
    finally:
        stuck.terminate()
        stuck.join()
