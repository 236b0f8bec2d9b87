"""Incremental, crash-safe indexing of art folders into a library.

A run is mark and sweep: scan the roots, compare each file's size and mtime with
the database, hash only files that are new or changed (and only when the hash
can spare an embedding), then embed the rest batch by batch. Each batch commits
its image rows and vectors in one transaction, so a run killed at any moment
leaves a consistent library and the next run embeds only what was not committed.
This module only plans; every write goes through the library's
:class:`core.writer.LibraryWriter`, which holds the single-writer lock.

A run with another model than the library's (``switch_model``) first re-embeds
every image with it beside the current vectors and switches in one transaction
(:meth:`core.writer.LibraryWriter.finish_switch`): search keeps working on the
current model until then, and a switch that is cancelled or killed leaves the
library on it, with the vectors made so far kept for the next try.

The job is a generator of :class:`IndexProgress`; the CLI drives it with a
progress bar, the GUI from a worker thread with a cancel flag.
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from collections.abc import Callable, Generator, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path

from core.embedder import EmbeddedChunk, Embedder
from core.errors import LibraryError, ModelMismatchError
from core.files import content_hash
from core.index_cache import IndexCache, fingerprint
from core.library import Failure, Library, Root
from core.modelfile import distinct_names
from core.scan import FileEntry, scan
from core.writer import ImageFile, KnownImage, LibraryWriter

log = logging.getLogger(__name__)

SCAN_REPORT_EVERY = 500
# The phase of a model switch's re-embedding, and the one record by which a ``switch_model`` run says the
# library now uses its model: at once when it did already or had none, else once the switch has committed.
REEMBED = "re-embedding"
SWITCHED = "switched"


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
    phase: str  # REEMBED | SWITCHED | "scan" | "hash" | "embed" | "index" | "done"
    done: int
    total: int
    rate: float = 0.0
    eta_s: float | None = None
    current: str | None = None
    summary: IndexSummary | None = None


@dataclass
class _Scan:
    root_id: int
    root_path: str
    entries: list[FileEntry]


def index_folders(library: Library, folders: Iterable[Path | str], embedder: Embedder,
                  cancel: Callable[[], bool] | None = None, *, switch_model: bool = False,
                  batch_size: int = 32, workers: int | None = None) -> Generator[IndexProgress, None, IndexSummary]:
    """Add ``folders`` as roots and bring them up to date; no folders rescans every root.

    ``workers`` is the number of decoding processes; ``None`` lets :func:`core.cpu.plan` choose.
    With ``switch_model``, a library of another model first switches to the embedder's
    (every image re-embedded beside the current vectors; see the module notes).

    Raises:
        LibraryBusyError: another process is writing to the library.
        LibraryError: a write failed (a full disk, an I/O error); committed batches stay.
        ModelMismatchError: the library holds another model's vectors and ``switch_model`` is False.
    """
    cancel = cancel or (lambda: False)
    start = time.monotonic()
    summary = IndexSummary()
    folders = _existing_folders(folders)  # before any write: a mistyped folder must leave the library as it was
    with library.writer() as writer:
        model_id = yield from _use_model(library, writer, embedder, switch_model, summary, cancel, batch_size, workers)
        if not summary.cancelled:
            yield from _index_roots(library, writer, model_id, embedder, folders, summary, cancel, batch_size, workers)
        if not summary.cancelled:
            yield IndexProgress("index", 0, 1)
            IndexCache(library, embedder.finish, fingerprint(embedder), embedder.dim).save()
    summary.seconds = time.monotonic() - start
    yield IndexProgress("done", 1, 1, summary=summary)
    return summary


def _index_roots(library: Library, writer: LibraryWriter, model_id: int, embedder: Embedder, folders: list[Path],
                 summary: IndexSummary, cancel: Callable[[], bool], batch_size: int,
                 workers: int | None) -> Iterator[IndexProgress]:
    """Scan the roots ``folders`` name (every root for none), apply what changed, embed what is new."""
    roots = _resolve_roots(library, writer, folders)
    scans: list[_Scan] = []
    found = 0
    for root in roots:
        if not Path(root.path).is_dir():
            # An unplugged drive must not empty the library: leave its images alone.
            log.warning("root %s is missing; its images are kept until it is back or removed", root.path)
            summary.missing_roots.append(root.path)
            continue
        entries: list[FileEntry] = []
        for entry in scan(root.path):
            entries.append(entry)
            found += 1
            if found % SCAN_REPORT_EVERY == 0:
                yield IndexProgress("scan", found, 0, current=entry.relpath)
                if cancel():
                    summary.cancelled = True
                    return
        if not entries and library.ids_under([root.path]):
            # An empty folder where the library has images is most often a share or drive not mounted
            # (its mount point left behind): keep them, as for a missing root, until the user removes it.
            log.warning("root %s is empty; its images are kept until files are back or it is removed", root.path)
            summary.missing_roots.append(root.path)
            continue
        scans.append(_Scan(root.id, root.path, entries))
    yield IndexProgress("scan", found, found)
    work = yield from _reconcile(writer, model_id, scans, summary)
    if work:
        yield from _embed(writer, model_id, embedder, work, summary, cancel, batch_size, workers)


def _model_fields(embedder: Embedder) -> dict:
    """What the library records about the embedder's model."""
    model = embedder.model
    return dict(name=model.info.name, version=str(model.info.version), dim=embedder.dim, checksum=model.checksum,
                which=embedder.which, source=model.source)


def _use_model(library: Library, writer: LibraryWriter, embedder: Embedder, switch_model: bool,
               summary: IndexSummary, cancel: Callable[[], bool], batch_size: int,
               workers: int | None) -> Generator[IndexProgress, None, int]:
    """The id of the embedder's model: recorded on first use; another model switches to it only when asked to."""
    model = embedder.model
    record = library.model_record()
    if record is not None and record.checksum == model.checksum and record.which == embedder.which:
        model_id = record.id
    elif record is None:
        model_id = writer.set_model(**_model_fields(embedder))
    elif switch_model:
        model_id = yield from _switch(library, writer, embedder, summary, cancel, batch_size, workers)
    else:
        old, new = distinct_names((record.name, record.checksum), (model.info.name, model.checksum))
        keeps = embedder.makes_vectors_of(record.checksum, record.which)
        change = (f"would switch it, keeping its {library.vector_count()} stored vectors (the new model only "
                  "re-weights them)" if keeps else f"would re-embed all {library.vector_count()} images")
        raise ModelMismatchError(
            f"this library was indexed with model {old} ({record.which}); indexing with "
            f"{new} ({embedder.which}) {change}. Pass --switch-model to do that",
            updated=record.name == model.info.name, keeps_vectors=keeps)
    if switch_model and not summary.cancelled:
        yield IndexProgress(SWITCHED, 1, 1, current=model.info.name)
    return model_id


def _switch(library: Library, writer: LibraryWriter, embedder: Embedder, summary: IndexSummary,
            cancel: Callable[[], bool], batch_size: int, workers: int | None) -> Generator[IndexProgress, None, int]:
    """Re-embed the library with the embedder's model beside the current vectors, then switch to it.

    Every readable image under a folder that is there is embedded into the staged vectors,
    batch by batch; the switch commits only when all are. A model that makes the library's raw
    vectors (:func:`core.modelfile.makes_raw_vectors_of`) stages the current ones instead. Until
    then search uses the current model; cancelled or killed, the library stays on it and the next
    switch to this model embeds only what is left.

    Returns:
        The new model's id (the pending one when cancelled; then nothing else may be indexed with it).
    """
    record = library.model_record()
    model_id = writer.begin_switch(**_model_fields(embedder))
    if embedder.makes_vectors_of(record.checksum, record.which):
        # Only the fusion weights or the whitening differ (an updated bundled model, a re-export): the
        # stored raw vectors are the new model's too, and the index is rebuilt from them.
        reused = writer.stage_current_vectors(model_id)
        log.warning("switching the library to model %s: its raw vectors are the current ones (%d kept, "
                    "none re-embedded)", embedder.model.info.name, reused)
    work = writer.unstaged_images([r.id for r in library.roots() if Path(r.path).is_dir()])
    pending = library.pending_switch()
    staged = pending.staged if pending is not None else 0
    if work or not staged:
        log.warning("switching the library to model %s: re-embedding %d images (%d done before)",
                    embedder.model.info.name, len(work), staged)
    total, done, t0 = staged + len(work), 0, time.monotonic()
    yield IndexProgress(REEMBED, staged, total)
    chunks = _chunks(embedder, [path for _, path in work], summary, cancel, batch_size, workers) if work else []
    for chunk in chunks:
        batch = work[done:done + len(chunk.paths) + len(chunk.failed)]
        ids = {path: image_id for image_id, path in batch}
        writer.stage_vectors(model_id, {ids[path]: chunk.raw[i] for i, path in enumerate(chunk.paths)})
        done += len(batch)
        summary.embedded += len(chunk.paths)
        summary.updated += len(chunk.paths)
        yield _progress(REEMBED, staged + done, total, done, t0, batch[-1][1])
    if not summary.cancelled:
        writer.finish_switch(model_id)
        log.info("the library now uses model %s", embedder.model.info.name)
    return model_id


def _existing_folders(folders: Iterable[Path | str]) -> list[Path]:
    """``folders`` resolved, checked before anything is written.

    Raises:
        LibraryError: one of them is not a folder.
    """
    resolved = [Path(f).resolve() for f in folders]
    for folder in resolved:
        if not folder.is_dir():
            raise LibraryError(f"{folder}: no such folder")
    return resolved


def _resolve_roots(library: Library, writer: LibraryWriter, folders: list[Path]) -> list[Root]:
    """The roots to rescan. A folder inside a root rescans that root; a folder above roots adopts them."""
    if not folders:
        return library.roots()
    chosen = {}
    for folder in folders:
        existing = library.roots()
        parent = next((r for r in existing if folder.is_relative_to(r.path)), None)
        if parent is not None:
            chosen[parent.id] = parent
            continue
        root = library.add_root(folder)
        writer.adopt_roots(root, [r for r in existing if Path(r.path).is_relative_to(folder)])
        chosen[root.id] = root
    return list(chosen.values())


def _reconcile(writer: LibraryWriter, model_id: int, scans: list[_Scan],
               summary: IndexSummary) -> Generator[IndexProgress, None, list[ImageFile]]:
    """Compare scans with the database; apply moves, touches and deletions in one transaction.

    All scanned roots are reconciled together, so a file moved from one root to
    another is recognised too. What the scan could not use is recorded as failed, like
    an image that does not decode. Returns the files that still need embedding.
    """
    known = {(k.root_id, k.relpath): k for k in writer.known_images([x.root_id for x in scans])}
    seen = {(x.root_id, e.relpath) for x in scans for e in x.entries}
    missing = [k for key, k in known.items() if key not in seen]
    missing_sizes = {k.size for k in missing}

    work: list[ImageFile] = []
    new: list[ImageFile] = []
    to_hash: list[tuple[ImageFile, KnownImage | None]] = []
    unusable: list[ImageFile] = []
    reasons: dict[str, str] = {}
    for x in scans:
        for entry in x.entries:
            k = known.get((x.root_id, entry.relpath))
            unchanged = k is not None and k.size == entry.size and k.mtime_ns == entry.mtime_ns
            if unchanged and (k.failed if entry.error is not None else k.failed or k.has_vector):
                # The common case of a re-index, so it builds nothing (bench/library_scale.py).
                summary.unchanged += 1
                continue
            item = ImageFile(str(Path(x.root_path) / entry.relpath), x.root_id, entry.relpath, entry.size,
                             entry.mtime_ns, k.id if k else None, k.digest if k else None)
            if entry.error is not None:
                unusable.append(item)
                reasons[item.path] = entry.error
            elif unchanged:
                work.append(item)  # left without a vector by a model switch
            elif k is not None or entry.size in missing_sizes:
                to_hash.append((item, k))
            else:
                new.append(item)
    if new:
        # Sizes of every vector in the library: a new file can only be a copy or a move of one of those.
        vector_sizes = writer.vector_sizes()
        for item in new:
            if item.size in vector_sizes:
                to_hash.append((item, None))
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

    missing_by_hash: dict[str, list[KnownImage]] = defaultdict(list)
    for k in missing:
        if k.digest:
            missing_by_hash[k.digest].append(k)
    updated: list[ImageFile] = []
    copies: list[ImageFile] = []
    for (item, k), digest in zip(to_hash, digests):
        item.digest = digest
        if k is not None:
            if digest is not None and digest == k.digest and (k.has_vector or k.failed):
                updated.append(item)  # only touched
                summary.unchanged += 1
            else:
                work.append(item)
        elif digest is not None and missing_by_hash.get(digest):
            item.image_id = missing_by_hash[digest].pop().id  # moved: the row follows the file
            updated.append(item)
            summary.moved += 1
        elif digest is not None:
            copies.append(item)
        else:
            work.append(item)

    moved_ids = {f.image_id for f in updated}
    gone = [k.id for k in missing if k.id not in moved_ids]
    copied = writer.apply_scan(updated, copies, gone)
    work += [item for item in copies if item.path not in copied]
    summary.removed += len(gone)
    summary.added += len(copied)
    if unusable:
        writer.commit_batch(model_id, unusable, {}, reasons)
        _count_failures(summary, reasons)
    return work


def _safe_hash(path: str) -> str | None:
    try:
        return content_hash(path)
    except OSError as exc:
        log.info("cannot hash %s: %s", path, exc)
        return None


def _embed(writer: LibraryWriter, model_id: int, embedder: Embedder, work: list[ImageFile], summary: IndexSummary,
           cancel: Callable[[], bool], batch_size: int, workers: int | None) -> Iterator[IndexProgress]:
    """Embed in batches; each batch's rows and vectors commit together."""
    total = len(work)
    done = 0
    t0 = time.monotonic()
    yield IndexProgress("embed", 0, total)
    # Files that skipped the hash phase are hashed by the decoders, from the bytes they decode, for move detection.
    for chunk in _chunks(embedder, [w.path for w in work], summary, cancel, batch_size, workers, digests=True):
        batch = work[done:done + len(chunk.paths) + len(chunk.failed)]
        hashed = dict(zip(chunk.paths, chunk.digests)) | {d.path: d.digest for d in chunk.failed}
        for item in batch:
            item.digest = item.digest or hashed.get(item.path)
        _commit_batch(writer, model_id, batch, chunk, summary)
        done += len(batch)
        yield _progress("embed", done, total, done, t0, batch[-1].path)


def _chunks(embedder: Embedder, paths: list[str], summary: IndexSummary, cancel: Callable[[], bool],
            batch_size: int, workers: int | None, digests: bool = False) -> Iterator[EmbeddedChunk]:
    """The embedded chunks of ``paths`` in order, until all are done or ``cancel()`` (then ``summary.cancelled``).

    The caller commits each chunk before asking for the next, so a cancel keeps every chunk handed out.
    ``digests`` asks the decoders for content hashes (:meth:`core.embedder.Embedder.embed_chunks`).

    Raises:
        LibraryError: a decoding process died, and not because of a cancel.
    """
    chunks = embedder.embed_chunks(paths, batch_size=batch_size, workers=workers, digests=digests)
    try:
        for chunk in chunks:
            yield chunk
            if cancel():
                summary.cancelled = True
                return
    except BrokenProcessPool as exc:
        if not cancel():
            raise LibraryError(f"an image decoding process died ({exc}); committed work is kept, "
                               "run the command again to continue") from exc
        summary.cancelled = True
    finally:
        chunks.close()


def _progress(phase: str, done: int, total: int, this_run: int, t0: float, current: str) -> IndexProgress:
    """A progress record whose rate and time left count only the ``this_run`` images embedded since ``t0``."""
    rate = this_run / max(time.monotonic() - t0, 1e-6)
    return IndexProgress(phase, done, total, rate, (total - done) / rate if rate else None, current=current)


def _commit_batch(writer: LibraryWriter, model_id: int, batch: list[ImageFile], chunk: EmbeddedChunk,
                  summary: IndexSummary) -> None:
    vectors = {p: (chunk.raw[i], chunk.sizes[i]) for i, p in enumerate(chunk.paths)}
    reasons = {d.path: d.error for d in chunk.failed}
    errors = {f.path: reasons.get(f.path, "unknown error") for f in batch if f.path not in vectors}
    writer.commit_batch(model_id, batch, vectors, errors)
    _count_failures(summary, errors)
    for f in batch:
        if f.path in vectors:
            summary.embedded += 1
            if f.image_id is None:
                summary.added += 1
            else:
                summary.updated += 1


def _count_failures(summary: IndexSummary, errors: dict[str, str]) -> None:
    summary.failed += len(errors)
    summary.failures += [Failure(path, reason) for path, reason in errors.items()]
