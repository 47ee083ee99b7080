"""kill -9, SIGTERM/SIGINT and crash loops, on the service running as its own process."""

from __future__ import annotations

import functools
import signal
from pathlib import Path
from typing import Any

import pytest

from consumer.topics import ensure_topics
from tests.integration.harness import Harness, output_of
from tests.integration.processes import ServiceProcess, wait_until


def rows(first: int, count: int) -> list[dict[str, Any]]:
    return [{"id": first + i, "name": f"name {first + i}", "amount": i} for i in range(count)]


async def trickle_request(harness: Harness, export_id: str, written: int, total: int) -> None:
    """A request for `total` batches on a topic of its own, of which `written` exist yet.

    The export reads those and then waits for the rest: it is reliably mid-flight.
    """
    topic = f"{harness.records_topic}-{export_id}"
    await ensure_topics(harness.settings, {topic: 1})
    await harness.write_batches([rows(i, 1) for i in range(written)], topic=topic)
    source = {"topic": topic, "partition": 0, "start_offset": 0, "end_offset": total}
    await harness.send_request(harness.request(export_id, 0, total, source=source))


async def finish_trickle(harness: Harness, export_id: str, written: int, total: int) -> None:
    topic = f"{harness.records_topic}-{export_id}"
    await harness.write_batches([rows(i, 1) for i in range(written, total)], topic=topic)


def visible_outputs(harness: Harness) -> list[str]:
    return sorted(p.name for p in harness.output_dir.iterdir() if not p.name.startswith("."))


def claim_count(harness: Harness, export_id: str) -> int | None:
    path = harness.output_dir / f".{export_id}.attempts"
    text = path.read_text().strip() if path.exists() else ""
    return int(text) if text.isdigit() else None


def claim_is(harness: Harness, export_id: str, count: int) -> bool:
    return claim_count(harness, export_id) == count


def hidden(harness: Harness) -> list[Path]:
    return list(harness.output_dir.glob(".*.part"))


def parts(harness: Harness) -> list[str]:
    return sorted(p.name for p in harness.output_dir.glob(".*.part"))


async def test_kill_9_mid_export_then_restart_completes_it_once(harness):
    """Killed mid-write: the half file stays hidden, is cleaned up, and the export is redone."""
    service = ServiceProcess(harness, "crashy")
    try:
        await service.start()
        # One big batch of three exists: the export writes it, then waits for the others.
        start, _ = await harness.write_batches([rows(0, 20_000)], key="victim")
        source = {"topic": harness.records_topic, "partition": 0, "start_offset": start,
                  "end_offset": start + 3, "key": "victim"}  # fmt: skip
        await harness.send_request(harness.request("victim", start, start + 3, source=source))
        await service.wait_for_log("export_started", "victim")
        # The first batch is being written to the hidden file.
        await wait_until(lambda: any(p.stat().st_size > 100_000 for p in hidden(harness)))
        service.kill()
        assert parts(harness), "the dead process left its temporary file"
        assert visible_outputs(harness) == []
        await harness.write_batches([rows(20_000, 5), rows(20_005, 5)], key="victim")
        await service.start()
        result = await harness.result("victim")
    finally:
        service.stop()
    assert result["status"] == "completed", result
    assert result["records"] == 20_010
    assert result["replayed"] is False
    lines = output_of(result).read_text().splitlines()
    assert len(lines) == 20_011  # the header and every record, once
    assert lines[-1].startswith("20009,")
    assert visible_outputs(harness) == ["victim.csv"]
    assert parts(harness) == []
    assert not list(harness.output_dir.glob("*.attempts"))
    assert len(service.events("export_started", "victim")) == 2


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
async def test_shutdown_finishes_what_it_can_and_leaves_the_rest_for_a_restart(harness, sig):
    """Within the grace period running exports finish and are committed; the rest are not
    committed, so the restarted service completes them: every request gets a result."""
    service = ServiceProcess(harness, "draining", shutdown_grace_s=4, max_in_flight=5)
    try:
        await service.start()
        await harness.send_request(
            harness.request("quick", *await harness.write_batches([rows(0, 10)]))
        )
        await harness.result("quick")
        await trickle_request(harness, "finishes", written=2, total=4)
        await trickle_request(harness, "abandoned", written=2, total=4)
        await service.wait_for_log("export_started", "finishes")
        await service.wait_for_log("export_started", "abandoned")
        assert service.process is not None
        service.process.send_signal(sig)
        await service.wait_for_log("service_draining")
        await finish_trickle(harness, "finishes", written=2, total=4)  # arrives during grace
        code = await service.wait_exit()
        assert code == 0
        stopped = service.events("service_stopped")[-1]
        assert (stopped["finished"], stopped["abandoned"]) == (1, 1)
        finished = await harness.result("finishes")
        assert finished["status"] == "completed"
        assert [e for e in harness.events("abandoned") if e["status"] != "running"] == []
        await finish_trickle(harness, "abandoned", written=2, total=4)
        await service.start()
        redone = await harness.result("abandoned")
    finally:
        service.stop()
    assert redone["status"] == "completed"
    assert redone["records"] == 4
    assert visible_outputs(harness) == ["abandoned.csv", "finishes.csv", "quick.csv"]
    assert parts(harness) == []


async def test_a_request_that_kills_the_service_is_failed_on_its_fourth_delivery(harness):
    """Three deliveries die mid-export (kill -9, as the OOM killer would); the fourth fails
    it with `internal` instead of dying again, and the service goes on."""
    service = ServiceProcess(harness, "looping")
    try:
        for attempt in range(1, 4):
            await service.start()
            if attempt == 1:
                await trickle_request(harness, "poison", written=1, total=3)
            await service.wait_for_log("export_started", "poison", count=attempt)
            # Killed only once the attempt is on record beside the outputs, as a real
            # crash mid-export would be (a kill before that is a crash before the export).
            await wait_until(functools.partial(claim_is, harness, "poison", attempt))
            service.kill()
        await service.start()
        result = await harness.result("poison")
        assert result["status"] == "failed"
        assert result["error"]["reason"] == "internal"
        assert "died during each of the last 3 attempts" in result["error"]["message"]
        after = harness.request("after", *await harness.write_batches([rows(0, 3)]))
        await harness.send_request(after)
        assert (await harness.result("after"))["status"] == "completed"
    finally:
        service.stop()
    assert visible_outputs(harness) == ["after.csv"]
    assert parts(harness) == []
