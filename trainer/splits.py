"""Train / validation / test splits by group or by whole source, so no style group is seen in two splits.

The group split depends only on the seed and the set of group names (not on
row order), so re-ordering or appending rows to a manifest never moves an
existing group to another split for the same group set.

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


def _rank(group: str, seed: int) -> str:
    return hashlib.sha256(f"{seed}\0{group}".encode()).hexdigest()


def split_by_group(samples: list[Sample], val: float = 0.1, test: float = 0.0, seed: int = 0) -> Split:
    """Partition groups (not images) in the given fractions, deterministically from ``seed``."""
    if not (0 <= val < 1 and 0 <= test < 1 and val + test < 1):
        raise DataError(f"split fractions must be in [0, 1) and sum below 1 (val={val}, test={test})")
    groups = sorted({s.group for s in samples}, key=lambda g: _rank(g, seed))
    n_val = round(len(groups) * val) if val else 0
    n_test = round(len(groups) * test) if test else 0
    if val and n_val == 0 and len(groups) > 1:
        n_val = 1
    val_g = set(groups[:n_val])
    test_g = set(groups[n_val:n_val + n_test])
    out = Split([], [], [])
    for s in samples:
        (out.val if s.group in val_g else out.test if s.group in test_g else out.train).append(s)
    return out
