"""The service as a separate process, for faults that need one: signals, kill -9, restarts."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from typing import TYPE_CHECKING, Any

import orjson

from consumer.broker import free_port
from consumer.settings import env_name
from tests.integration.harness import scrape

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

    from tests.integration.harness import Harness

READY_WAIT_S = 60.0


class ServiceProcess:
    """`python -m consumer.cli run` with the harness's settings; JSON logs to a file."""

    def __init__(self, harness: Harness, name: str, **overrides: Any) -> None:
        self.name = name
        self.metrics_port = free_port()
        settings = {**harness.base, "metrics_port": str(self.metrics_port)}
        settings.update({k: str(v) for k, v in overrides.items()})
        self.env = {env_name(k): v for k, v in settings.items()}
        self.log_path: Path = harness.root / f"{name}.log"
        self.process: subprocess.Popen[bytes] | None = None
        self.starts = 0

    async def start(self, *, wait_ready: bool = True) -> None:
        env = {**_inherited_env(), **self.env}
        self.starts += 1
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(  # noqa: ASYNC220 - returns at once
                [sys.executable, "-m", "consumer.cli", "run"], env=env, stderr=log
            )
        if wait_ready:
            await self.wait_ready()

    async def wait_ready(self, wait_s: float = READY_WAIT_S) -> None:
        deadline = time.monotonic() + wait_s
        while True:
            assert self.process is not None
            assert self.process.poll() is None, f"{self.name} exited with {self.process.returncode}"
            try:
                status, _ = await asyncio.to_thread(scrape, self.metrics_port, "/readyz")
            except OSError:
                status = 0
            if status == 200:
                return
            assert time.monotonic() < deadline, f"{self.name} did not become ready"
            await asyncio.sleep(0.1)

    def kill(self) -> None:
        """SIGKILL: no handler runs, nothing is flushed or committed."""
        process, self.process = self.process, None
        if process is not None:
            process.kill()
            process.wait(timeout=30)

    async def signal_and_wait(self, sig: signal.Signals, wait_s: float = 60) -> int:
        """Send a signal and return the exit status."""
        assert self.process is not None
        self.process.send_signal(sig)
        return await self.wait_exit(wait_s)

    async def wait_exit(self, wait_s: float = 60) -> int:
        """Wait for the process to end (after a signal sent earlier); its exit status."""
        process, self.process = self.process, None
        assert process is not None
        return await asyncio.to_thread(process.wait, wait_s)

    def stop(self) -> None:
        """Best-effort cleanup for `finally`: SIGTERM, then SIGKILL."""
        process, self.process = self.process, None
        if process is None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def logs(self) -> list[dict[str, Any]]:
        """Every JSON log line written so far, across restarts."""
        lines = self.log_path.read_bytes().splitlines() if self.log_path.exists() else []
        return [orjson.loads(line) for line in lines if line.startswith(b"{")]

    def events(self, event: str, export_id: str | None = None) -> list[dict[str, Any]]:
        return [
            e
            for e in self.logs()
            if e.get("event") == event and (export_id is None or e.get("export_id") == export_id)
        ]

    async def wait_for_log(
        self, event: str, export_id: str | None = None, *, count: int = 1, wait_s: float = 60
    ) -> None:
        deadline = time.monotonic() + wait_s
        while len(self.events(event, export_id)) < count:
            assert time.monotonic() < deadline, f"{self.name}: no {event} for {export_id}"
            await asyncio.sleep(0.05)


async def wait_until(condition: Callable[[], bool], wait_s: float = 60) -> None:
    """Poll something another process changes (a file, a log) until it holds."""
    async with asyncio.timeout(wait_s):
        while not condition():  # noqa: ASYNC110 - no event to wait on across processes
            await asyncio.sleep(0.02)


def _inherited_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("EXPORT_")}
