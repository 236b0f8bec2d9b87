"""The library store: one SQLite database that is the source of truth for a collection.

The database holds the indexed roots, one row per image file, the raw vectors
and the model that made them, plus saved moodboards. The hnswlib file next to it
(see :mod:`core.index`) is only a cache. SQLite runs in WAL mode so searches
read while an indexer writes; a file lock keeps writers to one process.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import platformdirs
from sqlalchemy import (Boolean, Engine, Float, ForeignKey, Index, Integer, LargeBinary, String,
                        UniqueConstraint, create_engine, delete, event, func, select, text)
from sqlalchemy.exc import DatabaseError, OperationalError
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, sessionmaker

from core.errors import LibraryBusyError, LibraryError, QueryError
from core.query import QueryItem

DB_NAME = "library.sqlite"
WRITER_LOCK = "writer.lock"
ENV_VAR = "ALADIN_LIBRARY"

# Schema history. A fresh library gets every table at once and the latest number;
# an older library runs each upgrade step from its own version up.
#   1: roots, images, models, vectors, meta.
#   2: saved moodboards.
SCHEMA_VERSION = 2

STATUS_OK = "ok"
STATUS_FAILED = "failed"


def default_library_dir() -> Path:
    """``$ALADIN_LIBRARY``, else the per-user data folder; read at call time so tests can redirect it."""
    env = os.environ.get(ENV_VAR)
    return Path(env) if env else Path(platformdirs.user_data_dir("aladin")) / "library"


DEFAULT_LIBRARY_DIR: Path = Path(platformdirs.user_data_dir("aladin")) / "library"


class Base(DeclarativeBase):
    pass


class RootRow(Base):
    __tablename__ = "roots"

    id: Mapped[int] = mapped_column(primary_key=True)
    path: Mapped[str] = mapped_column(String, unique=True)
    added_at: Mapped[float] = mapped_column(Float)


class ImageRow(Base):
    """One file under a root. ``size`` + ``mtime_ns`` decide whether it must be looked at again.

    Ids are AUTOINCREMENT so a deleted image's id is never reused: the hnswlib
    cache labels points by image id and must never confuse an old point with a new file.
    """

    __tablename__ = "images"
    __table_args__ = (UniqueConstraint("root_id", "relpath"), Index("ix_images_hash", "content_hash"),
                      {"sqlite_autoincrement": True})

    id: Mapped[int] = mapped_column(primary_key=True)
    root_id: Mapped[int] = mapped_column(ForeignKey("roots.id", ondelete="CASCADE"))
    relpath: Mapped[str] = mapped_column(String)
    size: Mapped[int] = mapped_column(Integer)
    mtime_ns: Mapped[int] = mapped_column(Integer)
    content_hash: Mapped[str | None] = mapped_column(String)
    width: Mapped[int | None] = mapped_column(Integer)
    height: Mapped[int | None] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String, default=STATUS_OK)
    error: Mapped[str | None] = mapped_column(String)
    added_at: Mapped[float] = mapped_column(Float)
    updated_at: Mapped[float] = mapped_column(Float)


class ModelRow(Base):
    __tablename__ = "models"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String)
    version: Mapped[str] = mapped_column(String)
    dim: Mapped[int] = mapped_column(Integer)
    checksum: Mapped[str] = mapped_column(String)
    which: Mapped[str] = mapped_column(String)
    source: Mapped[str] = mapped_column(String)
    created_at: Mapped[float] = mapped_column(Float)


class VectorRow(Base):
    """A raw float32 vector. ``seq`` is the write generation, so a cache can fetch only what is newer."""

    __tablename__ = "vectors"
    __table_args__ = (Index("ix_vectors_seq", "seq"),)

    image_id: Mapped[int] = mapped_column(ForeignKey("images.id", ondelete="CASCADE"), primary_key=True)
    model_id: Mapped[int] = mapped_column(ForeignKey("models.id", ondelete="CASCADE"))
    seq: Mapped[int] = mapped_column(Integer)
    data: Mapped[bytes] = mapped_column(LargeBinary)


class MetaRow(Base):
    __tablename__ = "meta"

    key: Mapped[str] = mapped_column(String, primary_key=True)
    value: Mapped[str] = mapped_column(String)


class MoodboardRow(Base):
    __tablename__ = "moodboards"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String, unique=True)
    created_at: Mapped[float] = mapped_column(Float)


class MoodboardItemRow(Base):
    """An image on a moodboard: by image id when it is in the library (survives moves), else by path."""

    __tablename__ = "moodboard_items"

    id: Mapped[int] = mapped_column(primary_key=True)
    moodboard_id: Mapped[int] = mapped_column(ForeignKey("moodboards.id", ondelete="CASCADE"))
    position: Mapped[int] = mapped_column(Integer)
    image_id: Mapped[int | None] = mapped_column(ForeignKey("images.id", ondelete="SET NULL"))
    path: Mapped[str] = mapped_column(String)
    weight: Mapped[float] = mapped_column(Float, default=1.0)
    negative: Mapped[bool] = mapped_column(Boolean, default=False)


def _upgrade_1_to_2(conn) -> None:
    """Version 2 added saved moodboards."""
    Base.metadata.create_all(conn, tables=[MoodboardRow.__table__, MoodboardItemRow.__table__])


UPGRADES: dict[int, Callable] = {1: _upgrade_1_to_2}


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
    thread and any number of reader threads can share an instance."""

    def __init__(self, folder: Path, engine: Engine) -> None:
        self.folder = folder
        self.engine = engine
        self.session: sessionmaker[Session] = sessionmaker(engine, expire_on_commit=False)

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
        engine = create_engine(f"sqlite:///{db}", connect_args={"timeout": 30, "check_same_thread": False})
        event.listen(engine, "connect", _on_connect)
        try:
            _migrate(engine, db)
        except (DatabaseError, OperationalError) as exc:
            engine.dispose()
            raise LibraryError(f"the library database {db} is damaged or unreadable ({exc.orig})") from exc
        except LibraryError:
            engine.dispose()
            raise
        return cls(folder, engine)

    def close(self) -> None:
        self.engine.dispose()

    def __enter__(self) -> "Library":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    @contextlib.contextmanager
    def writer(self) -> Iterator[None]:
        """Hold the single-writer lock. An OS lock dies with its process, so ``kill -9`` never leaves it stuck.

        Raises:
            LibraryBusyError: another process (or another writer here) holds it.
        """
        path = self.folder / WRITER_LOCK
        try:
            fh = open(path, "a+b")
        except OSError as exc:
            raise LibraryError(f"cannot write to the library {self.folder}: {exc.strerror}") from exc
        try:
            if not _try_lock(fh):
                raise LibraryBusyError(f"library {self.folder} is busy: another process is indexing it")
            try:
                yield
            finally:
                _unlock(fh)
        finally:
            fh.close()

    # -- roots -----------------------------------------------------------------
    def roots(self) -> list[Root]:
        with self.session() as s:
            return [Root(r.id, r.path, r.added_at) for r in s.scalars(select(RootRow).order_by(RootRow.path))]

    def add_root(self, path: Path | str) -> Root:
        """Register a folder (idempotent). The path is stored absolute and resolved."""
        path = str(Path(path).resolve())
        with self.session.begin() as s:
            row = s.scalar(select(RootRow).where(RootRow.path == path))
            if row is None:
                row = RootRow(path=path, added_at=time.time())
                s.add(row)
                s.flush()
            return Root(row.id, row.path, row.added_at)

    def find_root(self, path: Path | str) -> Root | None:
        path = str(Path(path).resolve())
        return next((r for r in self.roots() if r.path == path), None)

    def remove_root(self, path: Path | str) -> int:
        """Forget a root with its images and vectors; returns how many images left.

        A sub-folder of a root removes only the images under it.

        Raises:
            LibraryBusyError: an indexer is running.
            QueryError: the folder is not in the library.
        """
        target = Path(path).resolve()
        with self.writer():
            with self.session.begin() as s:
                roots = s.scalars(select(RootRow)).all()
                exact = next((r for r in roots if Path(r.path) == target), None)
                if exact is not None:
                    n = s.scalar(select(func.count()).select_from(ImageRow).where(ImageRow.root_id == exact.id))
                    s.execute(delete(ImageRow).where(ImageRow.root_id == exact.id))
                    s.delete(exact)
                else:
                    parent = next((r for r in roots if target.is_relative_to(r.path)), None)
                    if parent is None:
                        raise QueryError(f"{target} is not in the library")
                    prefix = target.relative_to(parent.path).as_posix() + "/"
                    ids = s.scalars(select(ImageRow.id).where(ImageRow.root_id == parent.id,
                                                             ImageRow.relpath.startswith(prefix, autoescape=True))).all()
                    n = len(ids)
                    delete_images(s, ids)
                bump_generation(s)
        return int(n or 0)

    # -- model -----------------------------------------------------------------
    def model_record(self) -> ModelRecord | None:
        with self.session() as s:
            row = s.scalar(select(ModelRow).order_by(ModelRow.id.desc()).limit(1))
            return _model_record(row) if row is not None else None

    # -- status ------------------------------------------------------------------
    def generation(self) -> int:
        with self.session() as s:
            return get_meta_int(s, "generation")

    def status(self) -> LibraryStatus:
        from core.index import index_health

        with self.session() as s:
            per_root = dict(s.execute(select(ImageRow.root_id, func.count()).group_by(ImageRow.root_id)).all())
            failed_root = dict(s.execute(select(ImageRow.root_id, func.count())
                                         .where(ImageRow.status == STATUS_FAILED).group_by(ImageRow.root_id)).all())
            images = s.scalar(select(func.count()).select_from(ImageRow)) or 0
            failed = s.scalar(select(func.count()).select_from(ImageRow).where(ImageRow.status == STATUS_FAILED)) or 0
            vectors = s.scalar(select(func.count()).select_from(VectorRow)) or 0
            roots = [RootStatus(r.path, per_root.get(r.id, 0), failed_root.get(r.id, 0), Path(r.path).is_dir())
                     for r in s.scalars(select(RootRow).order_by(RootRow.path))]
            generation = get_meta_int(s, "generation")
        model = self.model_record()
        return LibraryStatus(folder=str(self.folder), schema_version=SCHEMA_VERSION, roots=roots, images=images,
                             indexed=vectors, failed=failed, pending=images - failed - vectors, model=model,
                             generation=generation, index=index_health(self.folder, generation, model, vectors))

    def failures(self) -> list[Failure]:
        with self.session() as s:
            rows = s.execute(select(RootRow.path, ImageRow.relpath, ImageRow.error).join(RootRow)
                             .where(ImageRow.status == STATUS_FAILED).order_by(RootRow.path, ImageRow.relpath)).all()
        return [Failure(str(Path(root) / rel), reason or "unknown") for root, rel, reason in rows]

    # -- lookups used by search ------------------------------------------------
    def image_paths(self, ids: list[int]) -> dict[int, str]:
        """Absolute paths of the given image ids (missing ids are left out)."""
        out: dict[int, str] = {}
        with self.session() as s:
            for part in _chunks(ids, 900):
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
                with self.session() as s:
                    row = s.execute(select(ImageRow.id, ImageRow.size, ImageRow.mtime_ns, ImageRow.content_hash)
                                    .where(ImageRow.root_id == root.id, ImageRow.relpath == rel)).first()
                if row is not None:
                    return tuple(row)
        return None

    def content_hashes(self, ids: list[int]) -> dict[int, str]:
        with self.session() as s:
            return {i: h for i, h in s.execute(select(ImageRow.id, ImageRow.content_hash)
                                               .where(ImageRow.id.in_(ids))) if h}

    def ids_with_hashes(self, hashes: list[str]) -> set[int]:
        with self.session() as s:
            return set(s.scalars(select(ImageRow.id).where(ImageRow.content_hash.in_(hashes))))

    def ids_under(self, folders: list[str]) -> set[int]:
        """Image ids under any of ``folders`` (each a root or any folder inside one)."""
        out: set[int] = set()
        roots = self.roots()
        with self.session() as s:
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
        with self.session() as s:
            for part in _chunks(ids, 900):
                for i, data in s.execute(select(VectorRow.image_id, VectorRow.data).where(VectorRow.image_id.in_(part))):
                    out[i] = np.frombuffer(data, dtype=np.float32)
        return out

    def iter_vectors(self, after_seq: int = 0, batch: int = 4096) -> Iterator[tuple[np.ndarray, np.ndarray, int]]:
        """``(ids, raw matrix, max seq)`` batches of every vector written after ``after_seq``."""
        with self.session() as s:
            result = s.execute(select(VectorRow.image_id, VectorRow.seq, VectorRow.data)
                               .where(VectorRow.seq > after_seq).order_by(VectorRow.image_id)
                               .execution_options(yield_per=batch))
            for part in result.partitions(batch):
                ids = np.fromiter((r[0] for r in part), dtype=np.int64, count=len(part))
                raw = np.stack([np.frombuffer(r[2], dtype=np.float32) for r in part])
                yield ids, raw, max(r[1] for r in part)

    def vector_ids(self) -> np.ndarray:
        with self.session() as s:
            return np.fromiter(s.scalars(select(VectorRow.image_id)), dtype=np.int64)

    # -- moodboards --------------------------------------------------------------
    def moodboards(self) -> list[str]:
        with self.session() as s:
            return list(s.scalars(select(MoodboardRow.name).order_by(MoodboardRow.name)))

    def save_moodboard(self, name: str, items: list[QueryItem]) -> None:
        """Create or replace a moodboard. Items inside the library are stored by image id too."""
        name = name.strip()
        if not name:
            raise QueryError("a moodboard needs a name")
        if not items:
            raise QueryError("a moodboard needs at least one image")
        resolved = [(item, self.find_image(item.path)) for item in items]
        with self.session.begin() as s:
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

        with self.session() as s:
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
        with self.session.begin() as s:
            board = s.scalar(select(MoodboardRow).where(MoodboardRow.name == old))
            if board is None:
                raise QueryError(f"no moodboard named {old!r}")
            if new != old and s.scalar(select(MoodboardRow.id).where(MoodboardRow.name == new)) is not None:
                raise QueryError(f"a moodboard named {new!r} already exists")
            board.name = new

    def delete_moodboard(self, name: str) -> None:
        with self.session.begin() as s:
            board = s.scalar(select(MoodboardRow).where(MoodboardRow.name == name))
            if board is None:
                raise QueryError(f"no moodboard named {name!r}")
            s.delete(board)


# -- helpers shared with the indexer (they run inside its transactions) ---------

def get_meta_int(s: Session, key: str) -> int:
    value = s.scalar(select(MetaRow.value).where(MetaRow.key == key))
    return int(value) if value is not None else 0


def set_meta(s: Session, key: str, value: object) -> None:
    row = s.get(MetaRow, key)
    if row is None:
        s.add(MetaRow(key=key, value=str(value)))
    else:
        row.value = str(value)


def bump_generation(s: Session) -> int:
    """Every change to the set of vectors raises the generation; caches compare against it."""
    gen = get_meta_int(s, "generation") + 1
    set_meta(s, "generation", gen)
    return gen


def delete_images(s: Session, ids: list[int]) -> None:
    for part in _chunks(list(ids), 900):
        s.execute(delete(VectorRow).where(VectorRow.image_id.in_(part)))
        s.execute(delete(ImageRow).where(ImageRow.id.in_(part)))


def _model_record(row: ModelRow) -> ModelRecord:
    return ModelRecord(row.id, row.name, row.version, row.dim, row.checksum, row.which, row.source)


def _chunks(items: list, n: int) -> Iterator[list]:
    for i in range(0, len(items), n):
        yield items[i:i + n]


def _on_connect(dbapi_conn, _record) -> None:
    """WAL lets readers run beside the writer; NORMAL sync is still safe against a killed process."""
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.close()


def _migrate(engine: Engine, db: Path) -> None:
    with engine.begin() as conn:
        version = conn.execute(text("PRAGMA user_version")).scalar() or 0
        has_tables = conn.execute(text("SELECT count(*) FROM sqlite_master WHERE type='table'")).scalar()
        if version > SCHEMA_VERSION:
            raise LibraryError(f"the library {db} was written by a newer version of aladin "
                               f"(schema {version}; this version reads up to {SCHEMA_VERSION})")
        if version == 0:
            if has_tables:
                raise LibraryError(f"{db} is not an aladin library database")
            Base.metadata.create_all(conn)
        else:
            for step in range(version, SCHEMA_VERSION):
                UPGRADES[step](conn)
        conn.execute(text(f"PRAGMA user_version={SCHEMA_VERSION}"))


def _try_lock(fh) -> bool:
    try:
        import fcntl
    except ImportError:  # Windows
        import msvcrt

        try:
            msvcrt.locking(fh.fileno(), msvcrt.LK_NBLCK, 1)
            return True
        except OSError:
            return False
    try:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except BlockingIOError:
        return False


def _unlock(fh) -> None:
    try:
        import fcntl
    except ImportError:  # Windows
        import msvcrt

        fh.seek(0)
        msvcrt.locking(fh.fileno(), msvcrt.LK_UNLCK, 1)
        return
    fcntl.flock(fh.fileno(), fcntl.LOCK_UN)
