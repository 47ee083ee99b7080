"""Where outputs go, and what is known of them: the store interface.

As in Kafka Connect's storage connectors, a writer knows only bytes (`consumer.writers`)
and a store knows only where bytes go; any format works with any store.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol, Self

if TYPE_CHECKING:
    from types import TracebackType

    from consumer.output_types import OutputType
    from consumer.settings import Settings
    from consumer.storage.manifest import Manifest


class OutputTaken(Exception):
    """Another attempt created this output first (created-only-if-absent said no)."""


@dataclass(frozen=True, slots=True)
class DownloadLink:
    """A presigned GET of an output."""

    url: str
    expires_at: str
    """When the link stops working, in the contract's time format."""


@dataclass(frozen=True, slots=True)
class UnrecordedOutput:
    """An output whose maker died after creating it and before recording its manifest."""

    name: str
    uri: str
    fingerprint: str | None
    """The digest of the request that made it, as stored with the object."""
    size: int
    sha256: str
    """Of the stored bytes, read back."""


class Claim(Protocol):
    """An attempt at one export, held while it runs."""

    @property
    def earlier_attempts(self) -> int:
        """Attempts that started before this one and never ended (their process died)."""

    async def __aenter__(self) -> Self: ...

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...


class StagedOutput(Protocol):
    """An output being written: invisible until `commit()`, gone if left without it.

    `write` blocks and is called from a worker thread (the writers run off the loop);
    `commit` and leaving the `async with` run on the loop.
    """

    @property
    def name(self) -> str:
        """The output's name in the store: `{export_id}.{ext}`."""

    @property
    def uri(self) -> str:
        """Where the output is once committed (the result's `output.uri`)."""

    @property
    def bytes_written(self) -> int: ...

    @property
    def sha256(self) -> str:
        """Hex digest of every byte written."""

    def write(self, data: bytes | memoryview) -> int: ...

    async def commit(self) -> None:
        """Make the output visible, complete, only if it is absent; raises `OutputTaken` when
        another attempt made it first and `WriteError` when it cannot be stored."""

    async def __aenter__(self) -> Self: ...

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Remove what was written unless it was committed."""


class OutputStore(Protocol):
    """Outputs, their manifests and the attempts at them, in one place."""

    @property
    def location(self) -> str:
        """`/srv/exports` or `s3://bucket/prefix`, for logs and the dev banner."""

    async def prepare(self) -> None:
        """Check the store can be used and clear what dead processes left; raises
        `StartupError` with one line naming the place and the setting."""

    async def close(self) -> None:
        """Let go of connections; idempotent."""

    def claim(self, export_id: str) -> Claim:
        """The claim on an export id for one attempt (see each store for what it excludes)."""

    async def remove_parts(self, export_id: str) -> None:
        """Remove what a dead attempt at this export left; call only while holding its claim."""

    def stage(self, export_id: str, output: OutputType, *, fingerprint: str = "") -> StagedOutput:
        """A new output `{export_id}.{ext}`, written as it comes; the store may keep the
        request's `fingerprint` with it."""

    async def unrecorded_output(
        self, export_id: str, output: OutputType
    ) -> UnrecordedOutput | None:
        """The output under this id if it exists without a manifest; None if there is none or
        the store cannot have such (files are replaced, not created only if absent)."""

    async def manifest(self, export_id: str) -> Manifest | None:
        """The completed export under this id, if its manifest and output both exist."""

    async def save_manifest(self, manifest: Manifest) -> None:
        """Record the manifest, after the output is in place."""

    async def download_link(self, file_name: str) -> DownloadLink | None:
        """A fresh link to download the output, where the store gives one."""


def open_store(settings: Settings) -> OutputStore:
    """The store `EXPORT_OUTPUT_URL` names: object storage, or else the output directory."""
    from consumer.storage.local import LocalStore  # noqa: PLC0415 - import loop otherwise

    directory = settings.output_directory
    if directory is not None:
        return LocalStore(directory)
    # Imported only when used: the S3 client costs memory the local store does not need.
    from consumer.storage.s3 import S3Store  # noqa: PLC0415

    return S3Store(settings)
