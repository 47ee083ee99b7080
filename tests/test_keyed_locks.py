"""Per-id serialisation of exports."""

from __future__ import annotations

import asyncio

from consumer.keyed_locks import KeyedLocks


async def test_same_key_waits_and_locks_are_dropped():
    """Work under one key runs one at a time; no lock is kept once all are done."""
    locks = KeyedLocks()
    order: list[str] = []

    async def work(name: str) -> None:
        async with locks.hold("id"):
            order.append(f"{name}-in")
            await asyncio.sleep(0.01)
            order.append(f"{name}-out")

    await asyncio.gather(work("a"), work("b"))
    assert order == ["a-in", "a-out", "b-in", "b-out"]
    assert len(locks) == 0
