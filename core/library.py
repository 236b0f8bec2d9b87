"""The library store: one SQLite database that is the source of truth for a collection.

The database holds the indexed roots, one row per image file, the raw vectors
and the model that made them, plus saved moodboards (tables in :mod:`core.schema`).
The hnswlib file next to it (see :mod:`core.index_cache`) is only a cache. SQLite
runs in WAL mode so searches read while an indexer writes; a file lock keeps
writers to one process, and only its holder gets a :class:`core.writer.LibraryWriter`.
A library that cannot be written (a read-only mount, someone else's shared folder)
opens read-only: it can be searched, and every change is refused as read-only.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

import numpy as np
from sqlalchemy import ColumnElement, Engine, and_, false, func, or_, select
from sqlalchemy.orm import Session, sessionmaker

from core.errors import LibraryBusyError, LibraryError, LibraryReadOnlyError, QueryError
from core.files import FileLock, LockBusy
from core.paths import library_dir
from core.query import QueryItem
from core.schema import (LIBRARY_ID, SCHEMA_VERSION, STATUS_FAILED, GenerationRow, ImageRow, MetaRow, ModelRow,
                         MoodboardItemRow, MoodboardRow, RootRow, StagedVectorRow, VectorRow, connect, damaged_error,
                         generation, in_chunks, read_only_error, vector_from_blob)
from core.writer import LibraryWriter

DB_NAME = "library.sqlite"
WRITER_LOCK = "writer.lock"


def default_library_dir() -> Path:
    """The library a command or the app opens when none is named: see :func:`core.paths.library_dir`."""
    return library_dir()


@dataclass(frozen=True)
class LibraryState:
    """One exact state of a library's vectors, as an index cache records what it was built from.

    ``token`` is random per generation, so a database restored from a backup, which
    counts the same generations again, never repeats a state it did not go through.
    """

    library_id: str | None
    generation: int
    token: str | None


@dataclass
class Root:
    id: int
    path: str
    added_at: float


@dataclass
class Failure:
    path: str
    reason: str


@dataclass
class ModelRecord:
    """Which network made a library's vectors; ``checksum`` is what identity checks compare."""

    id: int
    name: str
    version: str
    dim: int
    checksum: str
    which: str
    source: str


@dataclass
class PendingSwitch:
    """A model switch under way (or interrupted): the model it moves to and how many images it has embedded."""

    model: ModelRecord
    staged: int


@dataclass
class RootStatus:
    path: str
    images: int
    failed: int
    exists: bool


@dataclass
class LibraryStatus:
    folder: str
    schema_version: int
    roots: list[RootStatus]
    images: int
    indexed: int
    failed: int
    pending: int
    model: ModelRecord | None
    generation: int
    index: dict = field(default_factory=dict)


# How :meth:`Library.browse` can order images: file name (A to Z), newest first, largest first.
BROWSE_SORTS = ("name", "modified", "size")


@dataclass(frozen=True)
class ImageFacts:
    """What the duplicates view shows of an image, and the hash that makes copies exact."""

    image_id: int
    path: str
    size: int
    width: int | None
    height: int | None
    content_hash: str | None


class BrowseEntry(NamedTuple):
    """One indexed image as the library view lists it (width and height are None when unknown)."""

    image_id: int
    path: str
    size: int
    mtime_ns: int
    width: int | None
    height: int | None


class BrowseList(Sequence[BrowseEntry]):
    """What :meth:`Library.browse` answers: a sequence of :class:`BrowseEntry`, stored by column.

    A view may list 100,000 images: as objects, each one tracked by the garbage collector, they
    made every full collection (which holds the GIL) stall the GUI thread for hundreds of
    milliseconds. Here they are a list of path strings and a few integer arrays, and an entry
    is made only when it is asked for (the rows a view paints).
    """

    def __init__(self, ids: list[int], paths: list[str], sizes: list[int], mtimes_ns: list[int],
                 widths: list[int], heights: list[int]) -> None:
        self.paths = paths
        self._columns = np.array([ids, sizes, mtimes_ns, widths, heights], dtype=np.int64).reshape(5, len(paths))

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, row: int | slice) -> BrowseEntry | list[BrowseEntry]:
        if isinstance(row, slice):
            return [self[i] for i in range(*row.indices(len(self)))]
        i, size, mtime, w, h = (int(v) for v in self._columns[:, row])
        return BrowseEntry(i, self.paths[row], size, mtime, w or None, h or None)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, BrowseList):
            return NotImplemented
        return self.paths == other.paths and np.array_equal(self._columns, other._columns)

    __hash__ = None  # compared by value, like a list


class Library:
    """Owns the library database. Each method opens its own short session, so one writer
    thread and any number of reader threads can share an instance. Reads are methods here;
    writes to images and vectors go through :meth:`writer`, which holds the single-writer lock."""

    def __init__(self, folder: Path, engine: Engine, read_only: bool = False) -> None:
        self.folder = folder
        self.read_only = read_only
        self._engine = engine
        self._session: sessionmaker[Session] = sessionmaker(engine, expire_on_commit=False)

    # -- opening -------------------------------------------------------------
    @classmethod
    def open(cls, folder: Path | str | None = None) -> "Library":
        """Open (creating if needed) the library in ``folder``; read-only when it cannot be written.

        Raises:
            LibraryDamagedError: the database is damaged, or empty beside other library files.
            LibraryReadOnlyError: a read-only folder without a library to read.
            LibraryBusyError: another process held the database's lock too long.
            LibraryError: the folder cannot be created, or a newer version of the program wrote it.
        """
        folder = Path(folder) if folder is not None else default_library_dir()
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise LibraryError(f"cannot create the library folder {folder}: {exc}") from exc
        db = folder / DB_NAME
        _refuse_emptied(db)
        read_only = not writable(folder)
        if read_only and not db.exists():
            raise LibraryReadOnlyError(f"cannot create a library in {folder}: the folder is read-only")
        return cls(folder, connect(db, read_only=read_only), read_only)

    def close(self) -> None:
        self._engine.dispose()

    def __enter__(self) -> "Library":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    @contextlib.contextmanager
    def writer(self) -> Iterator[LibraryWriter]:
        """Hold the single-writer lock and hand out the write operations for the ``with`` block.

        An OS lock dies with its process, so ``kill -9`` never leaves it stuck.

        Raises:
            LibraryReadOnlyError: the library was opened read-only.
            LibraryBusyError: another process (or another writer here) holds it.
            LibraryError: the lock file cannot be created, or a write failed on a full
                disk or an I/O error (the open transaction is rolled back, committed ones stay).
        """
        self.check_writable()
        with writer_lock(self.folder):
            yield LibraryWriter(self._session)

    def check_writable(self) -> None:
        """Refuse early what would need :meth:`writer` later.

        Raises:
            LibraryReadOnlyError: the library was opened read-only.
        """
        if self.read_only:
            raise read_only_error(self.folder)

    # -- roots -----------------------------------------------------------------
    def roots(self) -> list[Root]:
        with self._session() as s:
            return [Root(r.id, r.path, r.added_at) for r in s.scalars(select(RootRow).order_by(RootRow.path))]

    def add_root(self, path: Path | str) -> Root:
        """Register a folder (idempotent). The path is stored absolute and resolved."""
        path = str(Path(path).resolve())
        with self._session.begin() as s:
            row = s.scalar(select(RootRow).where(RootRow.path == path))
            if row is None:
                row = RootRow(path=path, added_at=time.time())
                s.add(row)
                s.flush()
            return Root(row.id, row.path, row.added_at)

    def remove_root(self, path: Path | str) -> int:
        """Forget a root with its images and vectors; returns how many images left.

        A sub-folder of a root removes only the images under it.

        Raises:
            LibraryBusyError: an indexer is running.
            QueryError: the folder is not in the library.
        """
        with self.writer() as w:
            return w.remove_folder(Path(path).resolve())

    def forget_images(self, ids: list[int]) -> int:
        """Forget images whose files the user has just trashed, with their vectors; returns how many.

        Raises:
            LibraryBusyError: an indexer is running (its next rescan forgets them instead).
        """
        with self.writer() as w:
            return w.forget_images(ids)

    # -- model -----------------------------------------------------------------
    def model_record(self) -> ModelRecord | None:
        """The model that made the vectors search reads (never the one a switch is moving to)."""
        with self._session() as s:
            row = s.scalar(select(ModelRow).where(~ModelRow.pending).order_by(ModelRow.id.desc()).limit(1))
            return _model_record(row) if row is not None else None

    def pending_switch(self) -> PendingSwitch | None:
        """The switch to another model that is under way, or was cancelled or killed and can resume."""
        with self._session() as s:
            row = s.scalar(select(ModelRow).where(ModelRow.pending))
            if row is None:
                return None
            staged = s.scalar(select(func.count()).select_from(StagedVectorRow)
                              .where(StagedVectorRow.model_id == row.id)) or 0
            return PendingSwitch(_model_record(row), staged)

    # -- status ------------------------------------------------------------------
    def generation(self) -> int:
        with self._session() as s:
            return generation(s)

    def state(self) -> LibraryState:
        """The exact state of the vectors now: what an index cache must match."""
        with self._session() as s:
            gen = generation(s)
            return LibraryState(_library_id(s), gen, _token(s, gen))

    def knows(self, state: LibraryState) -> bool:
        """Whether this database went through ``state``: its library, and that generation's token.

        A cache built from such a state can be patched forward to the current one; a cache of
        another library, or of a state a database restored from a backup never had, cannot.
        """
        with self._session() as s:
            return (state.token is not None and state.library_id == _library_id(s)
                    and _token(s, state.generation) == state.token)

    def vector_count(self) -> int:
        with self._session() as s:
            return _vector_count(s)

    def status(self) -> LibraryStatus:
        from core.index_cache import index_health  # the cache module imports this one

        with self._session() as s:
            per_root = dict(s.execute(select(ImageRow.root_id, func.count()).group_by(ImageRow.root_id)).all())
            failed_root = dict(s.execute(select(ImageRow.root_id, func.count())
                                         .where(ImageRow.status == STATUS_FAILED).group_by(ImageRow.root_id)).all())
            images = s.scalar(select(func.count()).select_from(ImageRow)) or 0
            failed = s.scalar(select(func.count()).select_from(ImageRow).where(ImageRow.status == STATUS_FAILED)) or 0
            vectors = _vector_count(s)
            roots = [RootStatus(r.path, per_root.get(r.id, 0), failed_root.get(r.id, 0), _reachable(r.path))
                     for r in s.scalars(select(RootRow).order_by(RootRow.path))]
        state = self.state()
        model = self.model_record()
        return LibraryStatus(folder=str(self.folder), schema_version=SCHEMA_VERSION, roots=roots, images=images,
                             indexed=vectors, failed=failed, pending=images - failed - vectors, model=model,
                             generation=state.generation,
                             index=index_health(self.folder, state, self.knows, model, vectors))

    def failures(self) -> list[Failure]:
        with self._session() as s:
            rows = s.execute(select(RootRow.path, ImageRow.relpath, ImageRow.error).join(RootRow)
                             .where(ImageRow.status == STATUS_FAILED).order_by(RootRow.path, ImageRow.relpath)).all()
        return [Failure(str(Path(root) / rel), reason or "unknown") for root, rel, reason in rows]

    # -- lookups used by search ------------------------------------------------
    def image_paths(self, ids: list[int]) -> dict[int, str]:
        """Absolute paths of the given image ids (missing ids are left out)."""
        out: dict[int, str] = {}
        with self._session() as s:
            for part in in_chunks(ids):
                rows = s.execute(select(ImageRow.id, RootRow.path, ImageRow.relpath).join(RootRow)
                                 .where(ImageRow.id.in_(part))).all()
                out.update({i: str(Path(root) / rel) for i, root, rel in rows})
        return out

    def find_image(self, path: Path | str) -> tuple[int, int, int, str | None] | None:
        """``(id, size, mtime_ns, content_hash)`` of the library image at ``path``, if any."""
        path = Path(path).resolve()
        for root in self.roots():
            if path.is_relative_to(root.path):
                rel = path.relative_to(root.path).as_posix()
                with self._session() as s:
                    row = s.execute(select(ImageRow.id, ImageRow.size, ImageRow.mtime_ns, ImageRow.content_hash)
                                    .where(ImageRow.root_id == root.id, ImageRow.relpath == rel)).first()
                if row is not None:
                    return tuple(row)
        return None

    def content_hashes(self, ids: list[int]) -> dict[int, str]:
        with self._session() as s:
            return {i: h for i, h in s.execute(select(ImageRow.id, ImageRow.content_hash)
                                               .where(ImageRow.id.in_(ids))) if h}

    def ids_with_hashes(self, hashes: list[str]) -> set[int]:
        with self._session() as s:
            return set(s.scalars(select(ImageRow.id).where(ImageRow.content_hash.in_(hashes))))

    def images_sharing_content(self) -> list[list[int]]:
        """Ids of images whose bytes another image has too (exact duplicates), one list per content hash."""
        shared = (select(ImageRow.content_hash).where(ImageRow.content_hash.is_not(None))
                  .group_by(ImageRow.content_hash).having(func.count() > 1))
        groups: dict[str, list[int]] = {}
        with self._session() as s:
            for digest, i in s.execute(select(ImageRow.content_hash, ImageRow.id)
                                       .where(ImageRow.content_hash.in_(shared)).order_by(ImageRow.id)):
                groups.setdefault(digest, []).append(i)
        return list(groups.values())

    def image_facts(self, ids: list[int]) -> dict[int, ImageFacts]:
        """Path, file size, pixel size and content hash of the given image ids (missing ids are left out)."""
        out: dict[int, ImageFacts] = {}
        with self._session() as s:
            for part in in_chunks(ids):
                for i, root, rel, size, width, height, digest in s.execute(
                        select(ImageRow.id, RootRow.path, ImageRow.relpath, ImageRow.size, ImageRow.width,
                               ImageRow.height, ImageRow.content_hash).join(RootRow).where(ImageRow.id.in_(part))):
                    out[i] = ImageFacts(i, str(Path(root) / rel), size, width, height, digest)
        return out

    def ids_under(self, folders: list[str]) -> set[int]:
        """Image ids under any of ``folders`` (each a root or any folder inside one)."""
        if not folders:
            return set()
        roots = self.roots()
        with self._session() as s:
            return set(s.scalars(select(ImageRow.id).where(or_(*(_under(roots, f) for f in folders)))))

    def raw_vectors(self, ids: list[int]) -> dict[int, np.ndarray]:
        out: dict[int, np.ndarray] = {}
        with self._session() as s:
            for part in in_chunks(ids):
                for i, data in s.execute(select(VectorRow.image_id, VectorRow.data).where(VectorRow.image_id.in_(part))):
                    out[i] = vector_from_blob(data)
        return out

    def iter_vectors(self, after_seq: int = 0, batch: int = 4096) -> Iterator[tuple[np.ndarray, np.ndarray, int]]:
        """``(ids, raw matrix, max seq)`` batches of every vector written after ``after_seq``."""
        with self._session() as s:
            result = s.execute(select(VectorRow.image_id, VectorRow.seq, VectorRow.data)
                               .where(VectorRow.seq > after_seq).order_by(VectorRow.image_id)
                               .execution_options(yield_per=batch))
            for part in result.partitions(batch):
                ids = np.fromiter((r[0] for r in part), dtype=np.int64, count=len(part))
                raw = np.stack([vector_from_blob(r[2]) for r in part])
                yield ids, raw, max(r[1] for r in part)

    def vector_ids(self) -> np.ndarray:
        with self._session() as s:
            return np.fromiter(s.scalars(select(VectorRow.image_id)), dtype=np.int64)

    # -- browsing ------------------------------------------------------------------
    def browse(self, folder: str | None = None, sort: str = "name", name_filter: str = "") -> BrowseList:
        """Every indexed image (one with a vector) under ``folder`` (a root or a folder inside one; None: all),
        whose file name contains ``name_filter`` (case-insensitive), in ``sort`` order (:data:`BROWSE_SORTS`).

        Filtering and ordering run in SQL, so a 100,000-image library is listed without sorting in Python.

        Raises:
            QueryError: ``sort`` is not one of :data:`BROWSE_SORTS`.
        """
        if sort not in BROWSE_SORTS:
            raise QueryError(f"cannot sort by {sort!r}: use one of {', '.join(BROWSE_SORTS)}")
        name = func.substr(ImageRow.relpath, func.length(_folder_part(ImageRow.relpath)) + 1)
        order = {"name": (name.collate("NOCASE"), RootRow.path, ImageRow.relpath),
                 "modified": (ImageRow.mtime_ns.desc(), ImageRow.id),
                 "size": (ImageRow.size.desc(), ImageRow.id)}[sort]
        query = (select(ImageRow.id, RootRow.path, ImageRow.relpath, ImageRow.size, ImageRow.mtime_ns,
                        ImageRow.width, ImageRow.height)
                 .join(RootRow).join(VectorRow, VectorRow.image_id == ImageRow.id).order_by(*order))
        if folder:
            query = query.where(_under(self.roots(), folder))
        if name_filter:
            query = query.where(name.contains(name_filter, autoescape=True))
        # Rows stream from the cursor into columns (a Core execute: the ORM's would hold every row object
        # at once); a path is a string join, not a Path, where the separator is the stored "/".
        prefix = {root.path: root.path.rstrip("/") + "/" for root in self.roots()}
        native = os.sep == "/"
        columns: tuple[list, ...] = ([], [], [], [], [], [])
        ids, paths, sizes, mtimes, widths, heights = columns
        with self._session() as s:
            for i, root, rel, size, mtime, w, h in s.connection().execute(query):
                ids.append(i)
                paths.append(prefix[root] + rel if native else str(Path(root, rel)))
                sizes.append(size)
                mtimes.append(mtime)
                widths.append(w or 0)
                heights.append(h or 0)
        return BrowseList(*columns)

    def folder_counts(self) -> list[tuple[str, int]]:
        """``(folder, images)`` for every folder that directly holds indexed images, and every root (0 when it
        holds none directly), sorted by path: the library view's folder tree adds them up."""
        folder = _folder_part(ImageRow.relpath)
        with self._session() as s:
            rows = s.execute(select(RootRow.path, folder, func.count()).select_from(ImageRow).join(RootRow)
                             .join(VectorRow, VectorRow.image_id == ImageRow.id)
                             .group_by(ImageRow.root_id, folder)).all()
            counts = {path: 0 for path in s.scalars(select(RootRow.path))}
        for root, rel, n in rows:
            key = os.path.join(root, rel.rstrip("/")) if rel else root
            counts[key] = counts.get(key, 0) + n
        return sorted(counts.items())

    # -- moodboards --------------------------------------------------------------
    def moodboards(self) -> list[str]:
        with self._session() as s:
            return list(s.scalars(select(MoodboardRow.name).order_by(MoodboardRow.name)))

    def save_moodboard(self, name: str, items: list[QueryItem]) -> None:
        """Create or replace a moodboard. Items inside the library are stored by image id too."""
        name = name.strip()
        if not name:
            raise QueryError("a moodboard needs a name")
        if not items:
            raise QueryError("a moodboard needs at least one image")
        resolved = [(item, self.find_image(item.path)) for item in items]
        with self._session.begin() as s:
            old = s.scalar(select(MoodboardRow).where(MoodboardRow.name == name))
            if old is not None:
                s.delete(old)
                s.flush()
            board = MoodboardRow(name=name, created_at=time.time())
            s.add(board)
            s.flush()
            for pos, (item, found) in enumerate(resolved):
                s.add(MoodboardItemRow(moodboard_id=board.id, position=pos, image_id=found[0] if found else None,
                                       path=str(Path(item.path).resolve()), weight=float(item.weight),
                                       negative=bool(item.negative)))

    def load_moodboard(self, name: str) -> list[QueryItem]:
        """The moodboard's items, with library images at their current path (they may have moved)."""

        with self._session() as s:
            board = s.scalar(select(MoodboardRow).where(MoodboardRow.name == name))
            if board is None:
                raise QueryError(f"no moodboard named {name!r}")
            rows = s.scalars(select(MoodboardItemRow).where(MoodboardItemRow.moodboard_id == board.id)
                             .order_by(MoodboardItemRow.position)).all()
        current = self.image_paths([r.image_id for r in rows if r.image_id is not None])
        return [QueryItem(path=current.get(r.image_id, r.path), weight=r.weight, negative=r.negative) for r in rows]

    def rename_moodboard(self, old: str, new: str) -> None:
        new = new.strip()
        if not new:
            raise QueryError("a moodboard needs a name")
        with self._session.begin() as s:
            board = s.scalar(select(MoodboardRow).where(MoodboardRow.name == old))
            if board is None:
                raise QueryError(f"no moodboard named {old!r}")
            if new != old and s.scalar(select(MoodboardRow.id).where(MoodboardRow.name == new)) is not None:
                raise QueryError(f"a moodboard named {new!r} already exists")
            board.name = new

    def delete_moodboard(self, name: str) -> None:
        with self._session.begin() as s:
            board = s.scalar(select(MoodboardRow).where(MoodboardRow.name == name))
            if board is None:
                raise QueryError(f"no moodboard named {name!r}")
            s.delete(board)


def writable(folder: Path) -> bool:
    """Whether this process may change the library in ``folder``: the folder (SQLite's
    ``-wal`` and ``-shm`` files, the locks, the cache) and its database file."""
    db = folder / DB_NAME
    return os.access(folder, os.W_OK) and (not db.exists() or os.access(db, os.W_OK))


@contextlib.contextmanager
def writer_lock(folder: Path) -> Iterator[None]:
    """Hold the library's single-writer lock for the ``with`` block.

    Raises:
        LibraryBusyError: another process (or another writer here) holds it.
        LibraryError: the lock file cannot be created.
    """
    with contextlib.ExitStack() as stack:
        try:
            stack.enter_context(FileLock(folder / WRITER_LOCK, exclusive=True, blocking=False))
        except LockBusy as exc:
            raise LibraryBusyError(f"library {folder} is busy: another process is indexing it") from exc
        except OSError as exc:
            raise LibraryError(f"cannot write to the library {folder}: {exc.strerror}") from exc
        yield


def _library_files(folder: Path) -> list[str]:
    """Names of the files a library keeps beside its database (locks, the index cache, the style clusters)."""
    from core.clusters import STYLES_FILE
    from core.index_cache import CACHE_FILES

    return sorted({p.name for pattern in (WRITER_LOCK, STYLES_FILE, *CACHE_FILES) for p in folder.glob(pattern)})


def _refuse_emptied(db: Path) -> None:
    """A zero-byte database beside other library files was emptied (a crash, a full disk, a bad copy),
    not created: opening it would silently start a new library and lose its folders and moodboards.

    Raises:
        LibraryDamagedError: it is such a database.
    """
    if db.is_file() and db.stat().st_size == 0 and (others := _library_files(db.parent)):
        raise damaged_error(db, f"is empty (0 bytes) although the folder holds other library files "
                                f"({', '.join(others)}): it was lost, not new (restore it from a backup if you "
                                "have one)")


def _library_id(s: Session) -> str | None:
    return s.scalar(select(MetaRow.value).where(MetaRow.key == LIBRARY_ID))


def _token(s: Session, gen: int) -> str | None:
    return s.scalar(select(GenerationRow.token).where(GenerationRow.generation == gen))


def _vector_count(s: Session) -> int:
    return s.scalar(select(func.count()).select_from(VectorRow)) or 0


def _model_record(row: ModelRow) -> ModelRecord:
    return ModelRecord(row.id, row.name, row.version, row.dim, row.checksum, row.which, row.source)


def _folder_part(relpath: ColumnElement[str]) -> ColumnElement[str]:
    """SQL for a relative path's folder with its trailing slash ("a/b/" of "a/b/c.png", "" at the top):
    ``rtrim`` strips every character of the file name, and stops at the last slash."""
    return func.rtrim(relpath, func.replace(relpath, "/", ""))


def _under(roots: list[Root], folder: str) -> ColumnElement[bool]:
    """SQL that holds for the images under ``folder`` (a root or any folder inside one); never for another."""
    target = Path(folder).resolve()
    clauses = []
    for root in roots:
        if target == Path(root.path):
            clauses.append(ImageRow.root_id == root.id)
        elif target.is_relative_to(root.path):
            prefix = target.relative_to(root.path).as_posix() + "/"
            # A range on the (root_id, relpath) index, not LIKE, which SQLite answers by reading every row
            # of the root (11 ms a search at 100k images, bench/library_scale.py); "0" sorts right after "/".
            clauses.append(and_(ImageRow.root_id == root.id, ImageRow.relpath >= prefix,
                                ImageRow.relpath < prefix[:-1] + "0"))
    return or_(*clauses) if clauses else false()


def _reachable(folder: str) -> bool:
    """Whether a library folder can be seen now; one behind a folder this user may not enter counts as
    unreachable instead of ending ``status`` with a PermissionError (``Path.is_dir`` raises it)."""
    return os.path.isdir(folder)
