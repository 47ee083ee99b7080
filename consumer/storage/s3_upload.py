"""One output streamed into the bucket: parts as they fill, visible only at completion.

A writer thread calls `write`; each full part is handed to the event loop to upload while
the thread goes on filling the next one (it waits only when that one is full and the
previous upload is still going), so formatting and uploading overlap, at most two parts
(plus one write) are held in memory, and nothing is staged on disk. A small output goes
in one put. Either way the object is created only if absent (`If-None-Match: *`);
leaving without `commit()` aborts the multipart upload.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import threading
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
        self._buffer = bytearray()
        self._upload_id: str | None = None
        self._parts: list[dict[str, Any]] = []
        self._uploading: concurrent.futures.Future[None] | None = None
        """The part upload under way, started by `write` and not yet waited for."""
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

    def write(self, data: bytes) -> int:
        """Take bytes; from a worker thread, since a full part is uploaded before returning."""
        self._sha256.update(data)
        self.bytes_written += len(data)
        self._buffer += data
        while len(self._buffer) >= PART_BYTES:
            part = bytes(self._buffer[:PART_BYTES])
            del self._buffer[:PART_BYTES]
            self._start_on_loop(self._upload_part(part))
        return len(data)

    def _start_on_loop(self, step: Coroutine[Any, Any, None]) -> None:
        """Wait for the previous part's upload (raising its error), then start this one."""
        if threading.get_ident() == self._loop_thread:
            step.close()
            raise RuntimeError("S3Upload.write blocks: call it from a worker thread")
        previous, self._uploading = self._uploading, None
        if previous is not None:
            try:
                previous.result()
            except BaseException:
                step.close()
                raise
        self._uploading = asyncio.run_coroutine_threadsafe(step, self._loop)

    async def _uploaded(self) -> None:
        """Wait for the part upload `write` started, if one is under way."""
        uploading, self._uploading = self._uploading, None
        if uploading is not None:
            await asyncio.wrap_future(uploading)

    async def _upload_part(self, part: bytes) -> None:
        with self._bucket.guard(f"cannot upload part of {self.uri}"), _taken_if_gone(self.uri):
            client = self._bucket.client
            if self._upload_id is None:
                answer = await client.create_multipart_upload(
                    Bucket=self._bucket.name,
                    Key=self._key,
                    ContentType=self._content_type,
                    Metadata=self._metadata,
                )
                self._upload_id = str(answer["UploadId"])
            number = len(self._parts) + 1
            answer = await client.upload_part(
                Bucket=self._bucket.name,
                Key=self._key,
                UploadId=self._upload_id,
                PartNumber=number,
                Body=part,
            )
            self._parts.append({"PartNumber": number, "ETag": answer["ETag"]})

    async def commit(self) -> None:
        """Create the object from what was written, only if absent."""
        await self._uploaded()
        rest, self._buffer = bytes(self._buffer), bytearray()
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
                        await self._upload_part(rest)
                    await client.complete_multipart_upload(
                        Bucket=self._bucket.name,
                        Key=self._key,
                        UploadId=self._upload_id,
                        MultipartUpload={"Parts": self._parts},
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
        uploading, self._uploading = self._uploading, None
        if uploading is not None:  # its outcome no longer matters: the upload goes
            uploading.cancel()
            await asyncio.wait([asyncio.wrap_future(uploading)])
        upload_id, self._upload_id = self._upload_id, None
        self._buffer = bytearray()
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
