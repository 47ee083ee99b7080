"""Commit positions when exports finish out of order."""

from __future__ import annotations

from aiokafka import TopicPartition

from consumer.offsets import OffsetTracker

TP = TopicPartition("requests", 0)


class TestOffsetTracker:
    def test_commit_waits_for_the_lowest_unfinished(self):
        """Finishing 11 and 12 before 10 commits nothing past 10."""
        tracker = OffsetTracker()
        for offset in (10, 11, 12):
            tracker.received(TP, offset)
        tracker.finished(TP, 12)
        tracker.finished(TP, 11)
        assert tracker.committable() == {TP: 10}
        tracker.mark_committed({TP: 10})
        assert tracker.committable() == {}
        tracker.finished(TP, 10)
        assert tracker.committable() == {TP: 13}

    def test_forgotten_partition_never_commits(self):
        """After a revoke, a late finish commits nothing for that partition."""
        tracker = OffsetTracker()
        tracker.received(TP, 5)
        tracker.forget(TP)
        tracker.finished(TP, 5)
        assert tracker.committable() == {}

    def test_partitions_are_independent(self):
        """An unfinished request on one partition does not hold back another."""
        other = TopicPartition("requests", 1)
        tracker = OffsetTracker()
        tracker.received(TP, 0)
        tracker.received(other, 0)
        tracker.finished(other, 0)
        assert tracker.committable() == {TP: 0, other: 1}
