"""Soak: a steady mix of valid, invalid and poison requests while instances are killed.

CI runs the short version (EXPORT_SOAK_S, default 30 s of traffic); run it for minutes with
`EXPORT_SOAK_S=300 python -m pytest -m soak`.
"""

from __future__ import annotations

import asyncio
import os
import random
import statistics
import time
from collections import Counter
from typing import TYPE_CHECKING, Any

import pytest

from consumer.metrics import resident_memory_bytes
from tests.integration.harness import Harness, output_of
from tests.integration.processes import ServiceProcess

if TYPE_CHECKING:
    from collections.abc import Callable

SOAK_S = float(os.environ.get("EXPORT_SOAK_S", "30"))
KILL_EVERY_S = 6.0
SEND_EVERY_S = 0.05
MB = 1024 * 1024


def rows(first: int, count: int) -> list[dict[str, Any]]:
    return [{"id": first + i, "name": f"name {first + i}", "amount": i} for i in range(count)]


class Expectations:
    def __init__(self) -> None:
        self.completed: dict[str, int] = {}
        """export_id -> records."""
        self.invalid: list[str] = []
        self.poison: list[bytes] = []


async def send_mix(harness: Harness, rng: random.Random, until: float) -> Expectations:
    small = await harness.write_batches([rows(0, 40)])
    medium = await harness.write_batches([rows(i, 500) for i in range(0, 3000, 500)])
    expect = Expectations()
    n = 0
    while time.monotonic() < until:
        n += 1
        roll = rng.random()
        export_id = f"soak-{n:05d}"
        if roll < 0.5:
            await harness.send_request(harness.request(export_id, *small))
            expect.completed[export_id] = 40
        elif roll < 0.6:
            await harness.send_request(harness.request(export_id, *medium))
            expect.completed[export_id] = 3000
        elif roll < 0.7:
            await harness.send_request(harness.request(export_id, *small, format="pdf"))
            expect.completed[export_id] = 40
        elif roll < 0.85:
            await harness.send_request(harness.request(export_id, *small, columns=[]))
            expect.invalid.append(export_id)
        else:
            poison = f"poison {n}: not JSON {{".encode()
            await harness.send_request(poison, key=poison)
            expect.poison.append(poison)
        await asyncio.sleep(SEND_EVERY_S)
    return expect


async def kill_now_and_then(victim: ServiceProcess, rng: random.Random, until: float) -> int:
    kills = 0
    while time.monotonic() < until:
        await asyncio.sleep(KILL_EVERY_S * rng.uniform(0.5, 1.5))
        victim.kill()
        kills += 1
        await victim.start(wait_ready=False)
    return kills


async def sample_memory(pid: Callable[[], int], until: float) -> list[int]:
    samples = []
    while time.monotonic() < until:
        samples.append(resident_memory_bytes(pid()))
        await asyncio.sleep(0.5)
    return samples


@pytest.mark.soak
@pytest.mark.timeout(SOAK_S + 300)
async def test_soak_with_random_kills(harness):
    rng = random.Random(20261128)  # noqa: S311 - reproducible traffic, not security
    steady = ServiceProcess(harness, "steady", timeout_s=60)
    victim = ServiceProcess(harness, "victim", timeout_s=60)
    try:
        await asyncio.gather(steady.start(), victim.start())
        until = time.monotonic() + SOAK_S
        assert steady.process is not None
        steady_pid = steady.process.pid
        expect, kills, memory = await asyncio.gather(
            send_mix(harness, rng, until),
            kill_now_and_then(victim, rng, until),
            sample_memory(lambda: steady_pid, until),
        )
        await victim.wait_ready()
        results = {e: await harness.result(e, wait_s=180) for e in expect.completed}
        invalid = {e: await harness.result(e, wait_s=60) for e in expect.invalid}
        dead = await harness.dead_letters(len(expect.poison), wait_s=60, covering=expect.poison)
    finally:
        steady.stop()
        victim.stop()
    assert kills >= 2
    assert len(expect.completed) > 100
    for export_id, records in expect.completed.items():
        result = results[export_id]
        assert result["status"] == "completed", str(result)
        assert result["records"] == records, export_id
        assert output_of(result).stat().st_size == result["bytes"], export_id
    on_disk = sorted(p.stem for p in harness.output_dir.iterdir() if not p.name.startswith("."))
    assert on_disk == sorted(expect.completed)  # each valid request exactly once on disk
    assert not list(harness.output_dir.glob(".*.part"))
    made = Counter(e["export_id"] for s in (steady, victim) for e in s.events("output_stored"))
    assert max(made.values()) == 1, made.most_common(3)  # none made twice, kills or not
    for export_id, result in invalid.items():
        assert result["error"]["reason"] == "invalid_request", export_id
    assert {m.value for m in dead} >= set(expect.poison)  # redelivery may repeat one, never lose
    # Memory of the instance that ran throughout: the last third no higher than the
    # second third plus a margin for allocator noise (the first third is warm-up).
    third = len(memory) // 3
    middle, last = memory[third : 2 * third], memory[2 * third :]
    assert statistics.median(last) < statistics.median(middle) + 20 * MB, (
        statistics.median(middle) / MB,
        statistics.median(last) / MB,
    )
