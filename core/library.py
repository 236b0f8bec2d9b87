"""The library store: one SQLite database that is the source of truth for a collection.

The database holds the indexed roots, one row per image file, the raw vectors
and the model that made them, plus saved moodboards (tables in :mod:`core.schema`).
The hnswlib file next to it (see :mod:`core.index_cache`) is only a cache. SQLite
runs in WAL mode so searches read while an indexer writes; a file lock keeps
writers to one process, and only its holder gets a :class:`core.writer.LibraryWriter`.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from sqlalchemy import Engine, func, select
from sqlalchemy.exc import DatabaseError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from core.errors import LibraryBusyError, LibraryError, QueryError
from core.files import FileLock, LockBusy
from core.paths import library_dir
from core.query import QueryItem
from core.schema import (SCHEMA_VERSION, STATUS_FAILED, ImageRow, ModelRow, MoodboardItemRow, MoodboardRow, RootRow,
                         VectorRow, connect, in_chunks)
from core.writer import LibraryWriter, generation

DB_NAME = "library.sqlite"
WRITER_LOCK = "writer.lock"


def default_library_dir() -> Path:
    """The library a command or the app opens when none is named: see :func:`core.paths.library_dir`."""
    return library_dir()


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


class Library:
    """Owns the library database. Each method opens its own short session, so one writer
    thread and any number of reader threads can share an instance. Reads are methods here;
    writes to images and vectors go through :meth:`writer`, which holds the single-writer lock."""

    def __init__(self, folder: Path, engine: Engine) -> None:
        self.folder = folder
        self._engine = engine
        self._session: sessionmaker[Session] = sessionmaker(engine, expire_on_commit=False)

    # -- opening -------------------------------------------------------------
    @classmethod
    def open(cls, folder: Path | str | None = None) -> "Library":
        """Open (creating if needed) the library in ``folder``.

        Raises:
            LibraryError: the folder cannot be created, the database is damaged, or
                it was written by a newer version of the program.
        """
        folder = Path(folder) if folder is not None else default_library_dir()
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise LibraryError(f"cannot create the library folder {folder}: {exc}") from exc
        db = folder / DB_NAME
        try:
            engine = connect(db)
        except DatabaseError as exc:
            raise LibraryError(f"the library database {db} is damaged or unreadable ({exc.orig})") from exc
        return cls(folder, engine)

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
            LibraryBusyError: another process (or another writer here) holds it.
            LibraryError: the lock file cannot be created, or a write failed on a full
                disk or an I/O error (the open transaction is rolled back, committed ones stay).
        """
        with contextlib.ExitStack() as stack:
            try:
                stack.enter_context(FileLock(self.folder / WRITER_LOCK, exclusive=True, blocking=False))
            except LockBusy as exc:
                raise LibraryBusyError(f"library {self.folder} is busy: another process is indexing it") from exc
            except OSError as exc:
                raise LibraryError(f"cannot write to the library {self.folder}: {exc.strerror}") from exc
            try:
                yield LibraryWriter(self._session)
            except OperationalError as exc:
                raise LibraryError(f"cannot write to the library {self.folder}: {exc.orig}") from exc

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

    # -- model -----------------------------------------------------------------
    def model_record(self) -> ModelRecord | None:
        with self._session() as s:
            row = s.scalar(select(ModelRow).order_by(ModelRow.id.desc()).limit(1))
            return _model_record(row) if row is not None else None

    # -- status ------------------------------------------------------------------
    def generation(self) -> int:
        with self._session() as s:
            return generation(s)

    def vector_count(self) -> int:
        with self._session() as s:
            return _vector_count(s)

    def status(self) -> LibraryStatus:
        from core.index_cache import index_health

        with self._session() as s:
            per_root = dict(s.execute(select(ImageRow.root_id, func.count()).group_by(ImageRow.root_id)).all())
            failed_root = dict(s.execute(select(ImageRow.root_id, func.count())
                                         .where(ImageRow.status == STATUS_FAILED).group_by(ImageRow.root_id)).all())
            images = s.scalar(select(func.count()).select_from(ImageRow)) or 0
            failed = s.scalar(select(func.count()).select_from(ImageRow).where(ImageRow.status == STATUS_FAILED)) or 0
            vectors = _vector_count(s)
            roots = [RootStatus(r.path, per_root.get(r.id, 0), failed_root.get(r.id, 0), Path(r.path).is_dir())
                     for r in s.scalars(select(RootRow).order_by(RootRow.path))]
            gen = generation(s)
        model = self.model_record()
        return LibraryStatus(folder=str(self.folder), schema_version=SCHEMA_VERSION, roots=roots, images=images,
                             indexed=vectors, failed=failed, pending=images - failed - vectors, model=model,
                             generation=gen, index=index_health(self.folder, gen, model, vectors))

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

    def ids_under(self, folders: list[str]) -> set[int]:
        """Image ids under any of ``folders`` (each a root or any folder inside one)."""
        out: set[int] = set()
        roots = self.roots()
        with self._session() as s:
            for folder in folders:
                target = Path(folder).resolve()
                for root in roots:
                    if target == Path(root.path):
                        out.update(s.scalars(select(ImageRow.id).where(ImageRow.root_id == root.id)))
                    elif target.is_relative_to(root.path):
                        prefix = target.relative_to(root.path).as_posix() + "/"
                        out.update(s.scalars(select(ImageRow.id).where(
                            ImageRow.root_id == root.id, ImageRow.relpath.startswith(prefix, autoescape=True))))
        return out

    def raw_vectors(self, ids: list[int]) -> dict[int, np.ndarray]:
        out: dict[int, np.ndarray] = {}
        with self._session() as s:
            for part in in_chunks(ids):
                for i, data in s.execute(select(VectorRow.image_id, VectorRow.data).where(VectorRow.image_id.in_(part))):
                    out[i] = np.frombuffer(data, dtype=np.float32)
        return out

    def iter_vectors(self, after_seq: int = 0, batch: int = 4096) -> Iterator[tuple[np.ndarray, np.ndarray, int]]:
        """``(ids, raw matrix, max seq)`` batches of every vector written after ``after_seq``."""
        with self._session() as s:
            result = s.execute(select(VectorRow.image_id, VectorRow.seq, VectorRow.data)
                               .where(VectorRow.seq > after_seq).order_by(VectorRow.image_id)
                               .execution_options(yield_per=batch))
            for part in result.partitions(batch):
                ids = np.fromiter((r[0] for r in part), dtype=np.int64, count=len(part))
                raw = np.stack([np.frombuffer(r[2], dtype=np.float32) for r in part])
                yield ids, raw, max(r[1] for r in part)

    def vector_ids(self) -> np.ndarray:
        with self._session() as s:
            return np.fromiter(s.scalars(select(VectorRow.image_id)), dtype=np.int64)

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


def _vector_count(s: Session) -> int:
    return s.scalar(select(func.count()).select_from(VectorRow)) or 0


def _model_record(row: ModelRow) -> ModelRecord:
    return ModelRecord(row.id, row.name, row.version, row.dim, row.checksum, row.which, row.source)
