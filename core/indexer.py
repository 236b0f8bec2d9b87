"""Incremental, crash-safe indexing of art folders into a library.

A run is mark and sweep: scan the roots, compare each file's size and mtime with
the database, hash only files that are new or changed (and only when the hash
can spare an embedding), then embed the rest batch by batch. Each batch commits
its image rows and vectors in one transaction, so a run killed at any moment
leaves a consistent library and the next run embeds only what was not committed.

The job is a generator of :class:`IndexProgress`; the CLI drives it with a
progress bar, the GUI from a worker thread with a cancel flag.
"""

from __future__ import annotations

import logging
import os
import time
from collections import defaultdict
from collections.abc import Callable, Generator, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from sqlalchemy import delete, func, select, update
from sqlalchemy.exc import OperationalError

from core.embedder import Embedder
from core.errors import LibraryError, ModelMismatchError
from core.index import IndexCache, fingerprint
from core.library import (STATUS_FAILED, STATUS_OK, Failure, ImageRow, Library, ModelRow, RootRow, VectorRow,
                          bump_generation, delete_images)
from core.scan import FileEntry, content_hash, scan

log = logging.getLogger(__name__)

SCAN_REPORT_EVERY = 500
# Share of the per-image CPU work that is decoding when the model also runs on the CPU
# (0.07-0.09 s decode vs 0.33-0.35 s model per image at 256 px; bench/index_throughput.py).
CPU_DECODE_SHARE = 0.2


def cpu_split(workers: int | None = None, cores: int | None = None) -> tuple[int, int]:
    """(decode workers, torch threads) that share the cores when the model runs on the CPU.

    Giving torch every core while decoders run beside it oversubscribes them, and
    OpenMP threads that wait for a descheduled sibling stall: on two busy cores,
    one decoder plus one torch thread indexed 3.5 images/s, one decoder plus two
    torch threads 2.0.
    """
    cores = cores or os.cpu_count() or 2
    if workers is None:
        workers = max(1, round(cores * CPU_DECODE_SHARE))
    return workers, max(1, cores - workers)


@dataclass
class IndexSummary:
    added: int = 0
    updated: int = 0
    moved: int = 0
    removed: int = 0
    failed: int = 0
    unchanged: int = 0
    embedded: int = 0
    seconds: float = 0.0
    cancelled: bool = False
    failures: list[Failure] = field(default_factory=list)
    missing_roots: list[str] = field(default_factory=list)


@dataclass
class IndexProgress:
    phase: str  # "scan" | "hash" | "embed" | "index" | "done"
    done: int
    total: int
    rate: float = 0.0
    eta_s: float | None = None
    current: str | None = None
    summary: IndexSummary | None = None


@dataclass
class _Work:
    """A file that needs a vector: new, changed, or left without one by a model switch."""

    path: str
    root_id: int
    relpath: str
    size: int
    mtime_ns: int
    image_id: int | None
    digest: str | None
    is_new: bool


@dataclass
class _Scan:
    root_id: int
    root_path: str
    entries: list[FileEntry]


@dataclass
class _Known:
    id: int
    size: int
    mtime_ns: int
    digest: str | None
    status: str
    has_vector: bool


def index_folders(library: Library, folders: Iterable[Path | str], embedder: Embedder,
                  cancel: Callable[[], bool] | None = None, *, switch_model: bool = False,
                  batch_size: int = 32, workers: int | None = None) -> Generator[IndexProgress, None, IndexSummary]:
    """Add ``folders`` as roots and bring them up to date; no folders rescans every root.

    Raises:
        LibraryBusyError: another process is writing to the library.
        ModelMismatchError: the library holds another model's vectors and ``switch_model`` is False.
    """
    cancel = cancel or (lambda: False)
    start = time.monotonic()
    summary = IndexSummary()
    try:
        with library.writer():
            _ensure_model(library, embedder, switch_model)
            roots = _resolve_roots(library, [Path(f) for f in folders])
            scans: list[_Scan] = []
            for root in roots:
                if not Path(root.path).is_dir():
                    # An unplugged drive must not empty the library: leave its images alone.
                    log.warning("root %s is missing; its images are kept until it is back or removed", root.path)
                    summary.missing_roots.append(root.path)
                    continue
                scans.append(_Scan(root.id, root.path, []))
                for entry in scan(root.path):
                    scans[-1].entries.append(entry)
                    found = sum(len(x.entries) for x in scans)
                    if found % SCAN_REPORT_EVERY == 0:
                        yield IndexProgress("scan", found, 0, current=entry.relpath)
                        if cancel():
                            summary.cancelled = True
                            break
                if summary.cancelled:
                    break
            if not summary.cancelled:
                found = sum(len(x.entries) for x in scans)
                yield IndexProgress("scan", found, found)
                work = yield from _reconcile(library, scans, summary)
                if work:
                    yield from _embed(library, embedder, work, summary, cancel, batch_size, workers)
            if not summary.cancelled:
                yield IndexProgress("index", 0, 1)
                IndexCache(library, embedder.finish, fingerprint(embedder), embedder.dim).save()
    except OperationalError as exc:
        # A full disk or an I/O error: the open batch is rolled back, committed ones stay.
        raise LibraryError(f"cannot write to the library {library.folder}: {exc.orig}") from exc
    summary.seconds = time.monotonic() - start
    yield IndexProgress("done", 1, 1, summary=summary)
    return summary


def _ensure_model(library: Library, embedder: Embedder, switch_model: bool) -> None:
    """Record the model on first use; a different model re-embeds only when asked to."""
    model = embedder.model
    record = library.model_record()
    if record is not None and record.checksum == model.checksum and record.which == embedder.which:
        return
    with library.session.begin() as s:
        if record is not None:
            count = s.scalar(select(func.count()).select_from(VectorRow))
            if not switch_model:
                raise ModelMismatchError(
                    f"this library was indexed with model {record.name!r} ({record.which}); indexing with "
                    f"{model.info.name!r} ({embedder.which}) would re-embed all {count} images. "
                    "Pass --switch-model to do that")
            log.warning("switching the library from model %s to %s; %d vectors dropped", record.name,
                        model.info.name, count)
            s.execute(delete(VectorRow))
            s.execute(delete(ModelRow))
            bump_generation(s)
        s.add(ModelRow(name=model.info.name, version=str(model.info.version), dim=embedder.dim,
                       checksum=model.checksum, which=embedder.which, source=model.source, created_at=time.time()))


def _resolve_roots(library: Library, folders: list[Path]) -> list:
    """The roots to rescan. A folder inside a root rescans that root; a folder above roots adopts them."""
    if not folders:
        return library.roots()
    chosen = {}
    for folder in folders:
        folder = folder.resolve()
        if not folder.is_dir():
            raise LibraryError(f"{folder}: no such folder")
        existing = library.roots()
        parent = next((r for r in existing if folder.is_relative_to(r.path)), None)
        if parent is not None:
            chosen[parent.id] = parent
            continue
        root = library.add_root(folder)
        _adopt(library, root, [r for r in existing if Path(r.path).is_relative_to(folder)])
        chosen[root.id] = root
    return list(chosen.values())


def _adopt(library: Library, root, inner: list) -> None:
    """Move images of roots nested in a new root under it, keeping their ids and vectors."""
    if not inner:
        return
    with library.session.begin() as s:
        for old in inner:
            prefix = Path(old.path).relative_to(root.path).as_posix() + "/"
            for image in s.scalars(select(ImageRow).where(ImageRow.root_id == old.id)):
                image.root_id = root.id
                image.relpath = prefix + image.relpath
            s.flush()
            s.execute(delete(RootRow).where(RootRow.id == old.id))


def _reconcile(library: Library, scans: list[_Scan],
               summary: IndexSummary) -> Generator[IndexProgress, None, list[_Work]]:
    """Compare scans with the database; apply moves, touches and deletions in one transaction.

    All scanned roots are reconciled together, so a file moved from one root to
    another is recognised too. Returns the files that still need embedding.
    """
    root_paths = {x.root_id: x.root_path for x in scans}
    with library.session() as s:
        rows = s.execute(select(ImageRow.id, ImageRow.root_id, ImageRow.relpath, ImageRow.size, ImageRow.mtime_ns,
                                ImageRow.content_hash, ImageRow.status, VectorRow.image_id)
                         .outerjoin(VectorRow, VectorRow.image_id == ImageRow.id)
                         .where(ImageRow.root_id.in_(list(root_paths)))).all()
        # Sizes of every vector in the library: a new file can only be a copy or a move of one of those.
        vector_sizes = set(s.scalars(select(ImageRow.size).join(VectorRow, VectorRow.image_id == ImageRow.id)))
    known = {(root_id, rel): _Known(i, size, mtime, digest, status, vid is not None)
             for i, root_id, rel, size, mtime, digest, status, vid in rows}
    seen = {(x.root_id, e.relpath) for x in scans for e in x.entries}
    missing = [k for key, k in known.items() if key not in seen]
    missing_sizes = {k.size for k in missing}

    work: list[_Work] = []
    to_hash: list[tuple[_Work, _Known | None]] = []
    for x in scans:
        for entry in x.entries:
            k = known.get((x.root_id, entry.relpath))
            item = _Work(str(Path(x.root_path) / entry.relpath), x.root_id, entry.relpath, entry.size,
                         entry.mtime_ns, k.id if k else None, k.digest if k else None, is_new=k is None)
            if k is not None and k.size == entry.size and k.mtime_ns == entry.mtime_ns:
                if k.status == STATUS_FAILED or k.has_vector:
                    summary.unchanged += 1
                else:
                    work.append(item)  # left without a vector by a model switch
            elif k is not None or entry.size in missing_sizes or entry.size in vector_sizes:
                to_hash.append((item, k))
            else:
                work.append(item)

    digests: list[str | None] = []
    if to_hash:
        t0 = time.monotonic()
        with ThreadPoolExecutor(max_workers=4) as pool:
            for i, digest in enumerate(pool.map(_safe_hash, [w.path for w, _ in to_hash])):
                digests.append(digest)
                if (i + 1) % 100 == 0:
                    rate = (i + 1) / max(time.monotonic() - t0, 1e-6)
                    yield IndexProgress("hash", i + 1, len(to_hash), rate, (len(to_hash) - i - 1) / rate)

    missing_by_hash: dict[str, list[_Known]] = defaultdict(list)
    for k in missing:
        if k.digest:
            missing_by_hash[k.digest].append(k)
    moves: list[tuple[int, _Work]] = []
    touches: list[tuple[int, _Work]] = []
    copies: list[_Work] = []
    for (item, k), digest in zip(to_hash, digests):
        item.digest = digest
        if k is not None:
            if digest is not None and digest == k.digest and (k.has_vector or k.status == STATUS_FAILED):
                touches.append((k.id, item))
                summary.unchanged += 1
            else:
                work.append(item)
        elif digest is not None and missing_by_hash.get(digest):
            moves.append((missing_by_hash[digest].pop().id, item))
        elif digest is not None:
            copies.append(item)
        else:
            work.append(item)

    moved_ids = {i for i, _ in moves}
    gone = [k.id for k in missing if k.id not in moved_ids]
    now = time.time()
    with library.session.begin() as s:
        for image_id, item in moves + touches:
            s.execute(update(ImageRow).where(ImageRow.id == image_id).values(
                root_id=item.root_id, relpath=item.relpath, size=item.size, mtime_ns=item.mtime_ns, updated_at=now))
        copied = _copy_vectors(s, copies, now)
        work += [item for item in copies if item.path not in copied]
        delete_images(s, gone)
        if gone or copied:
            bump_generation(s)
    summary.moved += len(moves)
    summary.removed += len(gone)
    summary.added += len(copied)
    return work


def _copy_vectors(s, copies: list[_Work], now: float) -> set[str]:
    """A new file byte-identical to an indexed one gets a copy of its vector instead of an embedding."""
    if not copies:
        return set()
    hashes = sorted({w.digest for w in copies})
    source = {}
    for part in range(0, len(hashes), 900):
        for digest, width, height, model_id, data in s.execute(
                select(ImageRow.content_hash, ImageRow.width, ImageRow.height, VectorRow.model_id, VectorRow.data)
                .join(VectorRow, VectorRow.image_id == ImageRow.id)
                .where(ImageRow.content_hash.in_(hashes[part:part + 900]))):
            source[digest] = (width, height, model_id, data)
    if not source:
        return set()
    seq = bump_generation(s)
    done = set()
    for item in copies:
        if item.digest not in source:
            continue
        width, height, model_id, data = source[item.digest]
        row = ImageRow(root_id=item.root_id, relpath=item.relpath, size=item.size, mtime_ns=item.mtime_ns,
                       content_hash=item.digest, width=width, height=height, status=STATUS_OK, added_at=now,
                       updated_at=now)
        s.add(row)
        s.flush()
        s.add(VectorRow(image_id=row.id, model_id=model_id, seq=seq, data=data))
        done.add(item.path)
    return done


def _safe_hash(path: str) -> str | None:
    try:
        return content_hash(path)
    except OSError as exc:
        log.info("cannot hash %s: %s", path, exc)
        return None


def _embed(library: Library, embedder: Embedder, work: list[_Work], summary: IndexSummary,
           cancel: Callable[[], bool], batch_size: int, workers: int | None) -> Iterator[IndexProgress]:
    """Embed in batches; each batch's rows and vectors commit together."""
    model_id = library.model_record().id
    total = len(work)
    done = 0
    t0 = time.monotonic()
    yield IndexProgress("embed", 0, total)
    with ThreadPoolExecutor(max_workers=2) as hasher:
        # Files that skipped the hash phase are hashed here, beside decoding, for future move detection.
        digests = hasher.map(lambda w: w.digest or _safe_hash(w.path), work)
        chunks = embedder.embed_chunks([w.path for w in work], batch_size=batch_size, workers=workers)
        try:
            for chunk in chunks:
                n = len(chunk.paths) + len(chunk.failed)
                batch = work[done:done + n]
                batch_digests = [next(digests) for _ in batch]
                _commit_batch(library, model_id, batch, batch_digests, chunk, summary)
                done += n
                rate = done / max(time.monotonic() - t0, 1e-6)
                yield IndexProgress("embed", done, total, rate, (total - done) / rate, current=batch[-1].path)
                if cancel():
                    summary.cancelled = True
                    break
        except BrokenProcessPool as exc:
            if not cancel():
                raise LibraryError(f"an image decoding process died ({exc}); committed work is kept, "
                                   "run the command again to continue") from exc
            summary.cancelled = True
        finally:
            chunks.close()


def _commit_batch(library: Library, model_id: int, batch: list[_Work], digests: list[str | None],
                  chunk, summary: IndexSummary) -> None:
    now = time.time()
    raw_by_path = {p: (chunk.raw[i], chunk.sizes[i]) for i, p in enumerate(chunk.paths)}
    failed = {d.path: d.error for d in chunk.failed}
    with library.session.begin() as s:
        seq = bump_generation(s)
        for work, digest in zip(batch, digests):
            ok = work.path in raw_by_path
            values = dict(root_id=work.root_id, relpath=work.relpath, size=work.size, mtime_ns=work.mtime_ns,
                          content_hash=digest, status=STATUS_OK if ok else STATUS_FAILED,
                          error=None if ok else failed.get(work.path, "unknown error"), updated_at=now)
            if ok:
                values["width"], values["height"] = raw_by_path[work.path][1]
            if work.image_id is None:
                row = ImageRow(added_at=now, **values)
                s.add(row)
                s.flush()
                image_id = row.id
            else:
                image_id = work.image_id
                s.execute(update(ImageRow).where(ImageRow.id == image_id).values(**values))
                s.execute(delete(VectorRow).where(VectorRow.image_id == image_id))
            if ok:
                vector = np.ascontiguousarray(raw_by_path[work.path][0], dtype=np.float32)
                s.add(VectorRow(image_id=image_id, model_id=model_id, seq=seq, data=vector.tobytes()))
                summary.embedded += 1
                if work.is_new:
                    summary.added += 1
                else:
                    summary.updated += 1
            else:
                summary.failed += 1
                summary.failures.append(Failure(work.path, values["error"]))
