"""The local-directory store: outputs staged hidden in the output directory, renamed into
place, with a manifest and a claim file beside each.

The manifest (`.{export_id}.manifest.json`) records which request made the output and
the result that was published, so replays and conflicts are told apart after a restart.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import secrets
import threading
from typing import TYPE_CHECKING, Self

from consumer.errors import StartupError, WriteError
from consumer.events import EXPORT_ID_PATTERN
from consumer.offloop import run_off_loop
from consumer.output_types import EXTENSIONS
from consumer.settings import env_name
from consumer.storage.attempts import ExportClaim, claim_path, try_lock
from consumer.storage.manifest import Manifest, decode_manifest, encode_manifest

if TYPE_CHECKING:
    from pathlib import Path
    from types import TracebackType

    from consumer.output_types import OutputType
    from consumer.storage import DownloadLink, UnrecordedOutput

log = logging.getLogger(__name__)

TEMP_SUFFIX = ".part"
MANIFEST_SUFFIX = ".manifest.json"


WRITEBACK_BYTES = 16 * 1024 * 1024


def _write_back(fd: int) -> None:
    # A failure here shows again at the fsync in commit(), which reports it.
    with contextlib.suppress(OSError):
        os.fdatasync(fd)
        # What is on disk leaves the page cache: the next writes reuse those pages instead of
        # taking memory never used before, which costs more (on this 2-core VM a fresh file
        # written into untouched memory took 0.21 s for 84 MB, into reused pages 0.015 s).
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)


class StagedFile:
    """A hidden file in the output directory that becomes the output on `commit()`.

    Counts and hashes what is written, so the result needs no second read. Closing
    without commit removes it: no partial output is ever visible. Every
    `WRITEBACK_BYTES` a thread asks the kernel to write back what is there, so the
    `fsync` before the rename, the last step before the result, has little left to do.
    """

    def __init__(self, temp_path: Path, final_path: Path) -> None:
        self.temp_path = temp_path
        self.final_path = final_path
        self.bytes_written = 0
        self._unsynced = 0
        self._writeback: threading.Thread | None = None
        self._sha256 = hashlib.sha256()
        try:
            self._file = temp_path.open("xb")
        except OSError as exc:
            raise WriteError(
                f"cannot create {temp_path.name} in the output directory: {exc}"
            ) from exc
        self._committed = False

    def write(self, data: bytes | memoryview) -> int:
        try:
            written = self._file.write(data)
        except OSError as exc:
            raise WriteError(f"cannot write {self.final_path.name}: {exc}") from exc
        self._sha256.update(data)
        self.bytes_written += written
        self._unsynced += written
        if self._unsynced >= WRITEBACK_BYTES and not self._writing_back():
            self._start_writeback()
        return written

    def _writing_back(self) -> bool:
        return self._writeback is not None and self._writeback.is_alive()

    def _start_writeback(self) -> None:
        try:
            self._file.flush()
        except OSError as exc:
            raise WriteError(f"cannot write {self.final_path.name}: {exc}") from exc
        self._unsynced = 0
        self._writeback = threading.Thread(
            target=_write_back, args=(self._file.fileno(),), name="writeback", daemon=True
        )
        self._writeback.start()

    def _join_writeback(self) -> None:
        if self._writeback is not None:
            self._writeback.join()
            self._writeback = None

    @property
    def name(self) -> str:
        return self.final_path.name

    @property
    def uri(self) -> str:
        return self.final_path.as_uri()

    @property
    def sha256(self) -> str:
        return self._sha256.hexdigest()

    async def commit(self) -> None:
        """Flush to disk and rename into place atomically (in a thread: fsync waits)."""
        await run_off_loop(self._commit)

    def _commit(self) -> None:
        try:
            self._file.flush()
            self._join_writeback()
            os.fsync(self._file.fileno())
            self._file.close()
            self.temp_path.replace(self.final_path)
        except OSError as exc:
            raise WriteError(f"cannot store {self.final_path.name}: {exc}") from exc
        self._committed = True

    def discard(self) -> None:
        """Remove the staged file; harmless after commit or a second call."""
        self._join_writeback()  # it holds the file's descriptor
        if not self._file.closed:
            self._file.close()
        if not self._committed:
            self.temp_path.unlink(missing_ok=True)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.discard()


class LocalStore:
    """The output directory: paths checked to stay inside it, staged writes, manifests.

    Its claim is exclusive across every process sharing the directory (see `attempts`).
    """

    def __init__(self, root: Path) -> None:
        self.root = root.resolve()

    @property
    def location(self) -> str:
        return str(self.root)

    async def close(self) -> None:
        """Nothing held between exports."""

    async def download_link(self, file_name: str) -> DownloadLink | None:  # noqa: ARG002
        """None: a file URI is the only way to the output (on this host)."""
        return None

    async def prepare(self) -> None:
        """Create the directory and remove what dead processes left half-written."""
        try:
            self._prepare()
        except OSError as exc:
            raise StartupError(
                f"cannot use the output directory {self.root} "
                f"({env_name('output_dir')}): {exc.strerror or exc}"
            ) from exc

    def _prepare(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        removed = 0
        for part in self.root.glob(f".*{TEMP_SUFFIX}"):
            export_id = _export_id_of_part(part.name)
            if export_id is None or not EXPORT_ID_PATTERN.fullmatch(export_id):
                continue
            # Only when no live process (this host or another sharing the volume) holds
            # the claim; a claim file with no holder keeps its count for the redelivery.
            claim = claim_path(self.root, export_id)
            fd = try_lock(claim, create=False)
            if fd is None and claim.exists():
                continue
            try:
                part.unlink(missing_ok=True)
                removed += 1
            finally:
                if fd is not None:
                    os.close(fd)
        if removed:
            log.info(
                "removed %d temporary files left by a stopped process",
                removed,
                extra={"event": "stale_files_removed", "count": removed},
            )

    def claim(self, export_id: str) -> ExportClaim:
        """The cross-process claim on an export id; see `consumer.storage.attempts`."""
        self._check_id(export_id)
        return ExportClaim(claim_path(self.root, export_id))

    async def remove_parts(self, export_id: str) -> None:
        """Delete this export's temporary files; call only while holding its claim."""
        self._check_id(export_id)
        for part in self.root.glob(f".{export_id}.*{TEMP_SUFFIX}"):
            if _export_id_of_part(part.name) == export_id:
                part.unlink(missing_ok=True)

    def _inside(self, name: str) -> Path:
        path = (self.root / name).resolve()
        if path.parent != self.root:
            raise WriteError(f"{name!r} would be written outside the output directory")
        return path

    def _check_id(self, export_id: str) -> None:
        # The id is validated on decode already; this guards every path built here.
        if not EXPORT_ID_PATTERN.fullmatch(export_id):
            raise WriteError(f"export_id {export_id!r} is not a safe file name")

    def output_path(self, export_id: str, output: OutputType) -> Path:
        self._check_id(export_id)
        return self._inside(f"{export_id}.{output.extension}")

    def _manifest_path(self, export_id: str) -> Path:
        self._check_id(export_id)
        return self._inside(f".{export_id}{MANIFEST_SUFFIX}")

    async def unrecorded_output(
        self,
        export_id: str,  # noqa: ARG002 - the interface's
        output: OutputType,  # noqa: ARG002
    ) -> UnrecordedOutput | None:
        """None: a file without a manifest is simply made again and renamed over."""
        return None

    def stage(
        self,
        export_id: str,
        output: OutputType,
        *,
        fingerprint: str = "",  # noqa: ARG002 - the manifest holds it
    ) -> StagedFile:
        """A hidden temporary file that becomes `{export_id}.{ext}` on commit."""
        final = self.output_path(export_id, output)
        temp = self._inside(f".{export_id}.{output.extension}.{secrets.token_hex(4)}{TEMP_SUFFIX}")
        return StagedFile(temp, final)

    async def manifest(self, export_id: str) -> Manifest | None:
        """The completed export under this id, if its manifest and output both exist."""
        path = self._manifest_path(export_id)
        try:
            manifest = decode_manifest(path.read_bytes())
        except FileNotFoundError:
            return None
        except (OSError, ValueError):
            log.warning(
                "unreadable manifest, export will be redone",
                extra={"event": "manifest_unreadable", "export_id": export_id},
            )
            return None
        if not self._inside(manifest.file_name).is_file():
            # The output was removed by hand: the export is made again.
            return None
        return manifest

    async def save_manifest(self, manifest: Manifest) -> None:
        """Write the manifest atomically, after the output is in place."""
        path = self._manifest_path(manifest.export_id)
        temp = path.with_name(path.name + f".{secrets.token_hex(4)}{TEMP_SUFFIX}")
        body = encode_manifest(manifest)
        try:
            temp.write_bytes(body)
            temp.replace(path)
        except OSError as exc:
            temp.unlink(missing_ok=True)
            raise WriteError(f"cannot record the manifest of {manifest.export_id}: {exc}") from exc


def _export_id_of_part(name: str) -> str | None:
    """`.{id}.{ext}.{token}.part` or `.{id}.manifest.json.{token}.part` -> id (an id may
    hold dots, so the extension is matched whole)."""
    if not name.startswith(".") or not name.endswith(TEMP_SUFFIX):
        return None
    staged = name[1 : -len(TEMP_SUFFIX)].rpartition(".")[0]  # drop the token
    if staged.endswith(MANIFEST_SUFFIX):
        return staged[: -len(MANIFEST_SUFFIX)]
    for extension in EXTENSIONS:
        if staged.endswith("." + extension):
            return staged[: -len(extension) - 1] or None
    return None
