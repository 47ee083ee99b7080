"""Certificates for the TLS tests, from the openssl command: a test CA, a server
certificate it signs for 127.0.0.1, and a second CA that signed nothing."""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from pathlib import Path


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
