"""The group-pair batch sampler of sec. 3.2.

A batch holds N distinct groups and two images from each, laid out so that
positions 2i and 2i+1 (the paper's b_{2i-1}, b_{2i}) share a group. Every
batch is a pure function of (seed, batch number): resuming from a checkpoint
only needs the batch number, and DataLoader workers that run ahead of the
trainer never change what a later batch holds.

Each item is ``(sample index, augmentation seed)``, so the augmentation of an
image is fixed by the batch too, whichever worker decodes it.

Optionally each batch also carries images of single-image groups after the
pairs. They have no positive for the group term, where they are negatives
only, but the self-supervised term (two views of each image,
:func:`trainer.losses.view_loss`) gives them one: so art that no group
describes still trains the model.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from trainer.errors import DataError


@dataclass
class SamplerState:
    seed: int
    next_batch: int


class GroupPairSampler:
    """Yields this rank's share of each global batch of ``2 * groups_per_batch`` items.

    Groups with fewer than two images cannot give a positive pair; they are
    skipped and counted in ``skipped_groups``, unless ``singles_per_batch``
    asks for that many of them (drawn without replacement, fresh each batch)
    after the pairs of every batch. An epoch is one pass over a shuffled order
    of the usable groups (the remainder that does not fill a batch waits for
    the next epoch's order).
    """

    def __init__(self, groups: list[list[int]], groups_per_batch: int, seed: int = 0,
                 world_size: int = 1, rank: int = 0, max_batches: int | None = None,
                 singles_per_batch: int = 0) -> None:
        self.groups = [list(g) for g in groups if len(g) >= 2]
        self.singles = [g[0] for g in groups if len(g) == 1]
        self.skipped_groups = len(groups) - len(self.groups)
        self.singles_per_batch = singles_per_batch
        self.groups_per_batch = groups_per_batch
        self.seed = seed
        self.world_size = world_size
        self.rank = rank
        self.next_batch = 0
        self.max_batches = max_batches
        if groups_per_batch < 2:
            raise DataError("a batch needs at least 2 groups (one positive, one negative)")
        if self.batch_size % world_size:
            raise DataError(f"the global batch of {self.batch_size} images does not split evenly over "
                            f"{world_size} processes")
        if singles_per_batch > len(self.singles):
            raise DataError(f"only {len(self.singles)} groups have a single image; a batch asks for "
                            f"{singles_per_batch} of them")
        if len(self.groups) < groups_per_batch:
            raise DataError(f"only {len(self.groups)} groups have two or more images "
                            f"({self.skipped_groups} skipped); a batch needs {groups_per_batch} groups")

    @property
    def batch_size(self) -> int:
        """Images in one global batch: the pairs, then the single images."""
        return 2 * self.groups_per_batch + self.singles_per_batch

    @property
    def batches_per_epoch(self) -> int:
        return len(self.groups) // self.groups_per_batch

    def global_batch(self, number: int) -> list[tuple[int, int]]:
        """Batch ``number`` over all ranks: [(index, aug_seed), ...], pairs adjacent, then the single images."""
        epoch, pos = divmod(number, self.batches_per_epoch)
        order = np.random.default_rng([self.seed, epoch]).permutation(len(self.groups))
        chosen = order[pos * self.groups_per_batch:(pos + 1) * self.groups_per_batch]
        rng = np.random.default_rng([self.seed, epoch, pos, 1])
        items = []
        for g in chosen:
            members = self.groups[g]
            a, p = rng.choice(len(members), size=2, replace=False)
            seeds = rng.integers(0, 2**31 - 1, size=2)
            items += [(members[a], int(seeds[0])), (members[p], int(seeds[1]))]
        if self.singles_per_batch:
            chosen = rng.choice(len(self.singles), size=self.singles_per_batch, replace=False)
            seeds = rng.integers(0, 2**31 - 1, size=self.singles_per_batch)
            items += [(self.singles[k], int(s)) for k, s in zip(chosen, seeds)]
        return items

    def local_batch(self, number: int) -> list[tuple[int, int]]:
        items = self.global_batch(number)
        share = len(items) // self.world_size
        return items[self.rank * share:(self.rank + 1) * share]

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        number = self.next_batch
        while self.max_batches is None or number < self.max_batches:
            yield self.local_batch(number)
            number += 1

    def __len__(self) -> int:
        if self.max_batches is None:
            raise TypeError("an unbounded sampler has no length")
        return max(0, self.max_batches - self.next_batch)

    def state_dict(self) -> dict:
        return {"seed": self.seed, "next_batch": self.next_batch, "groups": len(self.groups),
                "groups_per_batch": self.groups_per_batch, "singles_per_batch": self.singles_per_batch}

    def load_state_dict(self, state: dict) -> None:
        if state.get("singles_per_batch", 0) != self.singles_per_batch:
            raise DataError(f"the checkpoint's batches held {state.get('singles_per_batch', 0)} single images; "
                            f"this run asks for {self.singles_per_batch}: resume needs the same batches")
        if state["groups"] != len(self.groups) or state["groups_per_batch"] != self.groups_per_batch:
            raise DataError(f"the checkpoint's sampler saw {state['groups']} groups in batches of "
                            f"{state['groups_per_batch']}; this run has {len(self.groups)} in batches of "
                            f"{self.groups_per_batch}: resume needs the same data and batch size")
        self.seed = state["seed"]
        self.next_batch = state["next_batch"]
