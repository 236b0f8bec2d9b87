"""Train / validation / test splits by project or by whole source, so no style is seen in two splits.

The unit of a group split is the project (:attr:`trainer.manifest.Sample.project_key`: the manifest's
``project`` column, else the group). BAM-FG cuts each Behance project into style sub-groups at five
consensus levels, so the sub-groups of one project at C_3 and at C_5 hold the same images; splitting each
level by its own group names could put a C_5 training image in the C_3 test set. The paper splits the
projects once (sec. 5.1), and so does :func:`plan_by_project`: over every project of the manifest, all
consensus levels together, before a level is selected.

The plan depends only on the seed and the set of projects (not on row order), so re-ordering or
appending rows to a manifest never moves an existing project to another split for the same project set.
A manifest without a ``project`` column splits exactly as the earlier group split did.

A run stores its plan (:class:`HeldOut`: the held-out project or source names) with the run
(``config.json``, every checkpoint, the exported model file's notes; see :mod:`trainer.provenance`), so
``finetune`` and ``eval`` reuse it. Applied to another manifest (a BAM-FG-Raw run's plan applied to the
cleaned lists), the held-out projects stay held out and projects the plan never saw train.

The source split holds out whole sources (a game, an artist site, a wallpaper
set): a group split shares each source's palette, resolution and subject
matter between training and test, so it measures in-domain retrieval only,
and a model can score well on it while doing no better than a colour
histogram on art from anywhere else (issue 10).
"""

from __future__ import annotations

import argparse
import hashlib
from dataclasses import dataclass
from typing import Literal

from trainer.errors import DataError
from trainer.manifest import Sample

SPLITS = ("train", "val", "test")


@dataclass
class Split:
    train: list[Sample]
    val: list[Sample]
    test: list[Sample]

    def of(self, name: str) -> list[Sample]:
        if name == "all":
            return self.train + self.val + self.test
        if name not in SPLITS:
            raise DataError(f"unknown split {name!r}; expected one of {SPLITS + ('all',)}")
        return getattr(self, name)


def source_names(text: str) -> list[str]:
    """``a,b`` from the command line as a list of source names (argparse ``type``)."""
    names = [n.strip() for n in text.split(",")]
    if not all(names):
        raise argparse.ArgumentTypeError(f"expected comma-separated source names, got {text!r}")
    return names


def of_sources(samples: list[Sample], names: list[str]) -> list[Sample]:
    """The rows of the named sources.

    Raises:
        DataError: a name is not a source of ``samples`` (a typo would otherwise select nothing).
    """
    known = {s.source for s in samples} - {""}
    unknown = sorted(set(names) - known)
    if unknown:
        raise DataError(f"unknown source {', '.join(unknown)}; the manifest's sources are "
                        f"{', '.join(sorted(known)) or 'none (it has no source column)'}")
    wanted = set(names)
    return [s for s in samples if s.source in wanted]


def split_by_source(samples: list[Sample], val: list[str], test: list[str] = ()) -> Split:
    """Whole sources out of training: ``val`` sources for validation, ``test`` sources for testing.

    Rows without a source always train. A group that spans a held-out and a
    training source would leak its style into training, so it is an error.

    Raises:
        DataError: an unknown source, a source named twice, a group across the
            boundary, or nothing left to train on.
    """
    both = sorted(set(val) & set(test))
    if both:
        raise DataError(f"source {', '.join(both)} is both a validation and a test source")
    out = Split([], of_sources(samples, val), of_sources(samples, list(test)))
    held = set(val) | set(test)
    out.train = [s for s in samples if s.source not in held]
    crossing = {s.group for s in out.train} & {s.group for s in out.val + out.test}
    if crossing:
        raise DataError(f"group {sorted(crossing)[0]} has images in a held-out and a training source; "
                        "a source holdout needs every group within one source")
    if not out.train:
        raise DataError(f"holding out {', '.join(sorted(held))} leaves no training images")
    return out


def _rank(project: str, seed: int) -> str:
    return hashlib.sha256(f"{seed}\0{project}".encode()).hexdigest()


@dataclass(frozen=True)
class HeldOut:
    """The project or source names a run held out for validation and testing; everything else trains.

    ``how`` says in words how the names were chosen, for reports.
    """

    unit: Literal["project", "source"]
    val: frozenset[str]
    test: frozenset[str]
    how: str

    def key(self, sample: Sample) -> str:
        return sample.source if self.unit == "source" else sample.project_key

    def apply(self, samples: list[Sample]) -> Split:
        out = Split([], [], [])
        for s in samples:
            key = self.key(s)
            (out.test if key in self.test else out.val if key in self.val else out.train).append(s)
        return out

    def record(self) -> dict:
        """Plain JSON values, for config.json, checkpoints and model-file notes."""
        return {"unit": self.unit, "how": self.how, "val": sorted(self.val), "test": sorted(self.test)}

    @classmethod
    def from_record(cls, record: dict) -> "HeldOut":
        """Read :meth:`record` back.

        Raises:
            DataError: the record is not one (a damaged or foreign note).
        """
        try:
            if record["unit"] not in ("project", "source"):
                raise ValueError(record["unit"])
            return cls(record["unit"], frozenset(map(str, record["val"])), frozenset(map(str, record["test"])),
                       str(record["how"]))
        except (KeyError, TypeError, ValueError) as exc:
            raise DataError(f"unreadable split record ({exc!r})") from exc

    @classmethod
    def of_sources(cls, val: list[str], test: list[str]) -> "HeldOut":
        return cls("source", frozenset(val), frozenset(test),
                   f"sources {', '.join(val)} for validation" + (f", {', '.join(test)} for testing" if test else ""))


def plan_by_project(samples: list[Sample], val: float = 0.1, test: float = 0.0, seed: int = 0) -> HeldOut:
    """Hold out projects (not images, not groups) in the given fractions, deterministically from ``seed``.

    Pass every row of a manifest, all consensus levels, so that every level shares one plan.

    Raises:
        DataError: fractions outside [0, 1) or summing to 1 or more.
    """
    if not (0 <= val < 1 and 0 <= test < 1 and val + test < 1):
        raise DataError(f"split fractions must be in [0, 1) and sum below 1 (val={val}, test={test})")
    projects = sorted({s.project_key for s in samples}, key=lambda p: _rank(p, seed))
    n_val = round(len(projects) * val) if val else 0
    n_test = round(len(projects) * test) if test else 0
    if val and n_val == 0 and len(projects) > 1:
        n_val = 1
    unit = "projects" if any(s.project for s in samples) else "groups (no project column)"
    return HeldOut("project", frozenset(projects[:n_val]), frozenset(projects[n_val:n_val + n_test]),
                   f"{unit}: {n_val} for validation, {n_test} for testing of {len(projects)} "
                   f"(--val {val}, --test {test}, --split-seed {seed})")


def split_by_group(samples: list[Sample], val: float = 0.1, test: float = 0.0, seed: int = 0) -> Split:
    """:func:`plan_by_project` of ``samples`` applied to them: for a manifest without consensus levels.

    With several levels, plan over all of them and apply the plan to one (see the module docstring).
    """
    return plan_by_project(samples, val, test, seed).apply(samples)
