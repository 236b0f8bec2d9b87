"""What a model trained on, recorded so that evaluation can refuse to score it on its own training data.

A run records its held-out split (:class:`trainer.splits.HeldOut`) and the set of its training projects
(:attr:`trainer.manifest.Sample.project_key`) in every checkpoint (``training_set``); ``export`` copies the
record into the model file's notes. ``eval`` reads it back to choose its default split (the one the run
held out) and to refuse an evaluated split that shares a project with training (``--allow-overlap``
warns instead).

Projects are kept as the first :data:`DIGEST_BYTES` bytes of their SHA-256, not by name: BAM-FG-Raw's
175K projects then take 1.4 MB of base64 in a model file's header, and with 20K evaluated projects the
chance of a single false match is about 175e3 * 20e3 / 2**48, or 1e-5.

A fine-tune's set is its base's set plus its own training projects, so a fine-tuned model is not scored
on what its base trained on either. A base that records nothing (a model file exported before this
record, such as the bundled default model) leaves the set incomplete, and evaluation says so.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterable
from dataclasses import dataclass

from trainer.errors import DataError
from trainer.manifest import Sample
from trainer.splits import HeldOut

DIGEST_BYTES = 6
NOTE = "training_set"


def digest(project: str) -> bytes:
    return hashlib.sha256(project.encode()).digest()[:DIGEST_BYTES]


@dataclass(frozen=True)
class TrainingSet:
    """Hashed training projects, the split they were chosen by, and whether the record covers every ancestor.

    ``unrecorded`` names the base model whose own training data is unknown (empty when none is).
    """

    digests: frozenset[bytes]
    held_out: HeldOut | None
    unrecorded: str = ""

    @classmethod
    def of(cls, samples: Iterable[Sample], held_out: HeldOut | None) -> "TrainingSet":
        return cls(frozenset(digest(s.project_key) for s in samples), held_out)

    def on_top_of(self, base: "TrainingSet | None", base_name: str) -> "TrainingSet":
        """This run's set plus the base's, for a fine-tune of ``base_name`` (``None``: it records nothing)."""
        if base is None:
            return TrainingSet(self.digests, self.held_out, base_name)
        return TrainingSet(self.digests | base.digests, self.held_out, base.unrecorded)

    def overlap(self, samples: Iterable[Sample]) -> list[str]:
        """The evaluated projects this set trained on, sorted."""
        return sorted({s.project_key for s in samples if digest(s.project_key) in self.digests})

    def record(self) -> dict:
        packed = b"".join(sorted(self.digests))
        return {"projects": base64.b64encode(packed).decode("ascii"), "count": len(self.digests),
                "split": self.held_out.record() if self.held_out else None, "unrecorded_base": self.unrecorded}

    @classmethod
    def from_record(cls, record: dict) -> "TrainingSet":
        """Read :meth:`record` back.

        Raises:
            DataError: the record is damaged (a truncated or foreign note).
        """
        try:
            packed = base64.b64decode(record["projects"], validate=True)
            split = record.get("split")
            held_out = HeldOut.from_record(split) if split else None
            unrecorded = str(record.get("unrecorded_base", ""))
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise DataError(f"unreadable training-set record ({exc!r})") from exc
        if len(packed) % DIGEST_BYTES:
            raise DataError("unreadable training-set record (truncated project hashes)")
        digests = frozenset(packed[i:i + DIGEST_BYTES] for i in range(0, len(packed), DIGEST_BYTES))
        return cls(digests, held_out, unrecorded)

    @classmethod
    def from_notes(cls, notes: dict) -> "TrainingSet | None":
        """The record in a model's notes (a model file's, or a checkpoint's as :func:`load_subject` builds
        them); ``None`` when the model records none."""
        record = notes.get(NOTE)
        return cls.from_record(record) if record else None
