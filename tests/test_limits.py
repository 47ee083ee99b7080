"""The size limits at the layer every format passes: the record tally and the byte sink."""

from __future__ import annotations

import dataclasses
import io

import pytest

from consumer.errors import FailureReason, SettingsError, TooLarge
from consumer.events import decode_request
from consumer.limits import BoundedSink, check_range_length
from consumer.runner import _tally_for
from consumer.runner_core import Tally
from consumer.settings import load_settings
from consumer.structs import ExportFormat


class TestTally:
    def test_counting_past_the_record_limit_fails(self):
        """Reaching the limit is allowed; one record more is `too_large`, naming the setting."""
        tally = Tally(max_records=10)
        tally.records += 10
        with pytest.raises(TooLarge, match="EXPORT_MAX_RECORDS") as failed:
            tally.records += 1
        assert failed.value.reason is FailureReason.TOO_LARGE
        assert "10 records" in failed.value.message
        assert tally.records == 10

    def test_a_tally_without_a_limit_only_counts(self):
        """A worker's tally (no limit) counts as before."""
        tally = Tally()
        tally.records += 10**12
        tally.skipped += 1
        assert (tally.records, tally.skipped) == (10**12, 1)


class TestBoundedSink:
    def test_bytes_pass_until_the_limit(self):
        """Writes reaching the limit exactly pass; the write that would pass it fails and
        is not passed on."""
        target = io.BytesIO()
        sink = BoundedSink(target, 10)
        sink.write(b"12345")
        sink.write(b"67890")
        with pytest.raises(TooLarge, match="EXPORT_MAX_OUTPUT_BYTES"):
            sink.write(b"x")
        assert target.getvalue() == b"1234567890"
        assert sink.bytes_written == 10


class TestRangeLength:
    def test_a_range_longer_than_the_limit_fails_before_reading(self):
        """An offset range with more offsets than the record limit is refused outright."""
        check_range_length(100, 100)
        with pytest.raises(TooLarge, match=r"101 offsets.*EXPORT_MAX_RECORDS"):
            check_range_length(101, 100)


class TestSettings:
    def test_contract_defaults(self, monkeypatch):
        """The defaults are the contract's: all topics, 50,000,000 records, 10 GiB."""
        for name in ["EXPORT_SOURCE_TOPICS", "EXPORT_MAX_RECORDS", "EXPORT_MAX_OUTPUT_BYTES"]:
            monkeypatch.delenv(name, raising=False)
        settings = load_settings()
        assert settings.source_topics == "*"
        assert settings.max_records == 50_000_000
        assert settings.max_output_bytes == 10_737_418_240

    @pytest.mark.parametrize("field", ["max_records", "max_output_bytes"])
    def test_a_limit_below_one_stops_start_up(self, field):
        """Zero is no useful limit: the flag is named."""
        with pytest.raises(SettingsError, match="--" + field.replace("_", "-")):
            load_settings({field: "0"})


class TestWorkbookRows:
    def test_a_workbook_stops_at_a_worksheets_rows(self):
        """An xlsx export fails `too_large` at its 1,048,576th record (the heading is a
        row too), naming the sheet's limit; other formats count to EXPORT_MAX_RECORDS."""
        request = decode_request(
            {
                "export_id": "big",
                "format": "xlsx",
                "columns": ["a"],
                "source": {"topic": "t", "partition": 0, "start_offset": 0, "end_offset": 1},
            }
        )
        tally = _tally_for(request, max_records=10_000_000)
        tally.records = 1_048_575
        with pytest.raises(TooLarge, match=r"passed 1,048,575 records.*worksheet's 1,048,576 rows"):
            tally.records += 1
        csv = dataclasses.replace(request, format=ExportFormat.CSV)
        tally = _tally_for(csv, max_records=10_000_000)
        tally.records = 2_000_000
        small = _tally_for(request, max_records=10)
        with pytest.raises(TooLarge, match="EXPORT_MAX_RECORDS"):
            small.records = 11
