"""The timestamp merge of a window's partitions, held to a plain sort."""

from __future__ import annotations

import random
from dataclasses import dataclass

from hypothesis import given
from hypothesis import strategies as st

from consumer.source.merge import TimestampMerge


@dataclass(frozen=True)
class Rec:
    partition: int
    offset: int
    timestamp: int


partitions_st = st.lists(
    st.lists(st.integers(0, 20), max_size=12),  # each partition's timestamps in offset order
    min_size=1,
    max_size=5,
)


def records_of(stamps: list[list[int]]) -> dict[int, list[Rec]]:
    return {
        p: [Rec(p, offset, ts) for offset, ts in enumerate(times)] for p, times in enumerate(stamps)
    }


def merge_in_pieces(by_partition: dict[int, list[Rec]], seed: int) -> list[Rec]:
    """Feed the merge in random fetch-sized pieces, in random partition order, as fetches
    arrive; take what can leave after each."""
    rng = random.Random(seed)  # noqa: S311 - fetch orders to try, not secrets
    merge: TimestampMerge[Rec] = TimestampMerge(list(by_partition))
    pending = {p: list(records) for p, records in by_partition.items()}
    out: list[Rec] = []
    while not merge.done:
        hungry = merge.hungry()
        partition = rng.choice(hungry) if hungry else rng.choice(list(by_partition))
        if not pending[partition]:
            merge.finish(partition)
        else:
            cut = rng.randint(1, len(pending[partition]))
            merge.add(partition, pending[partition][:cut])
            pending[partition] = pending[partition][cut:]
        out.extend(merge.take())
    return out


@given(partitions_st, st.integers())
def test_any_fetch_order_gives_the_same_interleaving(stamps, seed):
    """However the fetches arrive, the output is the same: every record once, each
    partition in offset order."""
    by_partition = records_of(stamps)
    first = merge_in_pieces(by_partition, seed)
    assert first == merge_in_pieces(by_partition, seed + 1)
    assert sorted(first, key=lambda r: (r.partition, r.offset)) == [
        r for p in sorted(by_partition) for r in by_partition[p]
    ]
    for p in by_partition:
        assert [r for r in first if r.partition == p] == by_partition[p]


@given(partitions_st, st.integers())
def test_rising_timestamps_come_out_sorted_ties_to_the_lower_partition(stamps, seed):
    """Where each partition's timestamps rise with its offsets, the output is sorted by
    timestamp, then partition."""
    by_partition = records_of([sorted(times) for times in stamps])
    merged = merge_in_pieces(by_partition, seed)
    every = [r for records in by_partition.values() for r in records]
    assert merged == sorted(every, key=lambda r: (r.timestamp, r.partition, r.offset))


def test_nothing_leaves_while_a_partition_may_hold_something_earlier():
    """A record waits while another partition being read has nothing buffered yet."""
    merge: TimestampMerge[Rec] = TimestampMerge([0, 1])
    merge.add(1, [Rec(1, 0, 5)])
    assert merge.take() == []
    assert merge.hungry() == [0]
    merge.add(0, [Rec(0, 0, 7)])
    assert merge.take() == [Rec(1, 0, 5)]
    merge.finish(1)
    assert merge.take() == [Rec(0, 0, 7)]
    merge.finish(0)
    assert merge.done
