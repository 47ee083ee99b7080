"""One output streamed into the bucket: parts as they fill, visible only at completion.

A writer thread calls `write`; each full part is handed to the event loop to upload while
the thread goes on filling the next one (it waits only when that one is full and
UPLOADS_IN_FLIGHT uploads are still going), so formatting and uploading overlap, a fixed
few part buffers are held in memory, reused part after part, and nothing is staged on
disk. A small output goes
in one put. Either way the object is created only if absent (`If-None-Match: *`);
leaving without `commit()` aborts the multipart upload.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import io
import logging
import threading
from collections import deque
from operator import itemgetter
from typing import TYPE_CHECKING, Any, Self

from botocore.exceptions import BotoCoreError, ClientError

from consumer.storage import OutputTaken
from consumer.storage.s3_bucket import CONDITIONAL_CONFLICT, PRECONDITION_FAILED, status_of

if TYPE_CHECKING:
    import concurrent.futures
    from collections.abc import Coroutine, Iterator
    from types import TracebackType

    from consumer.storage.s3_bucket import Bucket

log = logging.getLogger(__name__)

PART_BYTES = 8 * 1024 * 1024
"""Above S3's 5 MiB minimum part; 10,000 parts make 80 GiB, past EXPORT_MAX_OUTPUT_BYTES."""
UPLOADS_IN_FLIGHT = 2
"""Parts uploading at once while the next one fills: 85 MB into SeaweedFS took 0.83 s
with one, 0.56 s with two, 0.64 s with three (/tmp probe of S3Upload alone); memory is
UPLOADS_IN_FLIGHT + 1 part buffers."""
ABORT_WAIT_S = 10.0
"""How long an abort waits for the part uploads under way before cancelling them."""


class PartReader(io.RawIOBase):
    """A part buffer as the seekable file the client reads a body from (it signs it, then
    sends it in chunks; a retry seeks back), without copying the buffer."""

    def __init__(self, data: bytearray) -> None:
        super().__init__()
        self._view = memoryview(data)
        self._position = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        taken = self._view[self._position : self._position + len(buffer)]
        buffer[: len(taken)] = taken
        self._position += len(taken)
        return len(taken)

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._position, io.SEEK_END: len(self._view)}
        self._position = min(max(base[whence] + offset, 0), len(self._view))
        return self._position

    def tell(self) -> int:
        return self._position

    def close(self) -> None:
        # The client closes the body after sending; the buffer is filled again, so the
        # view goes now rather than at garbage collection.
        self._view.release()
        super().close()


class S3Upload:
    """The staged output of the S3 store (see the module docstring)."""

    def __init__(
        self, bucket: Bucket, key: str, content_type: str, metadata: dict[str, str]
    ) -> None:
        self._bucket = bucket
        self._key = key
        self._content_type = content_type
        self._metadata = metadata
        self._loop = asyncio.get_running_loop()
        self._loop_thread = threading.get_ident()
        self._spare: list[bytearray] = []
        """Part buffers whose upload finished, to fill again: the same few buffers serve
        the whole output (fresh 8 MiB allocations per part fragment the heap)."""
        self._part = bytearray(PART_BYTES)
        self._filled = 0
        self._upload_id: str | None = None
        self._parts: list[dict[str, Any]] = []
        self._part_count = 0
        self._creating = asyncio.Lock()
        self._uploading: deque[concurrent.futures.Future[None]] = deque()
        """The part uploads under way, oldest first, started by `write`."""
        self._sha256 = hashlib.sha256()
        self._committed = False
        self.bytes_written = 0

    @property
    def name(self) -> str:
        return self._key.rpartition("/")[2]

    @property
    def uri(self) -> str:
        return self._bucket.uri(self._key)

    @property
    def sha256(self) -> str:
        return self._sha256.hexdigest()

    def write(self, data: bytes | memoryview) -> int:
        """Take bytes; from a worker thread, since a full part is uploaded before returning."""
        self._sha256.update(data)
        self.bytes_written += len(data)
        view = memoryview(data)
        while view:
            room = PART_BYTES - self._filled
            taken = view[:room]
            self._part[self._filled : self._filled + len(taken)] = taken
            self._filled += len(taken)
            view = view[len(taken) :]
            if self._filled == PART_BYTES:
                part, self._filled = self._part, 0
                self._part_count += 1
                self._start_on_loop(self._upload_part(self._part_count, part))
                self._part = self._spare.pop() if self._spare else bytearray(PART_BYTES)
        return len(data)

    def _start_on_loop(self, step: Coroutine[Any, Any, None]) -> None:
        """Start this part's upload once fewer than UPLOADS_IN_FLIGHT are under way
        (raising the error of one that failed)."""
        if threading.get_ident() == self._loop_thread:
            step.close()
            raise RuntimeError("S3Upload.write blocks: call it from a worker thread")
        while len(self._uploading) >= UPLOADS_IN_FLIGHT:
            try:
                self._uploading.popleft().result()
            except BaseException:
                step.close()
                raise
        self._uploading.append(asyncio.run_coroutine_threadsafe(step, self._loop))

    async def _uploaded(self) -> None:
        """Wait for the part uploads `write` started."""
        while self._uploading:
            await asyncio.wrap_future(self._uploading.popleft())

    async def _upload_part(self, number: int, part: bytes | bytearray) -> None:
        try:
            await self._send_part(number, part)
        finally:
            if isinstance(part, bytearray):
                self._spare.append(part)

    async def _send_part(self, number: int, part: bytes | bytearray) -> None:
        with self._bucket.guard(f"cannot upload part of {self.uri}"), _taken_if_gone(self.uri):
            client = self._bucket.client
            async with self._creating:  # the first part creates the upload, the rest wait
                if self._upload_id is None:
                    answer = await client.create_multipart_upload(
                        Bucket=self._bucket.name,
                        Key=self._key,
                        ContentType=self._content_type,
                        Metadata=self._metadata,
                    )
                    self._upload_id = str(answer["UploadId"])
            answer = await client.upload_part(
                Bucket=self._bucket.name,
                Key=self._key,
                UploadId=self._upload_id,
                PartNumber=number,
                Body=PartReader(part) if isinstance(part, bytearray) else part,
            )
            self._parts.append({"PartNumber": number, "ETag": answer["ETag"]})

    async def commit(self) -> None:
        """Create the object from what was written, only if absent."""
        await self._uploaded()
        rest = bytes(self._part[: self._filled])
        self._filled = 0
        client = self._bucket.client
        with self._bucket.guard(f"cannot store {self.uri}"):
            try:
                if self._upload_id is None:
                    await client.put_object(
                        Bucket=self._bucket.name,
                        Key=self._key,
                        Body=rest,
                        ContentType=self._content_type,
                        Metadata=self._metadata,
                        IfNoneMatch="*",
                    )
                else:
                    if rest:
                        self._part_count += 1
                        await self._upload_part(self._part_count, rest)
                    parts = sorted(self._parts, key=itemgetter("PartNumber"))
                    await client.complete_multipart_upload(
                        Bucket=self._bucket.name,
                        Key=self._key,
                        UploadId=self._upload_id,
                        MultipartUpload={"Parts": parts},
                        IfNoneMatch="*",
                    )
            except ClientError as exc:
                if status_of(exc) in {PRECONDITION_FAILED, CONDITIONAL_CONFLICT} or _gone(exc):
                    raise OutputTaken(self.uri) from exc
                raise
        self._committed = True
        await self._abort_others()

    async def _abort_others(self) -> None:
        """Abort every other upload of this key: none can complete now that the object
        exists, and one may be a killed attempt's, which nothing else would end."""
        client = self._bucket.client
        with self._bucket.guard(f"cannot list the uploads of {self.uri}"):
            answer = await client.list_multipart_uploads(Bucket=self._bucket.name, Prefix=self._key)
            for upload in answer.get("Uploads", []):
                if upload["Key"] == self._key:
                    with contextlib.suppress(ClientError):  # its own writer may abort it too
                        await client.abort_multipart_upload(
                            Bucket=self._bucket.name, Key=self._key, UploadId=upload["UploadId"]
                        )

    async def abort(self) -> None:
        """Abort the multipart upload unless committed; harmless to call again."""
        uploading, self._uploading = self._uploading, deque()
        if uploading:
            # Let parts already sent finish first: a part the store takes after the abort
            # brings the upload back (SeaweedFS lists it again), and a cancelled first
            # part may have created an upload whose id never came back. A store that
            # does not answer is not waited for longer than ABORT_WAIT_S.
            waits = [asyncio.wrap_future(future) for future in uploading]
            _, late = await asyncio.wait(waits, timeout=ABORT_WAIT_S)
            for future in uploading:
                future.cancel()
            if late:
                await asyncio.wait(late)
        upload_id, self._upload_id = self._upload_id, None
        self._filled = 0
        if upload_id is None or self._committed:
            return
        try:
            await self._bucket.client.abort_multipart_upload(
                Bucket=self._bucket.name, Key=self._key, UploadId=upload_id
            )
        except (ClientError, BotoCoreError) as exc:
            # Start-up aborts uploads older than the export deadline, so this one goes then.
            log.warning(
                "could not abort the upload of %s: %s",
                self.uri,
                exc,
                extra={"event": "upload_abort_failed", "key": self._key},
            )

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        # Shielded: a second cancel (shutdown) must not leave the upload unfinished.
        await asyncio.shield(self.abort())


def _gone(exc: ClientError) -> bool:
    """NoSuchUpload: the winner of the race aborted ours after creating the object."""
    return str(exc.response.get("Error", {}).get("Code")) == "NoSuchUpload"


@contextlib.contextmanager
def _taken_if_gone(uri: str) -> Iterator[None]:
    try:
        yield
    except ClientError as exc:
        if _gone(exc):
            raise OutputTaken(uri) from exc
        raise
