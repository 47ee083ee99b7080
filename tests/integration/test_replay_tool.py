"""`replay-export`, run as the command it is, against a live service."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from typing import Any

from tests.integration.harness import Harness, output_of


def rows(first: int, count: int) -> list[dict[str, Any]]:
    return [{"id": first + i, "name": f"name {first + i}", "amount": i} for i in range(count)]


async def replay(harness: Harness, *args: str) -> list[str]:
    """Run the tool; its stdout lines (it must exit 0)."""
    command = [sys.executable, "-m", "producer_tools.replay", "--quiet",
               "--bootstrap-servers", harness.settings.bootstrap_servers,
               "--request-topic", harness.settings.request_topic,
               "--result-topic", harness.settings.result_topic, *args]  # fmt: skip
    done = await asyncio.to_thread(
        subprocess.run, command, capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.splitlines()


async def test_replays_by_offsets_time_and_failure_without_duplicate_exports(harness):
    small = await harness.write_batches([rows(0, 20)])
    missing = f"{harness.records_topic}-later"
    requests = [
        harness.request("ok-1", *small),
        harness.request("ok-2", *small, format="pdf"),
        harness.request("late-source", 0, 5, source={"topic": missing, "partition": 0,
                                                     "start_offset": 0, "end_offset": 5}),
        harness.request("invalid", *small, columns=[]),
    ]  # fmt: skip
    async with harness.service():
        for body in requests:
            await harness.send_request(body)
        first = {b["export_id"]: await harness.result(b["export_id"]) for b in requests}
        assert [r["status"] for r in first.values()] == ["completed", "completed", "failed",
                                                         "failed"]  # fmt: skip
        files = {k: output_of(first[k]).stat().st_mtime_ns for k in ("ok-1", "ok-2")}

        # --dry-run lists and sends nothing; --reason narrows --failed.
        listed = await replay(harness, "--failed", "--dry-run")
        assert [line.split()[2] for line in listed[:-1]] == sorted(["late-source", "invalid"])
        assert listed[-1].startswith("would replay 2 request(s)")
        narrowed = await replay(harness, "--failed", "--reason", "source_unavailable", "--dry-run")
        assert [line.split()[2] for line in narrowed[:-1]] == ["late-source"]
        future = await replay(harness, "--since", "2999-01-01T00:00:00Z", "--dry-run")
        assert future == [f"would replay 0 request(s) on {harness.settings.request_topic}"]
        window = await replay(harness, "--since", "2000-01-01T00:00:00Z", "--dry-run")
        assert len(window) == 5

        # The whole topic again, by offsets: completed ones are answered from their outputs.
        sent = await replay(harness, "--from-offset", "0")
        assert sent[-1].startswith("replayed 4 request(s)")
        again = {b["export_id"]: await harness.result(b["export_id"], nth=2) for b in requests}
        assert again["ok-1"]["replayed"] is True
        assert again["ok-2"]["replayed"] is True
        assert again["late-source"]["error"]["reason"] == "source_unavailable"
        assert again["invalid"]["error"]["reason"] == "invalid_request"
        assert {k: output_of(again[k]).stat().st_mtime_ns for k in files} == files

        # The missing source appears; re-driving the source failures now completes it.
        await harness.write_batches([rows(0, 1) for _ in range(5)], topic=missing)
        redriven = await replay(harness, "--failed", "--reason", "source_unavailable")
        assert [line.split()[1] for line in redriven[:-1]] == ["late-source"]
        fixed = await harness.result("late-source", nth=3)
    assert fixed["status"] == "completed"
    assert fixed["records"] == 5
    visible = sorted(p.name for p in harness.output_dir.iterdir() if not p.name.startswith("."))
    assert visible == ["late-source.csv", "ok-1.csv", "ok-2.pdf"]
