"""The library database's tables, its schema version and the steps that upgrade an older one.

Only the store (:mod:`core.library`, :mod:`core.writer`, :mod:`core.repair`) imports this
module: a schema change touches the tables here and the queries there, nothing else.
This is also where SQLite's errors become :mod:`core.errors` types (:func:`connect`):
a damaged file, a busy or read-only library are the user's environment, not bugs.
"""

from __future__ import annotations

import os
import secrets
import sqlite3
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import quote

import numpy as np
from sqlalchemy import (Boolean, Connection, Engine, Float, ForeignKey, Index, Integer, LargeBinary, String,
                        UniqueConstraint, create_engine, delete, event, insert, select, text)
from sqlalchemy.engine import ExceptionContext
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

from core.errors import LibraryBusyError, LibraryDamagedError, LibraryError, LibraryReadOnlyError

# Schema history. A fresh library gets every table at once and the latest number;
# an older library runs each upgrade step from its own version up.
#   1: roots, images, models, vectors, meta.
#   2: saved moodboards.
#   3: a library id (meta) and a token per generation (generations), naming each exact database state.
#   4: a model switch in progress: the next model's row (models.pending) and its vectors (staged_vectors),
#      made beside the current ones and swapped in with one transaction when all are made.
#   5: raw vectors written in half precision (see vector_blob); float32 ones written before stay readable.
SCHEMA_VERSION = 5

STATUS_OK = "ok"
STATUS_FAILED = "failed"

# Meta keys: the write generation (raised by every change to the set of vectors) and the
# random id a library gets once, when it is created.
GENERATION = "generation"
LIBRARY_ID = "library_id"

# Ids bound into one ``IN (...)`` clause: SQLite builds older than 3.32 refuse more than 999 parameters.
PARAMS_PER_STATEMENT = 900
# How long SQLite waits for another connection's lock before it answers "database is locked".
BUSY_TIMEOUT_S = 30.0

# SQLite primary result codes that describe the user's environment (qutebrowser's sql.py makes
# the same split); any other code is a bug and keeps its traceback.
_DAMAGED = {sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB}
_BUSY = {sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED}
_ENVIRONMENT = {sqlite3.SQLITE_IOERR, sqlite3.SQLITE_FULL, sqlite3.SQLITE_CANTOPEN, sqlite3.SQLITE_PERM,
                sqlite3.SQLITE_PROTOCOL, sqlite3.SQLITE_NOLFS}


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
    """A model the library knows: the one that made its vectors, and at most one ``pending`` model that a
    switch is re-embedding the library with (:class:`StagedVectorRow`); it becomes the library's model
    only when the switch commits."""

    __tablename__ = "models"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String)
    version: Mapped[str] = mapped_column(String)
    dim: Mapped[int] = mapped_column(Integer)
    checksum: Mapped[str] = mapped_column(String)
    which: Mapped[str] = mapped_column(String)
    source: Mapped[str] = mapped_column(String)
    created_at: Mapped[float] = mapped_column(Float)
    pending: Mapped[bool] = mapped_column(Boolean, default=False, server_default="0")


# A half-precision blob ends with this byte, which makes its length odd: a float32 blob's length is a
# multiple of four, so the two never look alike.
HALF_TAG = b"\x10"


def vector_blob(vector: np.ndarray) -> bytes:
    """A raw vector as the database keeps it: half precision where every value fits, else float32.

    Half precision halves the library's largest table (2,023 values: 4 KB an image instead of 8) and changes
    no result: on the validation sources and the benchmark every P@1 and mAP of the default was the same to
    four decimals, and a finished vector moved by at most 1e-4 (resources/models/MODEL.md, "Contrast
    patterns and a shorter whitening"). A model whose raw values overflow it (style codes beyond 65,504)
    keeps float32.
    """
    full = np.ascontiguousarray(vector, dtype=np.float32)
    with np.errstate(over="ignore"):
        half = full.astype(np.float16)
    if not np.isfinite(half).all() and np.isfinite(full).all():
        return full.tobytes()
    return half.tobytes() + HALF_TAG


def vector_from_blob(data: bytes) -> np.ndarray:
    """The float32 raw vector a blob of :func:`vector_blob` (or of a library before schema 5) holds."""
    if len(data) % 2 and data[-1:] == HALF_TAG:
        return np.frombuffer(data, dtype=np.float16, count=(len(data) - 1) // 2).astype(np.float32)
    return np.frombuffer(data, dtype=np.float32)


class VectorRow(Base):
    """A raw vector (:func:`vector_blob`). ``seq`` is the write generation, so a cache can fetch only what is newer."""

    __tablename__ = "vectors"
    __table_args__ = (Index("ix_vectors_seq", "seq"),)

    image_id: Mapped[int] = mapped_column(ForeignKey("images.id", ondelete="CASCADE"), primary_key=True)
    model_id: Mapped[int] = mapped_column(ForeignKey("models.id", ondelete="CASCADE"))
    seq: Mapped[int] = mapped_column(Integer)
    data: Mapped[bytes] = mapped_column(LargeBinary)


class StagedVectorRow(Base):
    """An image's raw vector from the pending model.

    Apart from :class:`VectorRow` so that search never sees it: the library keeps searching its
    current vectors until the switch has embedded every image, then one transaction swaps them in.
    """

    __tablename__ = "staged_vectors"

    image_id: Mapped[int] = mapped_column(ForeignKey("images.id", ondelete="CASCADE"), primary_key=True)
    model_id: Mapped[int] = mapped_column(ForeignKey("models.id", ondelete="CASCADE"))
    data: Mapped[bytes] = mapped_column(LargeBinary)


class MetaRow(Base):
    """Key/value pairs: :data:`GENERATION` and :data:`LIBRARY_ID`."""

    __tablename__ = "meta"

    key: Mapped[str] = mapped_column(String, primary_key=True)
    value: Mapped[str] = mapped_column(String)


class GenerationRow(Base):
    """A random token per generation: (library id, generation, token) names one exact state of the vectors.

    A database restored from a backup counts the same generation numbers again, but with
    new tokens, so a cache built from a state the database no longer has cannot pass for it.
    """

    __tablename__ = "generations"

    generation: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    token: Mapped[str] = mapped_column(String)


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


def _upgrade_1_to_2(conn: Connection) -> None:
    """Version 2 added saved moodboards."""
    Base.metadata.create_all(conn, tables=[MoodboardRow.__table__, MoodboardItemRow.__table__])


def _upgrade_2_to_3(conn: Connection) -> None:
    """Version 3 named the library and each generation, so an index cache can prove which database
    state it was built from (a cache written before has no such name and is rebuilt once)."""
    Base.metadata.create_all(conn, tables=[GenerationRow.__table__])
    _name_library(conn)


def _upgrade_3_to_4(conn: Connection) -> None:
    """Version 4 made a model switch safe to interrupt: the next model's vectors are staged beside the
    current ones (every existing model row is the library's own, so none is pending). Like ``create_all``,
    it adds only what is missing."""
    if "pending" not in {row[1] for row in conn.exec_driver_sql("PRAGMA table_info(models)")}:
        conn.exec_driver_sql("ALTER TABLE models ADD COLUMN pending BOOLEAN NOT NULL DEFAULT 0")
    Base.metadata.create_all(conn, tables=[StagedVectorRow.__table__])


def _upgrade_4_to_5(conn: Connection) -> None:
    """Version 5 writes raw vectors in half precision; the float32 ones already there stay as they are (a
    model switch rewrites them all) and the tables do not change. The number moves so that an older
    program, which would read a half-precision blob as float32, refuses the library instead."""


UPGRADES: dict[int, Callable[[Connection], None]] = {1: _upgrade_1_to_2, 2: _upgrade_2_to_3, 3: _upgrade_3_to_4,
                                                     4: _upgrade_4_to_5}


def connect(db: Path, *, read_only: bool = False) -> Engine:
    """An engine on the database file ``db``, brought to :data:`SCHEMA_VERSION`.

    Whichever query later meets an SQLite error of the environment raises it as a
    :mod:`core.errors` type (see :func:`_known_error`), so every caller, CLI or GUI, shows one line.

    Args:
        db: the database file.
        read_only: open it without writing anything, not even the WAL switch (a read-only
            folder or file); SQLite then refuses every write as :class:`LibraryReadOnlyError`.

    Raises:
        LibraryDamagedError: the file is not a readable SQLite database.
        LibraryBusyError: another process held SQLite's lock for :data:`BUSY_TIMEOUT_S`.
        LibraryReadOnlyError: ``read_only`` and the file holds no library yet, or an older schema.
        LibraryError: another program's database, one a newer aladin wrote, or a file that cannot be opened.
    """
    target = _uri(db, _read_only_mode(db)) if read_only else str(db)
    engine = create_engine(f"sqlite:///{db}", creator=lambda: sqlite3.connect(
        target, uri=read_only, timeout=BUSY_TIMEOUT_S, check_same_thread=False))
    event.listen(engine, "connect", lambda dbapi_conn, _record: _on_connect(dbapi_conn, wal=not read_only))
    event.listen(engine, "handle_error", _known_error(db))
    try:
        _migrate(engine, db, read_only)
    except BaseException:
        engine.dispose()
        raise
    return engine


def generation(db: Session | Connection) -> int:
    """The library's write generation."""
    value = db.scalar(select(MetaRow.value).where(MetaRow.key == GENERATION))
    return int(value) if value is not None else 0


def new_token() -> str:
    """A generation's token: random, so no two database states ever share one."""
    return secrets.token_hex(16)


def start_history(conn: Connection) -> None:
    """Forget every generation's token and give the current generation a new one.

    A new library gets its first token here; a repaired one starts over, so that
    no index cache built before the repair can patch itself forward.
    """
    conn.execute(delete(GenerationRow))
    conn.execute(insert(GenerationRow).values(generation=generation(conn), token=new_token()))


def damaged_error(db: Path, what: str) -> LibraryDamagedError:
    """The message for a damaged database: what is wrong, and the way out."""
    return LibraryDamagedError(f"the library database {db} {what}; `aladin repair --library {db.parent}` "
                               "recovers what is readable into a new database and keeps the damaged file beside it")


def read_only_error(folder: Path) -> LibraryReadOnlyError:
    """The message for any change refused because the library is read-only."""
    return LibraryReadOnlyError(f"the library {folder} is read-only: it can be searched, but indexing, removing "
                                "folders and changing moodboards need write access to the folder and its files")


def in_chunks(items: list, n: int = PARAMS_PER_STATEMENT) -> Iterator[list]:
    """``items`` in slices short enough to bind into one statement."""
    for i in range(0, len(items), n):
        yield items[i:i + n]


def _on_connect(dbapi_conn, *, wal: bool) -> None:
    """WAL lets readers run beside the writer; NORMAL sync is still safe against a killed process."""
    cur = dbapi_conn.cursor()
    if wal:
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.close()


def _read_only_mode(db: Path) -> str:
    """How SQLite opens a read-only library.

    It reads a WAL database through a ``-shm`` file it creates beside it. In a folder
    it cannot write, with no ``-wal`` file (no writer is mid-way; the library was closed
    cleanly), the only way in is to open the file as immutable: SQLite then takes no
    locks, so a writer elsewhere that starts later is seen only when the library is
    opened again.
    """
    if not os.access(db.parent, os.W_OK) and not Path(f"{db}-wal").exists():
        return "immutable=1"
    return "mode=ro"


def _uri(db: Path, query: str) -> str:
    """``db`` as an SQLite URI: absolute and percent-encoded; a Windows drive or share path keeps its form."""
    path = quote(db.absolute().as_posix(), safe="/:")
    return f"file://{'' if path.startswith('/') else '/'}{path}?{query}"


def _known_error(db: Path) -> Callable[[ExceptionContext], LibraryError | None]:
    """A ``handle_error`` hook: SQLite errors of the environment become :mod:`core.errors` types."""

    def translate(context: ExceptionContext) -> LibraryError | None:
        exc = context.original_exception
        code = getattr(exc, "sqlite_errorcode", None)
        if code is None:
            return None
        if code & 0xFF in _DAMAGED:
            return damaged_error(db, f"is damaged ({exc})")
        if code & 0xFF in _BUSY:
            return LibraryBusyError(f"the library {db.parent} is busy: another process is writing to it ({exc}); "
                                    "try again when it has finished")
        if code == sqlite3.SQLITE_READONLY_DBMOVED:
            return LibraryError(f"the library database {db} was moved or replaced while open; open the library again")
        if code & 0xFF == sqlite3.SQLITE_READONLY:
            return read_only_error(db.parent)
        if code & 0xFF in _ENVIRONMENT:
            return LibraryError(f"cannot use the library database {db}: {exc}")
        return None

    return translate


def _migrate(engine: Engine, db: Path, read_only: bool) -> None:
    """Create or upgrade the library in ``db``; a current one is only read, so a read-only one opens too."""
    with engine.connect() as conn:
        version = _version(conn, db)
    if version == SCHEMA_VERSION:
        return
    if read_only:
        need = "holds no library yet" if version == 0 else f"needs an upgrade from schema {version}"
        raise LibraryReadOnlyError(f"the library {db.parent} is read-only and {need}; open it once with write access")
    with engine.connect() as conn:
        # Another process may be creating or upgrading the library right now: take the write lock, then look again.
        conn.exec_driver_sql("BEGIN IMMEDIATE")
        version = _version(conn, db)
        if version == 0:
            Base.metadata.create_all(conn)
            _name_library(conn)
        else:
            for step in range(version, SCHEMA_VERSION):
                UPGRADES[step](conn)
        conn.execute(text(f"PRAGMA user_version={SCHEMA_VERSION}"))
        conn.commit()


def _version(conn: Connection, db: Path) -> int:
    """The file's schema version (0: no library yet).

    Raises:
        LibraryError: another program's database, or one a newer aladin wrote.
    """
    version = conn.execute(text("PRAGMA user_version")).scalar() or 0
    if version > SCHEMA_VERSION:
        raise LibraryError(f"the library {db} was written by a newer version of aladin "
                           f"(schema {version}; this version reads up to {SCHEMA_VERSION})")
    if version == 0 and conn.execute(text("SELECT count(*) FROM sqlite_master WHERE type='table'")).scalar():
        raise LibraryError(f"{db} is not an aladin library database")
    return version


def _name_library(conn: Connection) -> None:
    """Give a new (or newly upgraded) library its id, and its current generation a token."""
    conn.execute(insert(MetaRow).values(key=LIBRARY_ID, value=uuid.uuid4().hex))
    start_history(conn)
