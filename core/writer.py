"""The library's write side: every statement that changes images, vectors, roots or the model.

:meth:`core.library.Library.writer` hands out a :class:`LibraryWriter` only while
it holds the single-writer lock, so whoever writes (the indexer, a folder
removal) never races another writer. Each method is one transaction: a process
killed between two calls leaves a consistent library, and the next run redoes
only what was not committed. Every change to the set of vectors raises the
library's *generation* and gives it a new random token (:class:`core.schema.GenerationRow`);
caches of the vectors compare against both.

A library changes model without ever being unsearchable: the next model's vectors are
*staged* beside the current ones (:meth:`LibraryWriter.begin_switch`, :meth:`LibraryWriter.stage_vectors`),
which search never reads, and :meth:`LibraryWriter.finish_switch` swaps them in with one
transaction. Until then the library is on its current model, killed or not.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

import numpy as np
from sqlalchemy import delete, func, insert, literal, select, update
from sqlalchemy.orm import Session, sessionmaker

from core.errors import QueryError
from core.schema import (GENERATION, STATUS_FAILED, STATUS_OK, GenerationRow, ImageRow, MetaRow, ModelRow, RootRow,
                         StagedVectorRow, VectorRow, generation, in_chunks, new_token, vector_blob)

if TYPE_CHECKING:
    from core.library import Root

@dataclass
class ImageFile:
    """A file a scan found, with the image row it updates (``image_id``) or None for a new one."""

    path: str
    root_id: int
    relpath: str
    size: int
    mtime_ns: int
    image_id: int | None = None
    digest: str | None = None


@dataclass(frozen=True)
class KnownImage:
    """An image row as a rescan compares it with the file on disk."""

    id: int
    root_id: int
    relpath: str
    size: int
    mtime_ns: int
    digest: str | None
    failed: bool
    has_vector: bool


class LibraryWriter:
    """Write operations on a library, valid only inside ``with library.writer() as w``."""

    def __init__(self, session: sessionmaker[Session]) -> None:
        self._session = session

    # -- the model -------------------------------------------------------------
    def set_model(self, *, name: str, version: str, dim: int, checksum: str, which: str, source: str) -> int:
        """Record the model of a library that has none yet (its first index); returns its id.

        A library that has a model changes it only by a switch (:meth:`begin_switch`), which never
        leaves it without searchable vectors.
        """
        with self._session.begin() as s:
            return s.scalar(insert(ModelRow).values(name=name, version=version, dim=dim, checksum=checksum,
                                                    which=which, source=source, created_at=time.time())
                            .returning(ModelRow.id))

    def begin_switch(self, *, name: str, version: str, dim: int, checksum: str, which: str, source: str) -> int:
        """Make this model the pending one, whose vectors are staged until the switch; returns its id.

        A switch to the same model that was cancelled or killed resumes: its staged vectors
        are kept. Those of another pending model are dropped, as one switch is under way at a time.
        """
        with self._session.begin() as s:
            row = s.scalar(select(ModelRow).where(ModelRow.pending))
            if row is not None and (row.checksum, row.which) == (checksum, which):
                return row.id
            s.execute(delete(StagedVectorRow))
            s.execute(delete(ModelRow).where(ModelRow.pending))
            return s.scalar(insert(ModelRow).values(name=name, version=version, dim=dim, checksum=checksum,
                                                    which=which, source=source, pending=True, created_at=time.time())
                            .returning(ModelRow.id))

    def unstaged_images(self, root_ids: list[int]) -> list[tuple[int, str]]:
        """``(id, path)`` of every readable image under these roots that the pending model has not embedded yet."""
        with self._session() as s:
            rows = s.execute(select(ImageRow.id, RootRow.path, ImageRow.relpath).join(RootRow)
                             .outerjoin(StagedVectorRow, StagedVectorRow.image_id == ImageRow.id)
                             .where(ImageRow.root_id.in_(root_ids), ImageRow.status != STATUS_FAILED,
                                    StagedVectorRow.image_id.is_(None)).order_by(ImageRow.id)).all()
        return [(i, str(Path(root) / rel)) for i, root, rel in rows]

    def stage_vectors(self, model_id: int, vectors: dict[int, np.ndarray]) -> None:
        """Keep one batch of the pending model's raw vectors, by image id; search does not see them yet."""
        with self._session.begin() as s:
            _insert(s, StagedVectorRow, [dict(image_id=i, model_id=model_id, data=vector_blob(v))
                                         for i, v in vectors.items()])

    def stage_current_vectors(self, model_id: int) -> int:
        """Stage the current vectors as the pending model's, for a model that makes the same raw vectors.

        Returns:
            How many were staged (images the pending model had staged already keep theirs).
        """
        with self._session.begin() as s:
            staged = select(StagedVectorRow.image_id)
            return s.execute(insert(StagedVectorRow).from_select(
                ["image_id", "model_id", "data"],
                select(VectorRow.image_id, literal(model_id), VectorRow.data)
                .where(VectorRow.image_id.not_in(staged)))).rowcount

    def finish_switch(self, model_id: int) -> None:
        """Make the pending model the library's, in one transaction: its staged vectors replace the
        current ones, the previous model's record goes, and the generation moves on (so every cache
        of the old vectors is stale).

        An image the pending model could not embed (unreadable now, or in a folder that is missing)
        is left without a vector, which the next rescan embeds again.
        """
        with self._session.begin() as s:
            seq = _bump_generation(s)
            s.execute(delete(VectorRow))
            s.execute(insert(VectorRow).from_select(
                ["image_id", "model_id", "seq", "data"],
                select(StagedVectorRow.image_id, StagedVectorRow.model_id, literal(seq), StagedVectorRow.data)
                .where(StagedVectorRow.model_id == model_id)))
            s.execute(delete(StagedVectorRow))
            s.execute(delete(ModelRow).where(ModelRow.id != model_id))
            s.execute(update(ModelRow).where(ModelRow.id == model_id).values(pending=False))

    # -- roots -----------------------------------------------------------------
    def adopt_roots(self, root: Root, inner: list[Root]) -> None:
        """Move the images of roots nested in ``root`` under it and forget those roots.

        Image ids (and so vectors and moodboard entries) stay, so adding a parent
        folder never re-embeds what its sub-folders already hold.
        """
        if not inner:
            return
        with self._session.begin() as s:
            for old in inner:
                prefix = Path(old.path).relative_to(root.path).as_posix() + "/"
                s.execute(update(ImageRow).where(ImageRow.root_id == old.id)
                          .values(root_id=root.id, relpath=literal(prefix) + ImageRow.relpath))
                s.execute(delete(RootRow).where(RootRow.id == old.id))

    def remove_folder(self, target: Path) -> int:
        """Forget a root (or the images in one sub-folder of a root) and their vectors.

        ``target`` is a resolved path, as roots are stored.

        Returns:
            How many images were removed.

        Raises:
            QueryError: ``target`` is neither a root nor inside one.
        """
        with self._session.begin() as s:
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
                _delete_images(s, ids)
            _bump_generation(s)
        return int(n or 0)

    def forget_images(self, ids: list[int]) -> int:
        """Forget the given images and their vectors (their files were moved to the trash); returns how many."""
        with self._session.begin() as s:
            known = [i for part in in_chunks(ids) for i in s.scalars(select(ImageRow.id).where(ImageRow.id.in_(part)))]
            if known:
                _delete_images(s, known)
                _bump_generation(s)
        return len(known)

    # -- rescans ---------------------------------------------------------------
    def known_images(self, root_ids: list[int]) -> list[KnownImage]:
        """Every image row under the given roots, to compare with what a scan found there."""
        with self._session() as s:
            rows = s.execute(select(ImageRow.id, ImageRow.root_id, ImageRow.relpath, ImageRow.size, ImageRow.mtime_ns,
                                    ImageRow.content_hash, ImageRow.status, VectorRow.image_id)
                             .outerjoin(VectorRow, VectorRow.image_id == ImageRow.id)
                             .where(ImageRow.root_id.in_(root_ids))).all()
        return [KnownImage(i, root_id, rel, size, mtime, digest, status == STATUS_FAILED, vid is not None)
                for i, root_id, rel, size, mtime, digest, status, vid in rows]

    def vector_sizes(self) -> set[int]:
        """File sizes of every image with a vector: a new file of another size cannot be a copy or a move."""
        with self._session() as s:
            return set(s.scalars(select(ImageRow.size).join(VectorRow, VectorRow.image_id == ImageRow.id)))

    def apply_scan(self, updated: list[ImageFile], copies: list[ImageFile], gone: list[int]) -> set[str]:
        """Apply what a rescan found without embedding anything, in one transaction.

        Args:
            updated: files that are known images (moved, renamed or only touched): each row with
                ``image_id`` takes the file's place and stat, keeping its vector.
            copies: new files with a ``digest``; one byte-identical to an image with a vector gets
                a copy of that vector instead of an embedding.
            gone: ids of images whose files disappeared; they are deleted with their vectors.

        Returns:
            The paths of the ``copies`` that got a vector; the others still need embedding.
        """
        now = time.time()
        with self._session.begin() as s:
            if updated:
                s.execute(update(ImageRow), [dict(id=f.image_id, root_id=f.root_id, relpath=f.relpath, size=f.size,
                                                  mtime_ns=f.mtime_ns, updated_at=now) for f in updated])
            source = _vectors_by_hash(s, sorted({f.digest for f in copies}))
            copied = [f for f in copies if f.digest in source]
            seq = _bump_generation(s) if copied or gone else None
            ids = _write_images(s, copied, [_image_values(f, now, STATUS_OK, None, source[f.digest].width,
                                                          source[f.digest].height) for f in copied], now)
            _insert(s, VectorRow, [dict(image_id=ids[f.path], model_id=source[f.digest].model_id, seq=seq,
                                        data=source[f.digest].data) for f in copied])
            _delete_images(s, gone)
        return {f.path for f in copied}

    def commit_batch(self, model_id: int, files: list[ImageFile],
                     vectors: dict[str, tuple[np.ndarray, tuple[int, int]]], errors: dict[str, str]) -> None:
        """Write one embedded batch: rows and vectors commit together, so no image is left half-indexed.

        Args:
            model_id: the model that made ``vectors``.
            files: the batch; a file with an ``image_id`` replaces that row (and drops its old vector).
            vectors: raw vector and original ``(width, height)`` by path, for the files that decoded.
            errors: the reason by path for every other file of the batch; it is kept so the file
                is not retried until it changes.
        """
        now = time.time()
        rows = [_image_values(f, now, STATUS_OK, None, *vectors[f.path][1]) if f.path in vectors
                else _image_values(f, now, STATUS_FAILED, errors[f.path], None, None) for f in files]
        with self._session.begin() as s:
            seq = _bump_generation(s)
            ids = _write_images(s, files, rows, now)
            _insert(s, VectorRow, [dict(image_id=ids[f.path], model_id=model_id, seq=seq,
                                        data=vector_blob(vectors[f.path][0])) for f in files if f.path in vectors])


def _bump_generation(s: Session) -> int:
    """Raise the generation and give it a token: the new state's name, which no other state ever had."""
    gen = generation(s) + 1
    s.merge(MetaRow(key=GENERATION, value=str(gen)))
    s.add(GenerationRow(generation=gen, token=new_token()))
    return gen


def _image_values(f: ImageFile, now: float, status: str, error: str | None, width: int | None,
                  height: int | None) -> dict:
    """An image row's columns for file ``f``, as decoding (or a copied vector) left it."""
    return dict(root_id=f.root_id, relpath=f.relpath, size=f.size, mtime_ns=f.mtime_ns, content_hash=f.digest,
                status=status, error=error, width=width, height=height, updated_at=now)


def _write_images(s: Session, files: list[ImageFile], rows: list[dict], now: float) -> dict[str, int]:
    """Update the rows of known files (dropping their old vectors) and insert new ones; returns ids by path."""
    known = [(f, row) for f, row in zip(files, rows) if f.image_id is not None]
    new = [(f, row) for f, row in zip(files, rows) if f.image_id is None]
    ids = {f.path: f.image_id for f, _ in known}
    if known:
        s.execute(update(ImageRow), [dict(row, id=f.image_id) for f, row in known])
        _delete_vectors(s, list(ids.values()))
    if new:
        new_ids = s.scalars(insert(ImageRow).returning(ImageRow.id, sort_by_parameter_order=True),
                            [dict(row, added_at=now) for _, row in new]).all()
        ids.update(zip((f.path for f, _ in new), new_ids))
    return ids


def _insert(s: Session, table: type[VectorRow] | type[StagedVectorRow], rows: list[dict]) -> None:
    if rows:
        s.execute(insert(table), rows)




class _Indexed(NamedTuple):
    """What a byte-identical copy takes over from an indexed image."""

    width: int | None
    height: int | None
    model_id: int
    data: bytes


def _vectors_by_hash(s: Session, hashes: list[str]) -> dict[str, _Indexed]:
    """An indexed image for each of ``hashes`` that has one."""
    source = {}
    for part in in_chunks(hashes):
        for digest, width, height, model_id, data in s.execute(
                select(ImageRow.content_hash, ImageRow.width, ImageRow.height, VectorRow.model_id, VectorRow.data)
                .join(VectorRow, VectorRow.image_id == ImageRow.id).where(ImageRow.content_hash.in_(part))):
            source[digest] = _Indexed(width, height, model_id, data)
    return source


def _delete_vectors(s: Session, ids: list[int]) -> None:
    """Drop the images' vectors, staged ones too: a file that changed must be embedded again by either model."""
    for part in in_chunks(ids):
        s.execute(delete(VectorRow).where(VectorRow.image_id.in_(part)))
        s.execute(delete(StagedVectorRow).where(StagedVectorRow.image_id.in_(part)))


def _delete_images(s: Session, ids: list[int]) -> None:
    _delete_vectors(s, ids)
    for part in in_chunks(ids):
        s.execute(delete(ImageRow).where(ImageRow.id.in_(part)))
