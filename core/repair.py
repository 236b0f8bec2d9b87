"""``aladin repair``: copy what is readable from a damaged library database into a new one.

SQLite notices a damaged page only when a query reaches it, so a library with a
few bad pages fails some commands and not others. The repair:

1. checks the file with ``PRAGMA integrity_check``; a healthy database is left alone;
2. creates a new database with the current schema and copies each table into it,
   parents first: a scan in rowid order, and where a damaged page stops the scan,
   one lookup per rowid until rows read again;
3. drops what lost its parent row as the foreign keys say (a vector whose image
   row is gone is deleted; a moodboard entry keeps its path and loses its image id);
4. starts a new generation history, so no index cache built before is patched forward;
5. keeps the damaged file beside the new one as ``library.sqlite.damaged-<time>``
   and moves the new one into place.

Nothing that is lost is beyond recovery by indexing again: vectors are computed
from the images (an image without its vector is embedded at the next ``aladin
index``), and a lost image row is found again as a new file. Lost folders and
moodboards must be added again.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import shutil
import sqlite3
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import Connection, Table, and_, delete, func, insert, select, update

from core.errors import LibraryError
from core.files import TEMP_SUFFIX
from core.index_cache import remove_cache
from core.library import DB_NAME, default_library_dir, writable, writer_lock
from core.schema import (GENERATION, SCHEMA_VERSION, STATUS_OK, Base, GenerationRow, ImageRow, MetaRow, VectorRow,
                         connect, generation, read_only_error, start_history)

# Rows inserted into the new database per statement.
COPY_BATCH = 1000
# SQLite's companion files of a database: its write-ahead log and that log's index.
WAL, SHM = "-wal", "-shm"


@dataclass
class TableRepair:
    """One table's outcome: rows in the new database, and rows lost (None: the damage hides how many)."""

    name: str
    recovered: int
    lost: int | None


@dataclass
class RepairReport:
    """What :func:`repair` found and did.

    Attributes:
        database: the library database.
        problems: what the integrity check found; empty when the database was healthy and left alone.
        tables: each table copied.
        kept: where the damaged file now lies; None when nothing was changed.
        reembed: images left without a vector, which the next index run embeds again.
    """

    database: Path
    problems: list[str]
    tables: list[TableRepair]
    kept: Path | None = None
    reembed: int = 0


def repair(folder: Path | str | None = None) -> RepairReport:
    """Check the library in ``folder`` and, when it is damaged, replace its database with what is readable.

    Runs under the single-writer lock, so no indexer writes meanwhile; close the app
    first, since its open database would still be the damaged file.

    Raises:
        LibraryError: there is no library database in ``folder``, or a newer aladin wrote it.
        LibraryReadOnlyError: the folder or the database cannot be written.
        LibraryBusyError: another process is writing to the library.
    """
    folder = Path(folder) if folder is not None else default_library_dir()
    db = folder / DB_NAME
    if not db.is_file():
        raise LibraryError(f"there is no library database at {db}")
    if not writable(folder):
        raise read_only_error(folder)
    with writer_lock(folder):
        problems = _check(db)
        if not problems:
            return RepairReport(db, [], [])
        new = folder / f".{DB_NAME}.repair{TEMP_SUFFIX}"
        _remove_database(new)  # a killed repair's leftover
        try:
            tables, reembed = _copy_readable(db, new)
            kept = _keep_aside(db)
            os.replace(new, db)
        finally:
            _remove_database(new)
        remove_cache(folder)
    return RepairReport(db, problems, tables, kept, reembed)


def _check(db: Path) -> list[str]:
    """What is wrong with ``db``: ``PRAGMA integrity_check``'s findings ([] when it is healthy)."""
    if db.stat().st_size == 0:
        return ["the file is empty (0 bytes)"]
    try:
        with contextlib.closing(sqlite3.connect(db)) as con:
            found = "\n".join(row[0] for row in con.execute("PRAGMA integrity_check"))
    except sqlite3.DatabaseError as exc:
        return [str(exc)]
    lines = [line for line in found.splitlines() if line and not line.startswith("***")]
    return [] if lines == ["ok"] else lines


def _copy_readable(db: Path, new: Path) -> tuple[list[TableRepair], int]:
    """Build ``new`` from what ``db`` lets read; returns each table's outcome and the images without a vector."""
    engine = connect(new)  # the current schema, with a library id that the old one replaces if it is readable
    try:
        with engine.connect() as conn, contextlib.closing(sqlite3.connect(db)) as src:
            # Before the transaction, where the pragma takes effect: parents may be lost, so
            # orphans are dropped after the copy instead of failing it.
            _refuse_newer(src, db)
            conn.exec_driver_sql("PRAGMA foreign_keys=OFF")
            conn.exec_driver_sql("BEGIN")
            bound = _highest_rowid(src)
            held = {table: _copy_table(src, conn, table, bound) for table in Base.metadata.sorted_tables
                    if table is not GenerationRow.__table__}
            _drop_orphans(conn)
            reached = max(generation(conn), conn.scalar(select(func.max(VectorRow.seq))) or 0)
            conn.execute(insert(MetaRow).prefix_with("OR REPLACE").values(key=GENERATION, value=str(reached)))
            start_history(conn)
            tables = [_outcome(conn, table, rows) for table, rows in held.items()
                      if table is not MetaRow.__table__ and rows != 0]
            reembed = conn.scalar(select(func.count()).select_from(ImageRow)
                                  .outerjoin(VectorRow, VectorRow.image_id == ImageRow.id)
                                  .where(ImageRow.status == STATUS_OK, VectorRow.image_id.is_(None)))
            conn.commit()
            # One self-contained file to move into place: no -wal file left beside it.
            conn.exec_driver_sql("PRAGMA journal_mode=DELETE")
    finally:
        engine.dispose()
    return tables, int(reembed or 0)


def _refuse_newer(src: sqlite3.Connection, db: Path) -> None:
    """A newer aladin's tables would lose what this version does not know: leave that file to that version.

    Raises:
        LibraryError: the damaged file says a newer schema wrote it.
    """
    with contextlib.suppress(sqlite3.DatabaseError):
        version = src.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise LibraryError(f"the library {db} was written by a newer version of aladin (schema {version}); "
                               "repair it with that version")


def _copy_table(src: sqlite3.Connection, conn: Connection, table: Table, bound: int) -> int | None:
    """Copy every readable row of ``table`` (the columns both schemas have).

    Returns:
        How many rows the damaged table held: 0 also when an older schema has no such
        table, None when the damage hides the number.
    """
    try:
        old = {row[1] for row in src.execute(f'PRAGMA table_info("{table.name}")')}
    except sqlite3.DatabaseError:
        return None
    columns = [c.name for c in table.columns if c.name in old]
    if not columns:
        return 0
    reader = _TableReader(src, table.name, columns, bound)
    rows = iter(reader)
    read = 0
    while batch := [dict(zip(columns, row)) for row in itertools.islice(rows, COPY_BATCH)]:
        conn.execute(insert(table).prefix_with("OR REPLACE"), batch)
        read += len(batch)
    return _count(src, table.name) if reader.damaged else read


class _TableReader:
    """Every readable row of one table: a scan in rowid order, and one lookup per rowid across damaged pages.

    Args:
        src: the damaged database.
        name: the table.
        columns: the columns to read.
        bound: the highest rowid worth looking up.
    """

    def __init__(self, src: sqlite3.Connection, name: str, columns: list[str], bound: int) -> None:
        listed = ", ".join(f'"{c}"' for c in columns)
        self._src = src
        self._scan = f'SELECT rowid, {listed} FROM "{name}" WHERE rowid > ? ORDER BY rowid'
        self._one = f'SELECT rowid, {listed} FROM "{name}" WHERE rowid = ?'
        self._bound = bound
        self.damaged = False

    def __iter__(self) -> Iterator[tuple]:
        after = 0  # every table here counts its rowids from 1
        while True:
            try:
                for row in self._src.execute(self._scan, (after,)):
                    after = row[0]
                    yield row[1:]
                return
            except sqlite3.DatabaseError:
                self.damaged = True
            found = self._step_over(after)
            if found is None:
                return
            after = found[0]
            yield found[1:]

    def _step_over(self, after: int) -> tuple | None:
        """The first row after rowid ``after`` that reads, looked up one rowid at a time."""
        for rowid in range(after + 1, self._bound + 1):
            try:
                row = self._src.execute(self._one, (rowid,)).fetchone()
            except sqlite3.DatabaseError:
                continue
            if row is not None:
                return row
        return None


def _highest_rowid(src: sqlite3.Connection) -> int:
    """How far row-by-row reading must look: the highest rowid any readable table or AUTOINCREMENT counter reaches."""
    best = 0
    for sql in ("SELECT max(seq) FROM sqlite_sequence",
                *(f'SELECT max(rowid) FROM "{table.name}"' for table in Base.metadata.sorted_tables)):
        with contextlib.suppress(sqlite3.DatabaseError):
            best = max(best, src.execute(sql).fetchone()[0] or 0)
    return best


def _count(src: sqlite3.Connection, name: str) -> int | None:
    """The table's row count if the damage lets it be read (SQLite may count through an intact index)."""
    try:
        return src.execute(f'SELECT count(*) FROM "{name}"').fetchone()[0]
    except sqlite3.DatabaseError:
        return None


def _drop_orphans(conn: Connection) -> None:
    """Rows whose parent row was lost go as their foreign key says: deleted, or unlinked (SET NULL).

    Parents come first, so a lost root takes its images along, and their vectors after them.
    """
    for table in Base.metadata.sorted_tables:
        for fk in table.foreign_keys:
            orphan = and_(fk.parent.is_not(None), fk.parent.not_in(select(fk.column)))
            if fk.ondelete == "SET NULL":
                conn.execute(update(table).where(orphan).values({fk.parent.name: None}))
            else:
                conn.execute(delete(table).where(orphan))


def _outcome(conn: Connection, table: Table, held: int | None) -> TableRepair:
    recovered = conn.scalar(select(func.count()).select_from(table)) or 0
    return TableRepair(table.name, recovered, None if held is None else max(held - recovered, 0))


def _keep_aside(db: Path) -> Path:
    """Keep the damaged file as ``<name>.damaged-<time>`` beside it, with the part of its write-ahead
    log that closing it could not write back.

    A hard link keeps the file under its old name too until the new database replaces it,
    so a crash in between still leaves a library; a filesystem without links gets a copy.
    """
    stamp = time.strftime("%Y%m%d-%H%M%S")
    aside = db.with_name(f"{db.name}.damaged-{stamp}")
    n = 1
    while aside.exists():
        n += 1
        aside = db.with_name(f"{db.name}.damaged-{stamp}-{n}")
    try:
        os.link(db, aside)
    except OSError:
        shutil.copy2(db, aside)
    wal = Path(f"{db}{WAL}")
    if wal.exists():
        os.replace(wal, f"{aside}{WAL}")
    with contextlib.suppress(FileNotFoundError):
        Path(f"{db}{SHM}").unlink()
    return aside


def _remove_database(path: Path) -> None:
    for name in (str(path), f"{path}{WAL}", f"{path}{SHM}", f"{path}-journal"):
        with contextlib.suppress(FileNotFoundError):
            os.unlink(name)
