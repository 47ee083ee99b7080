"""The local store's claims across real processes: exclusive, released by death, counting
attempts that died."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import textwrap
from typing import TYPE_CHECKING

import pytest

from consumer.output_types import OutputType
from consumer.storage.local import LocalStore
from consumer.structs import ExportFormat

if TYPE_CHECKING:
    from pathlib import Path

# A process that claims an export, stages its output, says so, then waits to be killed.
HOLDER = textwrap.dedent(
    """
    import asyncio, sys
    from pathlib import Path
    from consumer.storage.local import LocalStore
    from consumer.structs import ExportFormat
    from consumer.output_types import OutputType

    async def main():
        store = LocalStore(Path(sys.argv[1]))
        async with store.claim(sys.argv[2]):
            staged = store.stage(sys.argv[2], OutputType.of(ExportFormat.CSV))
            staged.write(b"half a file")
            print("claimed", flush=True)
            await asyncio.sleep(3600)

    asyncio.run(main())
    """
)


@pytest.fixture
async def store(tmp_path: Path) -> LocalStore:
    out = LocalStore(tmp_path / "exports")
    await out.prepare()
    return out


def hold(store: LocalStore, export_id: str) -> subprocess.Popen[str]:
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(store.root), export_id],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout is not None
    assert holder.stdout.readline().strip() == "claimed"
    return holder


def kill(holder: subprocess.Popen[str]) -> None:
    holder.send_signal(signal.SIGKILL)
    holder.wait(timeout=10)
    if holder.stdout is not None:
        holder.stdout.close()


async def test_a_claim_waits_for_another_process_and_counts_its_death(store: LocalStore):
    """While a live process holds the claim we wait; once it is killed we get it, told why."""
    holder = hold(store, "exp-1")
    try:
        claim = store.claim("exp-1")
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.5), claim:
                pass
    finally:
        kill(holder)
    async with store.claim("exp-1") as claim:
        assert claim.earlier_attempts == 1
    async with store.claim("exp-1") as claim:
        assert claim.earlier_attempts == 0  # the attempt above ended: no death to count
    assert not list(store.root.glob("*.attempts"))  # nor a claim file left behind


async def test_deaths_accumulate_until_an_attempt_ends(store: LocalStore):
    for _ in range(3):
        kill(hold(store, "poison"))
    async with store.claim("poison") as claim:
        assert claim.earlier_attempts == 3


async def test_start_up_removes_parts_of_dead_processes_only(store: LocalStore):
    """A dead writer's half file goes at start-up; a live writer's stays."""
    kill(hold(store, "dead-one"))
    live = hold(store, "live-one")
    try:
        parts = sorted(p.name.split(".")[1] for p in store.root.glob(".*.part"))
        assert parts == ["dead-one", "live-one"]
        await LocalStore(store.root).prepare()
        left = [p.name for p in store.root.glob(".*.part")]
        assert len(left) == 1
        assert left[0].startswith(".live-one.csv.")
    finally:
        kill(live)


async def test_parts_of_a_dead_attempt_go_when_the_export_is_claimed_again(store: LocalStore):
    kill(hold(store, "again"))
    staged_by_us = store.stage("other", OutputType.of(ExportFormat.CSV))
    async with store.claim("again"):
        await store.remove_parts("again")
    assert [p.name for p in store.root.glob(".*.part")] == [staged_by_us.temp_path.name]
    staged_by_us.discard()
