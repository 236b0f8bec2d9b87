"""The soak's harness and cases: the real ``aladin`` command run as child processes, killed, starved
and fed damaged files, with every outcome checked by reading the library back through ``core``.

Each case gets an :class:`Outcome` and fills its counts:

- lost: an image on disk the library lost (no stored vector, a moved file that lost its id, or an
  old vector changed by a failed write),
- doubled: image rows beyond one per file on disk (a second row for a file, or a row for a file that
  moved or vanished),
- mismatched: a stored vector that differs from what ``aladin embed`` makes of the same file, a search
  result that differs from exact search over the vectors in SQLite, or something left half-written,
- leaked: a process the soak started (or one its children started) still alive 5 s after its
  parent was killed or exited.

Anything else that goes wrong (a traceback, a wrong exit status, more than one line for a known
error) is a problem: the case fails, and the problem is listed under the table.

Every process carries ``ALADIN_SOAK_RUN=<token>`` in its environment, which its children inherit;
that is how leaked processes are found and, at the end, killed.
"""

from __future__ import annotations

import json
import os
import pickle
import re
import resource
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from safetensors import safe_open
from safetensors.torch import load_file, save_file

REPO = Path(__file__).resolve().parent.parent
for _path in (REPO, REPO / "tests"):
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))

import core.index_cache  # noqa: E402
from bench.styled import styled_array  # noqa: E402
from core.embedder import Embedder  # noqa: E402
from core.index_cache import GRAPHS, STAMP  # noqa: E402
from core.library import DB_NAME, Library  # noqa: E402
from core.modelfile import META_KEY, load_model, load_model_file, save_model  # noqa: E402
from core.scan import IMAGE_EXTENSIONS  # noqa: E402
from library_fixtures import tiny_model_file  # noqa: E402

# The CLI keeps an hnswlib graph from 5000 vectors; the soak lowers that, in its children and here, so a
# library of a few hundred images has the cache file whose damage and kill cases it checks.
GRAPH_FROM = 64
CLI = ("import sys\nimport core.index_cache\ncore.index_cache.EXACT_LIMIT = int(sys.argv.pop(1))\n"
       "from app.launcher import main\nsys.exit(main())")
MARK = "ALADIN_SOAK_RUN"
EXIT_GRACE_S = 5.0  # how long a child may outlive its killed or finished parent
POLL_S = 0.05
COSINE_MIN = 0.9999  # a stored vector against `aladin embed` of the same file
SCORE_TOL = 1e-4  # a search score against exact search
K = 10
PER_STYLE = 20
BATCH = 8  # a small batch, so a kill lands between many commits
NOBODY = 65534

Proc = tuple[int, int]  # (pid, start time in clock ticks): a reused pid is another process


class CaseTimeout(Exception):
    """The case ran past its time; whatever it started is killed."""


@dataclass
class Outcome:
    rounds: int = 0
    lost: int = 0
    doubled: int = 0
    mismatched: int = 0
    leaked: int = 0
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    skipped: str | None = None

    @property
    def passed(self) -> bool:
        return not (self.problems or self.lost or self.doubled or self.mismatched or self.leaked)


@dataclass
class Run:
    """A finished command."""

    argv: list[str]
    code: int
    out: str
    err: str
    seconds: float

    def show(self) -> str:
        """The command and what it said, for a problem report."""
        said = (self.err.strip() or self.out.strip())[-600:]
        return f"`aladin {' '.join(self.argv)}` -> exit {self.code}: {said!r}"


@dataclass
class Child:
    """A started command: its process, the mark its descendants inherit, and where its output goes."""

    argv: list[str]
    proc: subprocess.Popen
    token: str
    out: Path | None  # None: standard output went where the case sent it
    err: Path
    started: float

    def result(self) -> Run:
        out = self.out.read_text(errors="replace") if self.out else ""
        return Run(self.argv, self.proc.returncode, out, self.err.read_text(errors="replace"),
                   time.monotonic() - self.started)


# -- the process table ---------------------------------------------------------------------------------------
def marked(prefix: str) -> dict[Proc, str]:
    """Live (not zombie) processes whose environment holds a soak mark starting with ``prefix``."""
    needle = f"{MARK}={prefix}".encode()
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if not any(v.startswith(needle) for v in (entry / "environ").read_bytes().split(b"\0")):
                continue
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:  # exited while we looked, or not ours to read
            continue
        if fields[0] != "Z":
            found[(int(entry.name), int(fields[19]))] = cmdline
    return found


def kill_marked(prefix: str) -> None:
    """SIGKILL every live process carrying a mark that starts with ``prefix``."""
    for pid, start in marked(prefix):
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            if int(fields[19]) == start:  # still the process we saw, not a reused pid
                os.kill(pid, signal.SIGKILL)
        except (OSError, ValueError):
            pass


def survivors(prefix: str, wait_s: float) -> dict[Proc, str]:
    """The marked processes still alive after up to ``wait_s`` seconds."""
    deadline = time.monotonic() + wait_s
    while True:
        alive = marked(prefix)
        if not alive or time.monotonic() > deadline:
            return alive
        time.sleep(POLL_S)


# -- images --------------------------------------------------------------------------------------------------
def make_art(folder: Path, count: int, first_style: int = 0) -> list[Path]:
    """``count`` images, :data:`PER_STYLE` per style and one sub-folder per style, so a search has a right
    answer; sizes vary, and every fifth is a JPEG."""
    paths = []
    for i in range(count):
        style, variant = first_style + i // PER_STYLE, i % PER_STYLE
        path = folder / f"style{style:03d}" / f"{variant:03d}.{'jpg' if i % 5 == 4 else 'png'}"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(styled_array(style, variant, 48 + (i * 7) % 48)).save(path)
        paths.append(path)
    return paths


def image_files(roots: list[Path | str]) -> set[str]:
    """Every image file under ``roots``, as the resolved paths the library stores."""
    return {str(p.resolve()) for root in roots for p in Path(root).rglob("*")
            if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS}


# -- the harness ---------------------------------------------------------------------------------------------
class Soak:
    """Starts and stops the ``aladin`` children of a soak and holds what its cases share: the generated
    art, a base library indexed once, the model that finishes stored vectors, and the time left."""

    def __init__(self, out: Path, images: int, rounds: int, seed: int = 0) -> None:
        self.out = out
        self.images = images
        self.rounds = rounds
        self.rng = np.random.default_rng(seed)
        self.session = f"{uuid.uuid4().hex[:12]}-"
        self.count = 0
        self.children: list[Child] = []
        self.deadline = float("inf")
        self.leaked: list[str] = []  # command lines of processes that outlived their parent, this case
        self.art = out / "art"
        self.base = out / "base"
        self.logs = out / "logs"
        self.home = out / "home"
        self.paths: list[Path] = []
        self.query = self.art / "style000" / "000.png"  # the first image make_art writes
        self._embedder: Embedder | None = None
        core.index_cache.EXACT_LIMIT = GRAPH_FROM  # this process reads cache health as the children do

    # -- setup and time ----------------------------------------------------------------------------------
    def setup(self) -> None:
        """The art, and the base library most cases copy (indexed once, with the bundled model)."""
        self.logs.mkdir(parents=True)
        self.home.mkdir()
        self.home.chmod(0o777)  # the read-only case runs commands as another user
        self.out.chmod(0o755)
        self.paths = make_art(self.art, self.images)
        run = self.run(["index", self.art, "--library", self.base, "--batch-size", BATCH])
        if run.code != 0:
            raise RuntimeError(f"could not index the base library: {run.show()}")

    def begin(self, seconds: float) -> None:
        self.deadline = time.monotonic() + seconds
        self.leaked = []

    def left(self) -> float:
        """Seconds left for the case.

        Raises:
            CaseTimeout: none are.
        """
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise CaseTimeout("ran out of time")
        return left

    def embedder(self) -> Embedder:
        """The bundled model, which every library here is indexed with: it finishes stored vectors."""
        if self._embedder is None:
            self._embedder = Embedder(load_model(None), device="cpu")
        return self._embedder

    def copy_base(self, name: str) -> Path:
        folder = self.out / name
        shutil.copytree(self.base, folder)
        return folder

    # -- children ------------------------------------------------------------------------------------------
    def env(self, **extra: str) -> dict[str, str]:
        """The children's environment: every per-user folder inside the soak's folder."""
        return {**os.environ, "PYTHONPATH": str(REPO), "HOME": str(self.home),
                "ALADIN_LOG_DIR": str(self.home / "log"), "ALADIN_CACHE_DIR": str(self.home / "cache"),
                "ALADIN_LIBRARY": str(self.home / "library"), "XDG_DATA_HOME": str(self.home / "data"),
                "XDG_CACHE_HOME": str(self.home / "cache"), "XDG_CONFIG_HOME": str(self.home / "config"),
                "XDG_STATE_HOME": str(self.home / "state"), **extra}

    def start(self, argv: list, *, stdout: Path | None = None, user: int | None = None,
              fsize: int | None = None, env: dict[str, str] | None = None) -> Child:
        """Start ``aladin argv`` in its own process group, marked so it and its children can be found.

        Args:
            stdout: where its standard output goes (default: a log file).
            user: run as this uid and gid (the soak runs as root, which ignores permission bits).
            fsize: the largest file it may write (``RLIMIT_FSIZE``): a disk that fills up.
            env: extra environment variables.
        """
        self.count += 1
        token = f"{self.session}{self.count:05d}"
        argv = [str(a) for a in argv]
        out = None if stdout else self.logs / f"{self.count:05d}.out"
        err = self.logs / f"{self.count:05d}.err"
        prefix = ["setpriv", f"--reuid={user}", f"--regid={user}", "--clear-groups"] if user is not None else []
        limit = (lambda: resource.setrlimit(resource.RLIMIT_FSIZE, (fsize, fsize))) if fsize else None
        with open(stdout or out, "wb") as fout, open(err, "wb") as ferr:
            proc = subprocess.Popen([*prefix, sys.executable, "-c", CLI, str(GRAPH_FROM), *argv], cwd=REPO,
                                    env={**self.env(**(env or {})), MARK: token}, stdout=fout, stderr=ferr,
                                    stdin=subprocess.DEVNULL, start_new_session=True, preexec_fn=limit)
        child = Child(argv, proc, token, out, err, time.monotonic())
        self.children.append(child)
        return child

    def finish(self, child: Child) -> Run:
        """Wait for ``child`` within the case's time, then count what it left running."""
        try:
            child.proc.wait(timeout=self.left())
        except subprocess.TimeoutExpired:
            self.kill(child)
            raise CaseTimeout(f"ran out of time in `aladin {' '.join(child.argv)}`") from None
        self._count_leftovers(child)
        return child.result()

    def run(self, argv: list, **kw) -> Run:
        return self.finish(self.start(argv, **kw))

    def kill(self, child: Child) -> int:
        """``kill -9`` the command itself (not its group): its children must follow it by themselves.

        Returns:
            How many processes it had started that were running when it was killed.
        """
        descendants = 0
        if child.proc.poll() is None:
            descendants = len(marked(child.token)) - 1
            child.proc.send_signal(signal.SIGKILL)
        child.proc.wait()
        self._count_leftovers(child)
        return descendants

    def _count_leftovers(self, child: Child) -> None:
        left = survivors(child.token, EXIT_GRACE_S)
        self.leaked += [f"{cmd.strip()[:160]} (after `aladin {child.argv[0]}`)" for cmd in left.values()]
        kill_marked(child.token)

    def cleanup(self) -> None:
        """Kill every process group the soak started that still runs, then anything still marked."""
        for child in self.children:
            if child.proc.poll() is None:
                try:
                    os.killpg(child.proc.pid, signal.SIGKILL)
                except OSError:
                    pass
                child.proc.wait()
        kill_marked(self.session)

    # -- reading libraries ---------------------------------------------------------------------------------
    def ranking(self, lib_folder: Path, query: Path | None = None) -> list[tuple[str, float]]:
        """Exact search for a library image: every stored vector against the query's by brute force, best
        first, leaving out the query and byte-identical copies of it, as search does."""
        with Library.open(lib_folder) as lib:
            batches = list(lib.iter_vectors())
            ids = np.concatenate([b[0] for b in batches])
            unit = self.embedder().finish(np.concatenate([b[1] for b in batches]))
            query_id = lib.find_image(query or self.query)[0]
            scores = unit @ unit[ids == query_id][0]
            digest = lib.content_hashes([query_id]).get(query_id)
            exclude = {query_id} | (lib.ids_with_hashes([digest]) if digest else set())
            order = [i for i in np.argsort(-scores, kind="stable") if int(ids[i]) not in exclude]
            paths = lib.image_paths([int(ids[i]) for i in order])
        return [(paths[int(ids[i])], float(scores[i])) for i in order]

    def check_search(self, o: Outcome, lib_folder: Path, ranking: list[tuple[str, float]] | None = None,
                     query: Path | None = None, **kw) -> None:
        """``aladin search`` must give exact search's top :data:`K`: tied images may swap places, scores may
        not differ. ``ranking`` is exact search's, when the library cannot be opened here (read-only)."""
        query = query or self.query
        run = self.run(search_argv(lib_folder, query), **kw)
        if run.code != 0:
            o.mismatched += K
            o.problems.append(f"search failed: {run.show()}")
            return
        compare_search(o, run, ranking or self.ranking(lib_folder, query))

    def census(self, o: Outcome, lib_folder: Path) -> dict[str, int]:
        """Count lost and doubled images of a library against the files under its roots; returns ids by path."""
        with Library.open(lib_folder) as lib:
            roots = [r.path for r in lib.roots()]
            rows = lib.image_paths(sorted(lib.ids_under(roots)))
            vectors = set(lib.vector_ids().tolist())
        on_disk = image_files(roots)
        per_path = Counter(rows.values())
        ids = {path: i for i, path in rows.items()}
        lost = sorted(p for p in on_disk if p not in ids or ids[p] not in vectors)
        doubled = sum(n - 1 for n in per_path.values()) + sum(1 for p in per_path if p not in on_disk)
        o.lost += len(lost)
        o.doubled += doubled
        if lost:
            o.problems.append(f"{len(lost)} images on disk have no vector, e.g. {lost[:3]}")
        if doubled:
            o.problems.append(f"{doubled} image rows are second rows or name no file on disk")
        return ids

    def check_vectors(self, o: Outcome, lib_folder: Path, paths: list[str]) -> None:
        """Every stored vector of ``paths`` must be what ``aladin embed`` makes of the file now."""
        listing = self.logs / f"embed-{self.count + 1}.txt"
        listing.write_text("\n".join(paths) + "\n")
        npy = listing.with_suffix(".npy")
        run = self.run(["embed", "--paths-from", listing, "--out", npy, "--workers", "1"])
        if run.code != 0:
            o.problems.append(f"embed failed: {run.show()}")
            return
        rows = np.load(npy)
        with Library.open(lib_folder) as lib:
            found = {p: lib.find_image(p) for p in paths}
            raw = lib.raw_vectors([f[0] for f in found.values() if f is not None])
        stored = {p: raw[f[0]] for p, f in found.items() if f is not None and f[0] in raw}
        unit = self.embedder().finish(np.stack(list(stored.values())))
        cosine = {p: float(u @ rows[paths.index(p)]) for p, u in zip(stored, unit)}
        bad = {p: c for p, c in cosine.items() if c < COSINE_MIN}
        o.mismatched += len(bad)
        if bad:
            o.problems.append(f"{len(bad)} stored vectors differ from `aladin embed`: {list(bad.items())[:3]}")
        o.notes.append(f"lowest cosine of a stored vector to `aladin embed`: {min(cosine.values()):.7f}")

    def index_state(self, lib_folder: Path, **kw) -> str:
        """``aladin status --json``'s cache state (fresh, stale, missing, damaged), or the failure."""
        run = self.run(["status", "--json", "--library", lib_folder], **kw)
        return json.loads(run.out)["index"]["state"] if run.code == 0 else f"failed: {run.show()}"


# -- small checks ----------------------------------------------------------------------------------------------
def search_argv(lib_folder: Path, query: Path) -> list:
    return ["search", query, "-k", K, "--json", "--library", lib_folder]


def compare_search(o: Outcome, run: Run, ranking: list[tuple[str, float]]) -> None:
    """A search's JSON results against exact search's ``ranking``: tied images may swap places, scores may
    not differ."""
    got = [(r["path"], r["score"]) for r in json.loads(run.out)["results"]]
    want, exact = ranking[:K], dict(ranking)
    wrong = sum(abs(g[1] - w[1]) > SCORE_TOL or abs(g[1] - exact.get(g[0], -9.0)) > SCORE_TOL
                for g, w in zip(got, want)) + abs(len(got) - len(want))
    if wrong:
        o.mismatched += wrong
        o.problems.append(f"search differs from exact search in {wrong} of {K}: got {got}, exact {want}")


def clear_error(o: Outcome, run: Run, *words: str) -> bool:
    """A known error as the user meets it: exit status 2 and one line that says ``words``; else a problem."""
    lines = run.err.strip().splitlines()
    ok = (run.code == 2 and len(lines) == 1 and lines[0].startswith("aladin: error: ")
          and all(w in lines[0] for w in words))
    if not ok:
        o.problems.append(f"expected one line saying {words}, exit 2: {run.show()}")
    return ok


def expect_ok(o: Outcome, run: Run) -> bool:
    if run.code != 0 or "Traceback" in run.err:
        o.problems.append(f"expected success: {run.show()}")
        return False
    return True


def slug(name: str) -> str:
    """A case's words as a file name."""
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")


def vector_rows(lib_folder: Path) -> int:
    """Committed vectors, read straight from SQLite without opening (or creating) a library: a trigger for
    the kill rounds, polled while another process writes."""
    db = lib_folder / DB_NAME
    if not db.exists():
        return 0
    try:
        con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
        try:
            return con.execute("SELECT count(*) FROM vectors").fetchone()[0]
        finally:
            con.close()
    except sqlite3.Error:  # not created yet
        return 0


def wait_while(child: Child, busy: Callable[[], bool]) -> None:
    """Wait while ``child`` runs and ``busy()`` holds."""
    while child.proc.poll() is None and busy():
        time.sleep(POLL_S)


def graph_file(lib_folder: Path) -> Path:
    return lib_folder / json.loads((lib_folder / STAMP).read_text())["file"]


def remove_cache(lib_folder: Path) -> None:
    for path in [lib_folder / STAMP, *lib_folder.glob(GRAPHS)]:
        path.unlink(missing_ok=True)


def closed_cleanly(lib_folder: Path) -> bool:
    """No ``-wal`` file with content: the database file alone is the library (safe to copy as a backup)."""
    wal = Path(f"{lib_folder / DB_NAME}-wal")
    return not wal.exists() or wal.stat().st_size == 0


# -- kill -9 -----------------------------------------------------------------------------------------------------
def case_index_kill(soak: Soak, o: Outcome) -> None:
    """``kill -9`` of ``aladin index`` at random moments, with files moved and added between rounds; then
    one run to the end. Nothing lost or doubled, moved files keep their ids, every vector is right."""
    art, lib = soak.out / "art-kill", soak.out / "lib-kill"
    shutil.copytree(soak.art, art)
    query = art / soak.query.relative_to(soak.art)
    moved: dict[str, int] = {}
    early = descendants = 0
    for r in range(soak.rounds):
        soak.left()
        if r:
            move_one(soak, lib, art, r, moved, keep=query)
            make_art(art / f"added{r:02d}", 4, first_style=200 + r)
        before = vector_rows(lib)
        child = soak.start(["index", art, "--library", lib, "--workers", 1, "--batch-size", BATCH])
        if r % 3 == 0:  # anywhere: start-up, scan, reconcile, embedding or the cache save
            until = time.monotonic() + soak.rng.uniform(0.2, 6.0)
            wait_while(child, lambda: time.monotonic() < until)
        else:  # between commits, with the decoders running
            target = before + int(soak.rng.integers(1, 4)) * BATCH
            wait_while(child, lambda: vector_rows(lib) < target)
        early += child.proc.poll() is not None
        descendants += soak.kill(child)
        o.rounds += 1
    o.notes.append(f"{descendants} decoder and resource tracker processes were running at the kills")
    if early:
        o.notes.append(f"{early} of {soak.rounds} index runs finished before their kill")
    if not expect_ok(o, soak.run(["index", "--library", lib, "--batch-size", BATCH])):
        return
    ids = soak.census(o, lib)
    kept = sum(ids.get(path) == old for path, old in moved.items())
    if kept != len(moved):
        o.lost += len(moved) - kept
        o.problems.append(f"{len(moved) - kept} of {len(moved)} moved files lost their id")
    soak.check_vectors(o, lib, sorted(image_files([art])))
    soak.check_search(o, lib, query=query)
    state = soak.index_state(lib)
    if state != "fresh":
        o.problems.append(f"after a full run the cache is {state!r}, not fresh")


def move_one(soak: Soak, lib_folder: Path, art: Path, r: int, moved: dict[str, int], keep: Path) -> None:
    """Move an indexed file (not one moved before, nor ``keep``) into another folder; note the id it must keep."""
    if not (lib_folder / DB_NAME).exists():
        return
    with Library.open(lib_folder) as lib:
        vectors = set(lib.vector_ids().tolist())
        rows = lib.image_paths(sorted(vectors))
    done = set(moved.values())
    choices = sorted((i, p) for i, p in rows.items() if i not in done and Path(p).exists() and Path(p) != keep)
    if not choices:
        return
    image_id, path = choices[int(soak.rng.integers(len(choices)))]
    target = art / "moved" / f"r{r:02d}-{Path(path).name}"
    target.parent.mkdir(exist_ok=True)
    Path(path).rename(target)
    moved[str(target.resolve())] = image_id


def case_search_kill(soak: Soak, o: Outcome) -> None:
    """``kill -9`` of ``aladin search`` at random moments, half of them with no cache file, so that the
    search builds and saves one: the cache is never left damaged, and the next search is exact."""
    lib = soak.copy_base("lib-search-kill")
    argv = search_argv(lib, soak.query)
    full = soak.run(argv)
    expect_ok(o, full)
    for r in range(max(2, soak.rounds // 2)):
        if r % 2 == 0:
            remove_cache(lib)
        child = soak.start(argv)
        until = time.monotonic() + soak.rng.uniform(0.3, 1.1) * full.seconds
        wait_while(child, lambda: time.monotonic() < until)
        soak.kill(child)
        o.rounds += 1
        state = soak.index_state(lib)
        if state not in ("fresh", "missing"):
            o.mismatched += 1
            o.problems.append(f"after a killed search the cache is {state!r}")
    soak.check_search(o, lib)


def case_moodboard_kill(soak: Soak, o: Outcome) -> None:
    """``kill -9`` of ``aladin moodboard create``: each board is then absent or whole, never partial."""
    lib = soak.copy_base("lib-board-kill")
    items = [str(p.resolve()) for p in soak.paths[:: max(1, len(soak.paths) // 5)][:5]]
    full = soak.run(["moodboard", "create", "first", *items, "--library", lib])
    expect_ok(o, full)
    for r in range(max(2, soak.rounds // 2)):
        child = soak.start(["moodboard", "create", f"board{r}", *items, "--library", lib])
        until = time.monotonic() + soak.rng.uniform(0.3, 1.1) * full.seconds
        wait_while(child, lambda: time.monotonic() < until)
        soak.kill(child)
        o.rounds += 1
    with Library.open(lib) as library:
        boards = {name: [i.path for i in library.load_moodboard(name)] for name in library.moodboards()}
    partial = {name: paths for name, paths in boards.items() if paths != items}
    o.mismatched += len(partial)
    if partial:
        o.problems.append(f"partial moodboards: {partial}")
    o.notes.append(f"{len(boards) - 1} of {o.rounds} killed moodboard creations were saved whole")


# -- the cache ------------------------------------------------------------------------------------------------------
def case_cache_damage(soak: Soak, o: Outcome) -> None:
    """Damaged, missing or foreign cache files: search is still exact and the graph is rebuilt. A cache of
    another library or of a database restored from a backup is never reported fresh."""
    other, art = soak.out / "lib-other", soak.out / "art-other"
    make_art(art, 80, first_style=100)
    expect_ok(o, soak.run(["index", art, "--library", other]))
    damages: dict[str, tuple[Callable[[Path], None], bool]] = {
        "graph truncated": (lambda lib: _truncate(graph_file(lib)), False),
        "graph bytes flipped": (lambda lib: _flip(graph_file(lib)), False),
        "stamp not JSON": (lambda lib: (lib / STAMP).write_text("{not json"), True),
        "graph file gone": (lambda lib: graph_file(lib).unlink(), True),
        "another library's cache": (lambda lib: _swap_cache(lib, other), True),
    }
    for name, (damage, never_fresh) in damages.items():
        lib = soak.copy_base(f"lib-cache-{slug(name)}")
        damage(lib)
        state = soak.index_state(lib)
        if never_fresh and state == "fresh":
            o.problems.append(f"{name}: `aladin status` calls the cache fresh")
        elif state == "fresh":
            o.notes.append(f"{name}: `aladin status` says fresh (it checks the stamp, not the graph's bytes)")
        soak.check_search(o, lib)
        rebuilt = soak.index_state(lib)
        if rebuilt != "fresh":
            o.problems.append(f"{name}: after a search the cache is {rebuilt!r}, not rebuilt")
        o.rounds += 1
    restored_backup(soak, o)


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def _flip(path: Path) -> None:
    data = bytearray(path.read_bytes())
    middle = len(data) // 2
    data[middle:middle + 64] = bytes(b ^ 0xFF for b in data[middle:middle + 64])
    path.write_bytes(bytes(data))


def _swap_cache(lib: Path, other: Path) -> None:
    remove_cache(lib)
    for path in [other / STAMP, *other.glob(GRAPHS)]:
        shutil.copy(path, lib / path.name)


def restored_backup(soak: Soak, o: Outcome) -> None:
    """A database restored from a backup beside the cache of its newer, lost state; the next files indexed
    get the lost images' ids again. Neither search nor status may trust that cache."""
    lib = soak.copy_base("lib-cache-restored")
    if not closed_cleanly(lib):
        o.problems.append("the base library was not closed cleanly; cannot take a file backup")
        return
    backup = (lib / DB_NAME).read_bytes()
    later = soak.out / "art-later"
    make_art(later, 24, first_style=300)
    expect_ok(o, soak.run(["index", later, "--library", lib]))
    (lib / DB_NAME).write_bytes(backup)
    state = soak.index_state(lib)
    if state == "fresh":
        o.problems.append("restored backup: `aladin status` calls the newer state's cache fresh")
    soak.check_search(o, lib)
    copies = soak.out / "art-copies"
    copies.mkdir()
    for n in range(3):  # near copies of the query: they take lost ids and must rank near the top
        img = Image.open(soak.query).convert("RGB")
        img.resize((img.width - 2 - n, img.height - 2 - n)).save(copies / f"copy{n}.jpg", quality=90 - 5 * n)
    expect_ok(o, soak.run(["index", copies, "--library", lib]))
    soak.check_search(o, lib)
    rebuilt = soak.index_state(lib)
    if rebuilt != "fresh":
        o.problems.append(f"restored backup: after indexing the cache is {rebuilt!r}, not fresh")
    o.rounds += 1


# -- the database ----------------------------------------------------------------------------------------------------
PAGE = 4096  # SQLite's default page size


def _damage_pages(db: Path) -> None:
    """Every 10th page of the middle half overwritten: images, vectors and their indexes all lose some."""
    data = bytearray(db.read_bytes())
    pages = len(data) // PAGE
    for n in range(pages // 4, 3 * pages // 4, 10):
        data[n * PAGE:(n + 1) * PAGE] = b"\xde\xad\xbe\xef" * (PAGE // 4)
    db.write_bytes(bytes(data))


def case_database_damage(soak: Soak, o: Outcome) -> None:
    """Damaged pages, or a database cut in half: a command that meets the damage says so in one line naming
    `aladin repair` (status, which counts every table, always does; a search that reads only sound pages
    must answer as before); repair keeps the damaged file and recovers the rest; the next index run
    brings back every image."""
    for name, damage in (("pages", _damage_pages), ("cut in half", _truncate)):
        lib = soak.copy_base(f"lib-damaged-{slug(name)}")
        ranking = soak.ranking(lib)
        damage(lib / DB_NAME)
        words = ("is damaged", f"aladin repair --library {lib}")
        clear_error(o, soak.run(["status", "--library", lib]), *words)
        for argv in (search_argv(lib, soak.query), ["index", "--library", lib]):
            run = soak.run(argv)
            if run.code != 0:
                clear_error(o, run, *words)
            elif argv[0] == "search":
                compare_search(o, run, ranking)
                o.notes.append(f"{name}: search met no damaged page and answered as before")
            else:
                o.notes.append(f"{name}: index met no damaged page")
        damaged = (lib / DB_NAME).read_bytes()  # as repair finds it
        if not expect_ok(o, repair := soak.run(["repair", "--library", lib])):
            continue
        kept = list(lib.glob(f"{DB_NAME}.damaged-*"))
        if [p.read_bytes() == damaged for p in kept] != [True]:
            o.problems.append(f"{name}: repair did not keep the damaged file as it was: {kept}")
        again = soak.run(["repair", "--library", lib])
        if "no damage found" not in again.out:
            o.problems.append(f"{name}: a repaired database is still damaged: {again.show()}")
        if expect_ok(o, soak.run(["index", soak.art, "--library", lib, "--batch-size", BATCH])):
            soak.census(o, lib)
            soak.check_search(o, lib)
        o.notes.append(f"{name}: " + " / ".join(line.strip() for line in repair.out.splitlines()[1:4]))
        o.rounds += 1


def case_emptied_database(soak: Soak, o: Outcome) -> None:
    """A zero-byte database beside the other library files is refused, naming `aladin repair`, and left
    as it is; after repair, indexing the folder again brings back every image."""
    lib = soak.copy_base("lib-emptied")
    (lib / DB_NAME).write_bytes(b"")
    for argv in (["status"], ["search", soak.query], ["index"]):
        clear_error(o, soak.run([*argv, "--library", lib]), "is empty (0 bytes)", "aladin repair")
    if (lib / DB_NAME).stat().st_size != 0:
        o.problems.append("the emptied database was changed before a repair")
    if expect_ok(o, soak.run(["repair", "--library", lib])) and expect_ok(
            o, soak.run(["index", soak.art, "--library", lib, "--batch-size", BATCH])):
        soak.census(o, lib)
        soak.check_search(o, lib)
    o.rounds += 1


def case_read_only(soak: Soak, o: Outcome) -> None:
    """A library on read-only files (as another user; root ignores permission bits), with and without a
    cache file: status and search work and are exact, every change says read-only, no file changes."""
    if os.geteuid() == 0 and not shutil.which("setpriv"):
        o.skipped = "running as root without setpriv to drop to another user"
        return
    user = NOBODY if os.geteuid() == 0 else None
    lib = soak.copy_base("lib-read-only")
    ranking = soak.ranking(lib)  # opened here, as root, the library would be written to
    for with_cache in (True, False):
        if not with_cache:
            remove_cache(lib)
        before = _listing(lib)
        modes = {p: p.stat().st_mode for p in [lib, *lib.iterdir()]}
        try:
            for path in modes:
                path.chmod(0o555 if path.is_dir() else 0o444)
            state = soak.index_state(lib, user=user)
            if state.startswith("failed"):
                o.problems.append(f"status of a read-only library {state}")
            soak.check_search(o, lib, ranking, user=user)
            clear_error(o, soak.run(["index", "--library", lib], user=user), "is read-only")
            clear_error(o, soak.run(["moodboard", "create", "b", soak.query, "--library", lib], user=user),
                        "is read-only")
        finally:
            for path, mode in modes.items():
                path.chmod(mode)
        if _listing(lib) != before:
            o.problems.append(f"read-only library ({'with' if with_cache else 'without'} cache) changed: "
                              f"{before} -> {_listing(lib)}")
        o.rounds += 1


def _listing(folder: Path) -> dict[str, tuple[int, int]]:
    return {p.name: (p.stat().st_size, p.stat().st_mtime_ns) for p in folder.iterdir()}


def case_full_disk(soak: Soak, o: Outcome) -> None:
    """Indexing a new folder when no file may grow past 96 KiB (a full disk): one clear line, every old
    vector kept as it was; with room again the next run finishes."""
    lib = soak.copy_base("lib-full")
    with Library.open(lib) as library:
        old = library.raw_vectors(library.vector_ids().tolist())
    extra = soak.out / "art-full"
    make_art(extra, 160, first_style=400)
    run = soak.run(["index", extra, "--library", lib, "--batch-size", BATCH], fsize=96 * 1024,
                   env={"ALADIN_LOG_DIR": str(soak.home / "log-full")})  # the shared log may be past the limit
    clear_error(o, run, "library")
    with Library.open(lib) as library:
        now = library.raw_vectors(list(old))
    changed = sum(i not in now or now[i].tobytes() != v.tobytes() for i, v in old.items())
    o.lost += changed
    if changed:
        o.problems.append(f"{changed} of {len(old)} old vectors lost or changed by the failed run")
    if expect_ok(o, soak.run(["index", "--library", lib, "--batch-size", BATCH])):
        soak.census(o, lib)
        soak.check_search(o, lib)
    o.rounds += 1


# -- concurrency -------------------------------------------------------------------------------------------------------
def case_two_indexers(soak: Soak, o: Outcome) -> None:
    """Two ``aladin index`` at once, on a new library and then on a new folder: one waits its turn or
    says busy in one line; nothing is lost, doubled or mixed up."""
    lib, extra = soak.out / "lib-two", soak.out / "art-two"
    together(soak, o, lib, [soak.art], [soak.art])
    make_art(extra, 40, first_style=500)
    together(soak, o, lib, [extra], [])
    if expect_ok(o, soak.run(["index", "--library", lib, "--batch-size", BATCH])):
        soak.census(o, lib)
        soak.check_vectors(o, lib, sorted(image_files([extra]))[:40])
        soak.check_search(o, lib)


def together(soak: Soak, o: Outcome, lib: Path, *folders: list[Path]) -> None:
    """One ``aladin index`` per list of folders, all started at once; each must finish or say busy."""
    children = [soak.start(["index", *f, "--library", lib, "--batch-size", BATCH]) for f in folders]
    for child in children:
        run = soak.finish(child)
        if run.code != 0:
            clear_error(o, run, "busy")
    o.rounds += 1


def case_search_during_index(soak: Soak, o: Outcome) -> None:
    """Searches while ``aladin index`` adds a folder: every one succeeds with a full list of library images;
    afterwards search is exact."""
    lib, extra = soak.copy_base("lib-busy"), soak.out / "art-busy"
    make_art(extra, 160, first_style=600)
    indexer = soak.start(["index", extra, "--library", lib, "--batch-size", BATCH])
    while indexer.proc.poll() is None:
        run = soak.run(["search", soak.query, "-k", K, "--json", "--library", lib])
        o.rounds += 1
        if run.code != 0 or run.err.strip():
            o.problems.append(f"a search during indexing failed or warned: {run.show()}")
            continue
        results = json.loads(run.out)["results"]
        if len(results) != K or not all(Path(r["path"]).is_file() for r in results):
            o.mismatched += 1
            o.problems.append(f"search during indexing gave {results}")
    expect_ok(o, soak.finish(indexer))
    soak.census(o, lib)
    soak.check_search(o, lib)


# -- bad input ---------------------------------------------------------------------------------------------------------
def bad_models(folder: Path, marker: Path) -> dict[str, Path]:
    """Model files a library must never be filled from: damaged weights, absurd settings, not a model
    at all, and a pickle that would create ``marker`` if anything unpickled it."""
    good = tiny_model_file(folder)
    files = {}
    for name, weight, value in (("NaN weight", "style_encoder.layers.0.0.weight", float("nan")),
                                ("infinite projection", "head.net.2.bias", float("inf"))):
        model = load_model_file(good)
        with torch.no_grad():
            model.net.get_parameter(weight).view(-1)[0] = value
        files[name] = save_model(folder / f"{slug(name)}.safetensors", model.net, model.info)
    with safe_open(str(good), framework="pt") as fh:
        record = json.loads(fh.metadata()[META_KEY])
    for name, change in (("input size 100000", {"input_size": 100_000}),
                         ("colour bins 100000 each", {"colour_bins": [100_000] * 3}),
                         ("pixel std 0", {"std": [0.2, 0.0, 0.2]})):
        files[name] = folder / f"{slug(name)}.safetensors"
        save_file(load_file(good), str(files[name]), metadata={META_KEY: json.dumps({**record, **change})})
    files["truncated"] = folder / "truncated.safetensors"
    files["truncated"].write_bytes(good.read_bytes()[:5000])
    files["random bytes"] = folder / "random.safetensors"
    files["random bytes"].write_bytes(np.random.default_rng(0).bytes(4096))
    files["pickle"] = folder / "pickle.safetensors"
    files["pickle"].write_bytes(pickle.dumps(_Payload(str(marker))))
    return files


class _Payload:
    """Unpickling this creates a file: the proof that a loader ran code from a model file."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


def case_bad_models(soak: Soak, o: Outcome) -> None:
    """Each bad model file: ``aladin index`` and ``aladin embed`` refuse it in one line naming the file;
    nothing is indexed or written, and no code in it runs."""
    folder, marker = soak.out / "models", soak.out / "unpickled"
    folder.mkdir()
    listing = soak.out / "two.txt"
    listing.write_text(f"{soak.paths[0]}\n{soak.paths[1]}\n")
    for name, path in bad_models(folder, marker).items():
        lib, npy = soak.out / f"lib-model-{path.stem}", soak.out / f"{path.stem}.npy"
        clear_error(o, soak.run(["index", soak.art / "style000", "--library", lib, "--model", path]), str(path))
        clear_error(o, soak.run(["embed", "--paths-from", listing, "--out", npy, "--model", path]), str(path))
        with Library.open(lib) as library:
            indexed = library.status().indexed
        if indexed or npy.exists():
            o.problems.append(f"{name}: {indexed} vectors indexed, output written: {npy.exists()}")
        o.rounds += 1
    if marker.exists():
        o.problems.append("a pickled model file ran code")


def case_bad_arguments(soak: Soak, o: Outcome) -> None:
    """Arguments a user gets wrong: one line, exit status 2, no traceback."""
    a_file, empty, outside = soak.out / "a-file", soak.out / "empty.txt", soak.out / "outside"
    a_file.write_text("x")
    empty.write_text("\n\n")
    outside.mkdir(exist_ok=True)
    listing = soak.out / "one.txt"
    listing.write_text(f"{soak.query}\n")
    lib = ["--library", soak.base]
    cases = [
        (["index", soak.art, "--workers", -1, *lib], ("--workers",), None),
        (["index", "--batch-size", 0, *lib], ("--batch-size",), None),
        (["embed", "--paths-from", listing, "--out", a_file / "sub" / "x.npy"], ("is a file",), None),
        (["embed", "--paths-from", empty, "--out", soak.out / "none.npy"], ("names no images",), None),
        (["search", soak.query, *lib], ("standard output",), Path("/dev/full")),
        (["search", soak.query, "--folder", outside, *lib], ("not in the library",), None),
        (["search", soak.out / "missing.png", *lib], ("no such image file",), None),
        (["search", soak.query, "-k", 0, *lib], ("k must be",), None),
        (["moodboard", "show", "nothing", *lib], ("no moodboard",), None),
        (["remove", outside, *lib], ("not in the library",), None),
    ]
    for argv, words, stdout in cases:
        clear_error(o, soak.run(argv, stdout=stdout), *words)
        o.rounds += 1


CASES: dict[str, Callable[[Soak, Outcome], None]] = {
    "index kill -9": case_index_kill,
    "search kill -9": case_search_kill,
    "moodboard create kill -9": case_moodboard_kill,
    "damaged or foreign cache": case_cache_damage,
    "damaged database": case_database_damage,
    "emptied database": case_emptied_database,
    "read-only library": case_read_only,
    "full disk": case_full_disk,
    "two indexers": case_two_indexers,
    "search during index": case_search_during_index,
    "bad model files": case_bad_models,
    "bad arguments": case_bad_arguments,
}
