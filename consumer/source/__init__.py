"""Where an export's records come from: one partition's offset range (`range.py`), or a
time window across partitions (`window.py`, merged by timestamp in `merge.py`)."""

from __future__ import annotations

from consumer.source.range import MIN_FETCH_BYTES, SourceReader, fetch_bytes_for

__all__ = ["MIN_FETCH_BYTES", "SourceReader", "fetch_bytes_for"]
