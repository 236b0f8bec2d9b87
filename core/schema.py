"""The library database's tables, its schema version and the steps that upgrade an older one.

Only the store (:mod:`core.library` and :mod:`core.writer`) imports this module:
a schema change touches the tables here and the queries there, nothing else.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

from sqlalchemy import (Boolean, Connection, Engine, Float, ForeignKey, Index, Integer, LargeBinary, String,
                        UniqueConstraint, create_engine, event, text)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from core.errors import LibraryError

# Schema history. A fresh library gets every table at once and the latest number;
# an older library runs each upgrade step from its own version up.
#   1: roots, images, models, vectors, meta.
#   2: saved moodboards.
SCHEMA_VERSION = 2

STATUS_OK = "ok"
STATUS_FAILED = "failed"

# Ids bound into one ``IN (...)`` clause: SQLite builds older than 3.32 refuse more than 999 parameters.
PARAMS_PER_STATEMENT = 900


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
    """Key/value pairs; ``generation`` is raised by every change to the set of vectors."""

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


def _upgrade_1_to_2(conn: Connection) -> None:
    """Version 2 added saved moodboards."""
    Base.metadata.create_all(conn, tables=[MoodboardRow.__table__, MoodboardItemRow.__table__])


UPGRADES: dict[int, Callable[[Connection], None]] = {1: _upgrade_1_to_2}


def connect(db: Path) -> Engine:
    """An engine on the database file ``db``, brought to :data:`SCHEMA_VERSION`.

    Raises:
        LibraryError: the file is another program's database, or a newer aladin wrote it.
        sqlalchemy.exc.DatabaseError: the file is not a readable SQLite database.
    """
    engine = create_engine(f"sqlite:///{db}", connect_args={"timeout": 30, "check_same_thread": False})
    event.listen(engine, "connect", _on_connect)
    try:
        _migrate(engine, db)
    except BaseException:
        engine.dispose()
        raise
    return engine


def in_chunks(items: list, n: int = PARAMS_PER_STATEMENT) -> Iterator[list]:
    """``items`` in slices short enough to bind into one statement."""
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
