"""TLS in front of the embedded broker: certificates from the openssl command and
Debian's stunnel4 terminating TLS, the broker advertising stunnel's address.

Tansu's own --cert/--key gave no working TLS listener here; stunnel is what a user
would put in front of a plaintext broker, and it makes the clients do real TLS.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Self

import pytest

from consumer.broker import free_port

if TYPE_CHECKING:
    from pathlib import Path
    from types import TracebackType

STARTUP_TIMEOUT_S = 10.0


@dataclass(frozen=True)
class Certificates:
    ca: Path
    """The CA that signed the server certificate: what clients must trust."""
    other_ca: Path
    """A CA that signed nothing here: trusting only it must fail."""
    server_cert: Path
    server_key: Path


def _openssl(*args: str, cwd: Path) -> None:
    tool = shutil.which("openssl")
    if tool is None:
        pytest.fail("openssl not found: install Debian's `openssl` package (.ci/run does)")
    subprocess.run([tool, *args], cwd=cwd, check=True, capture_output=True, timeout=60)


def _make_ca(folder: Path, name: str) -> tuple[Path, Path]:
    key, cert = folder / f"{name}.key", folder / f"{name}.pem"
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj",
             f"/CN={name}", "-keyout", key.name, "-out", cert.name, cwd=folder)  # fmt: skip
    return key, cert


def make_certificates(folder: Path) -> Certificates:
    """A CA, a server certificate it signs for 127.0.0.1 and localhost, and another CA."""
    ca_key, ca = _make_ca(folder, "test-ca")
    _, other_ca = _make_ca(folder, "other-ca")
    (folder / "san.ext").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    _openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=127.0.0.1",
             "-keyout", "server.key", "-out", "server.csr", cwd=folder)  # fmt: skip
    _openssl("x509", "-req", "-in", "server.csr", "-CA", ca.name, "-CAkey", ca_key.name,
             "-CAcreateserial", "-days", "2", "-extfile", "san.ext", "-out", "server.pem",
             cwd=folder)  # fmt: skip
    return Certificates(ca, other_ca, folder / "server.pem", folder / "server.key")


def _accepts(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.2)
        return sock.connect_ex(("127.0.0.1", port)) == 0


class Stunnel:
    """stunnel4 accepting TLS on `port` and forwarding plaintext to `target`."""

    def __init__(self, folder: Path, certificates: Certificates, target: str) -> None:
        self.port = free_port()
        self._folder = folder
        self._config = folder / "stunnel.conf"
        self._config.write_text(
            "foreground = yes\n"
            "pid =\n"
            f"output = {folder / 'stunnel.log'}\n"
            "[kafka]\n"
            f"accept = 127.0.0.1:{self.port}\n"
            f"connect = {target}\n"
            f"cert = {certificates.server_cert}\n"
            f"key = {certificates.server_key}\n"
        )
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def __enter__(self) -> Self:
        tool = shutil.which("stunnel4") or shutil.which("stunnel")
        if tool is None:
            pytest.fail("stunnel not found: install Debian's `stunnel4` package (.ci/run does)")
        self._process = subprocess.Popen(
            [tool, str(self._config)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while not _accepts(self.port):
            if self._process.poll() is not None or time.monotonic() > deadline:
                self.__exit__(None, None, None)
                raise RuntimeError(f"stunnel did not start: {self._log()}")
            time.sleep(0.05)
        return self

    def _log(self) -> str:
        path = self._folder / "stunnel.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._process is not None:
            self._process.terminate()
            self._process.wait(timeout=10)
            self._process = None
