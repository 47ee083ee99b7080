"""The runner refuses a source before it makes any Kafka client: with no broker to reach,
a refused topic or an over-long range still fails at once, not at the deadline."""

from __future__ import annotations

import pytest

from consumer.events import decode_request
from consumer.lanes import LanePool
from consumer.render_pool import PdfWorkerPool
from consumer.runner import ExportRunner
from consumer.settings import load_settings
from consumer.storage.local import LocalStore
from consumer.writers.pdf_fonts import find_font

NO_BROKER = "127.0.0.1:1"
"""Nothing listens there: a reader that tried to connect would retry until the deadline."""


@pytest.fixture
async def runner(tmp_path):
    settings = load_settings(
        {
            "bootstrap_servers": NO_BROKER,
            "source_topics": "sales.*",
            "max_records": "1000",
            "timeout_s": "30",
            "output_dir": str(tmp_path / "exports"),
        }
    )
    store = LocalStore(settings.output_dir)
    await store.prepare()
    pdf = PdfWorkerPool(1, find_font(None), settings.pdf_max_pages)
    csv = LanePool(1)
    yield ExportRunner(settings, store, pdf, csv)
    pdf.stop()
    csv.stop()


def request(topic: str, end: int) -> dict[str, object]:
    source = {"topic": topic, "partition": 0, "start_offset": 0, "end_offset": end}
    return {"export_id": "e-1", "format": "csv", "columns": ["id"], "source": source}


class TestChecksBeforeReading:
    @pytest.mark.parametrize("topic", ["__consumer_offsets", "export.results", "hr.salaries"])
    async def test_a_refused_topic_fails_without_a_broker(self, runner, topic):
        """A refused topic is `source_unavailable` without the broker ever being asked."""
        result = await runner.run(decode_request(request(topic, 10)))
        assert result.error is not None
        assert result.error.reason.value == "source_unavailable"
        assert result.error.message == (
            f"source.topic: topic {topic!r} does not exist or is not readable by exports"
        )

    async def test_an_over_long_range_fails_without_a_broker(self, runner):
        """A range of more offsets than EXPORT_MAX_RECORDS is `too_large` before reading."""
        result = await runner.run(decode_request(request("sales.eu", 1001)))
        assert result.error is not None
        assert result.error.reason.value == "too_large"
        assert "EXPORT_MAX_RECORDS" in result.error.message
