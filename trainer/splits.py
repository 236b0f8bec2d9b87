"""Train / validation / test splits by group, so no style group is seen in two splits.

The split depends only on the seed and the set of group names (not on row
order), so re-ordering or appending rows to a manifest never moves an
existing group to another split for the same group set.
"""

from __future__ import annotations

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
