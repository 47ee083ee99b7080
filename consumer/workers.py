"""Worker processes behind pipes: a pool, the worker handle, and errors across the pipe.

A worker is a fresh interpreter (`python -m consumer.worker_main`), not a fork: the
service has threads (the metrics server, aiokafka's), which a fork would copy in
whatever state they were. It is started with `subprocess` and talks over a socket pair
wrapped in multiprocessing's `Connection`, rather than started by multiprocessing's
spawn, which also starts a resource-tracker process (12 MB) that nothing here needs and
imports the service's `__main__` again in every worker. A worker that dies fails its
export with `internal`; one abandoned mid-export is killed and replaced.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
from multiprocessing.connection import Connection
from multiprocessing.reduction import send_handle
from typing import TYPE_CHECKING, Any

from consumer.errors import (
    BadRecord,
    ExportError,
    FailureReason,
    InvalidRequest,
    SourceUnavailable,
    TooLarge,
    WriteError,
)

if TYPE_CHECKING:
    from collections.abc import Callable

STOP_WAIT_S = 5.0

_ERRORS: dict[str, type[ExportError]] = {
    FailureReason.INVALID_REQUEST.value: InvalidRequest,
    FailureReason.TOO_LARGE.value: TooLarge,
    FailureReason.BAD_RECORD.value: BadRecord,
    FailureReason.SOURCE_UNAVAILABLE.value: SourceUnavailable,
    FailureReason.WRITE_ERROR.value: WriteError,
}


def error_reply(exc: Exception, *extra: Any) -> tuple[Any, ...]:
    """An exception as a worker sends it back: reason, message, offset, then `extra`."""
    if isinstance(exc, ExportError):
        return ("error", exc.reason.value, exc.message, exc.offset, *extra)
    return ("error", FailureReason.INTERNAL.value, f"{type(exc).__name__}: {exc}", None, *extra)


def raise_reply(reply: tuple[Any, ...]) -> None:
    """Raise the error a worker reported, with its reason and offset."""
    _, reason, text, offset, *_ = reply
    raise _ERRORS.get(reason, ExportError)(text, offset=offset)


class Worker:
    def __init__(self, process: subprocess.Popen[bytes], conn: Connection, name: str) -> None:
        self.process = process
        self.conn = conn
        self.name = name

    @property
    def alive(self) -> bool:
        return self.process.poll() is None

    def call(self, *message: Any) -> Any:
        self.send(*message)
        return self.receive()

    def send(self, *message: Any) -> None:
        try:
            self.conn.send(message)
        except OSError as exc:
            raise self._died() from exc

    def send_handle(self, fd: int) -> None:
        """Pass a file descriptor, after a message that tells the worker to take it."""
        try:
            send_handle(self.conn, fd, self.process.pid)
        except OSError as exc:
            raise self._died() from exc

    def receive(self) -> Any:
        """The reply to the oldest message sent; a reported error is raised here."""
        reply = self.receive_reply()
        if reply[0] == "error":
            raise_reply(reply)
        return reply[1]

    def receive_reply(self) -> tuple[Any, ...]:
        """The reply as sent, errors included; a dead worker raises `internal`."""
        try:
            reply: tuple[Any, ...] = self.conn.recv()
        except (EOFError, OSError) as exc:
            raise self._died() from exc
        return reply

    def _died(self) -> ExportError:
        try:
            code: int | None = self.process.wait(timeout=1)
        except subprocess.TimeoutExpired:
            code = None
        return ExportError(f"the {self.name} process died (exit code {code})")

    def kill(self) -> None:
        self.conn.close()
        if self.alive:
            self.process.kill()
        self.process.wait(timeout=STOP_WAIT_S)


class WorkerPool:
    """Up to `size` worker processes running `target(conn, *args)`; idle ones are kept."""

    def __init__(
        self, size: int, target: Callable[..., None], args: tuple[Any, ...], name: str
    ) -> None:
        self.size = size
        self.name = name
        self._target = f"{target.__module__}:{target.__qualname__}"
        self._args = json.dumps(args)
        """Given to the worker on its command line: strings and numbers only."""
        self._idle: list[Worker] = []
        self._busy: set[Worker] = set()
        self._lock = threading.Lock()
        self._closed = False
        self._starting = 0
        """Checkouts under way (a spawn takes a while), counted as busy."""

    def worker_pids(self) -> list[int]:
        """Process ids of the workers (for operators and fault tests)."""
        with self._lock:
            return [w.process.pid for w in [*self._idle, *self._busy]]

    def checkout(self) -> Worker:
        worker = self.checkout_below(None)
        assert worker is not None  # noqa: S101 - no limit, always a worker
        return worker

    def checkout_below(self, busy_limit: int | None) -> Worker | None:
        """A worker; with `busy_limit`, only while fewer than that are busy (else None)."""
        with self._lock:
            if self._closed:
                raise ExportError(f"the {self.name} pool is shut down")
            if busy_limit is not None and len(self._busy) + self._starting >= busy_limit:
                return None
            worker = self._idle.pop() if self._idle else None
            self._starting += 1
        try:
            if worker is not None and not worker.alive:
                worker.kill()  # died while idle: close its pipe and reap it
                worker = None
            if worker is None:
                worker = self._spawn()
        finally:
            with self._lock:
                self._starting -= 1
        with self._lock:
            self._busy.add(worker)
        return worker

    def checkin(self, worker: Worker, *, reusable: bool) -> None:
        with self._lock:
            self._busy.discard(worker)
            keep = reusable and not self._closed and worker.alive
            if keep and len(self._idle) < self.size:
                self._idle.append(worker)
                return
        worker.kill()

    def _spawn(self) -> Worker:
        parent, child = socket.socketpair()
        with child:
            command = [sys.executable, "-m", "consumer.worker_main", self._target]
            command += [str(child.fileno()), self._args]
            process = subprocess.Popen(  # noqa: S603 - our own module, fixed arguments
                command, pass_fds=[child.fileno()], stdin=subprocess.DEVNULL
            )
        return Worker(process, Connection(parent.detach()), self.name)

    def stop(self) -> None:
        """Kill every worker; safe to call twice."""
        with self._lock:
            self._closed = True
            workers = [*self._idle, *self._busy]
            self._idle.clear()
            self._busy.clear()
        for worker in workers:
            worker.kill()
