"""Invariants of the sec. 3.2 group-pair batch sampler."""

from __future__ import annotations

import pytest

from trainer.errors import DataError
from trainer.sampler import GroupPairSampler


def _groups(sizes):
    out, start = [], 0
    for n in sizes:
        out.append(list(range(start, start + n)))
        start += n
    return out


def _group_of(groups):
    return {i: g for g, members in enumerate(groups) for i in members}


def test_batches_hold_n_distinct_groups_with_adjacent_pairs():
    groups = _groups([2, 3, 5, 4, 2, 6, 3, 2, 7, 2])
    owner = _group_of(groups)
    sampler = GroupPairSampler(groups, groups_per_batch=4, seed=3, max_batches=12)
    batches = list(sampler)
    assert len(batches) == 12
    for batch in batches:
        assert len(batch) == 8
        indices = [i for i, _ in batch]
        pair_groups = [owner[indices[k]] for k in range(0, 8, 2)]
        for k in range(0, 8, 2):
            assert owner[indices[k]] == owner[indices[k + 1]], "b_2i-1 and b_2i share a group"
            assert indices[k] != indices[k + 1], "a pair is two different images"
        assert len(set(pair_groups)) == 4, "N distinct groups per batch"


def test_an_epoch_uses_each_group_at_most_once():
    groups = _groups([3] * 10)
    owner = _group_of(groups)
    sampler = GroupPairSampler(groups, groups_per_batch=3, seed=0)
    assert sampler.batches_per_epoch == 3
    seen = [owner[i] for b in range(3) for i, _ in sampler.global_batch(b)][::2]
    assert len(seen) == len(set(seen)) == 9


def test_small_groups_are_skipped_and_counted():
    groups = _groups([1, 2, 1, 3, 2])
    sampler = GroupPairSampler(groups, groups_per_batch=2, seed=0, max_batches=5)
    assert sampler.skipped_groups == 2
    used = {i for batch in sampler for i, _ in batch}
    assert not used & {0, 3}, "single-image groups never appear"


def test_too_few_groups_is_a_clear_error():
    with pytest.raises(DataError, match="only 2 groups"):
        GroupPairSampler(_groups([2, 2, 1]), groups_per_batch=3)


def test_batches_are_deterministic_and_resumable():
    groups = _groups([4] * 12)
    a = list(GroupPairSampler(groups, 4, seed=5, max_batches=9))
    b = list(GroupPairSampler(groups, 4, seed=5, max_batches=9))
    c = list(GroupPairSampler(groups, 4, seed=6, max_batches=9))
    assert a == b
    assert a != c
    resumed = GroupPairSampler(groups, 4, seed=5, max_batches=9)
    resumed.load_state_dict({**resumed.state_dict(), "next_batch": 5})
    assert list(resumed) == a[5:]


def test_resume_refuses_a_different_data_stream():
    state = GroupPairSampler(_groups([2] * 6), 3).state_dict()
    with pytest.raises(DataError, match="resume"):
        GroupPairSampler(_groups([2] * 8), 3).load_state_dict(state)


def test_rank_shares_make_up_the_global_batch():
    groups = _groups([3] * 8)
    whole = GroupPairSampler(groups, 4, seed=1)
    ranks = [GroupPairSampler(groups, 4, seed=1, world_size=2, rank=r) for r in range(2)]
    for number in range(4):
        assert ranks[0].local_batch(number) + ranks[1].local_batch(number) == whole.global_batch(number)
    with pytest.raises(DataError, match="evenly"):
        GroupPairSampler(groups, 3, world_size=4)


def test_single_image_groups_join_batches_after_unchanged_pairs():
    groups = _groups([2, 3, 1, 2, 1, 4, 1, 2])
    singles = {groups[2][0], groups[4][0], groups[6][0]}
    plain = GroupPairSampler(groups, 3, seed=2)
    mixed = GroupPairSampler(groups, 3, seed=2, singles_per_batch=2, max_batches=10)
    assert mixed.batch_size == 8 and mixed.skipped_groups == 3
    seen = set()
    for number, batch in enumerate(mixed):
        assert batch[:6] == plain.global_batch(number), "the pairs are those of a sampler without singles"
        extra = [i for i, _ in batch[6:]]
        assert len(set(extra)) == 2 and set(extra) <= singles, "two distinct single images"
        seen |= set(extra)
    assert seen == singles
    with pytest.raises(DataError, match="only 3 groups have a single image"):
        GroupPairSampler(groups, 3, singles_per_batch=4)
    with pytest.raises(DataError, match="single images"):
        GroupPairSampler(groups, 3, singles_per_batch=1).load_state_dict(plain.state_dict())
