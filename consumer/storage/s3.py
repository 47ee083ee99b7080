"""The object-storage store: outputs at `{prefix}/{export_id}.{ext}` in an S3 bucket, their
manifests and attempt counts under `{prefix}/.exports/`; nothing on local disk."""

from __future__ import annotations

import asyncio
import hashlib
import logging
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

from consumer.errors import StartupError, WriteError
from consumer.events import EXPORT_ID_PATTERN, utc_timestamp
from consumer.settings import env_name
from consumer.storage import DownloadLink, UnrecordedOutput
from consumer.storage.manifest import Manifest, decode_manifest, encode_manifest
from consumer.storage.s3_attempts import S3Claim
from consumer.storage.s3_bucket import NOT_FOUND, Bucket, PreconditionFailed, status_of
from consumer.storage.s3_upload import S3Upload

if TYPE_CHECKING:
    from consumer.output_types import OutputType
    from consumer.settings import Settings

log = logging.getLogger(__name__)

META_DIR = ".exports/"
ACCESS_DENIED = 403
FINGERPRINT_META = "export-fingerprint"
"""User metadata on each output: the request that made it, for when its manifest is lost."""
READ_CHUNK_BYTES = 1024 * 1024


class S3Store:
    """Any S3-compatible bucket: see the contract's "Object storage" section."""

    def __init__(self, settings: Settings) -> None:
        self._bucket = Bucket(settings)
        self._presign_s = settings.s3_presign_s
        self._stale_after = timedelta(seconds=settings.timeout_s + settings.shutdown_grace_s)
        """An upload older than an export's deadline plus the grace period has no writer."""

    @property
    def location(self) -> str:
        return self._bucket.uri(self._bucket.prefix)

    def _key(self, name: str) -> str:
        return self._bucket.prefix + name

    def _meta_key(self, export_id: str, suffix: str) -> str:
        if not EXPORT_ID_PATTERN.fullmatch(export_id):  # validated on decode; guards keys
            raise WriteError(f"export_id {export_id!r} is not a safe object name")
        return f"{self._bucket.prefix}{META_DIR}{export_id}{suffix}"

    async def prepare(self) -> None:
        """Connect, check the bucket and the credentials, abort uploads left by the dead."""
        bucket = self._bucket
        where = f"bucket {bucket.name!r} at {bucket.endpoint}"
        try:
            await bucket.open()
            await bucket.client.head_bucket(Bucket=bucket.name)
            await self._abort_stale_uploads()
        except NoCredentialsError as exc:
            await bucket.close()
            raise StartupError(
                f"no credentials for {where}: set {env_name('s3_access_key_id')} and "
                f"{env_name('s3_secret_access_key')}, or the AWS_* variables or profile"
            ) from exc
        except ClientError as exc:
            await bucket.close()
            status = status_of(exc)
            if status == NOT_FOUND:
                why = f"the {where} does not exist ({env_name('output_url')})"
            elif status == ACCESS_DENIED:
                why = (
                    f"the {where} refused the credentials or access to it "
                    f"({env_name('s3_access_key_id')}, {env_name('s3_secret_access_key')} "
                    "or the AWS credential chain)"
                )
            else:
                why = f"the {where} answered {status} {exc.response.get('Error', {})}"
            raise StartupError(f"cannot use object storage: {why}") from exc
        except BotoCoreError as exc:
            await bucket.close()
            raise StartupError(
                f"cannot use object storage: the endpoint {bucket.endpoint} does not answer "
                f"({env_name('s3_endpoint_url')}): {exc}"
            ) from exc

    async def _abort_stale_uploads(self) -> None:
        bucket = self._bucket
        cutoff = datetime.now(UTC) - self._stale_after
        aborted = 0
        paginator = bucket.client.get_paginator("list_multipart_uploads")
        async for page in paginator.paginate(Bucket=bucket.name, Prefix=bucket.prefix):
            for upload in page.get("Uploads", []):
                if upload["Initiated"] < cutoff:
                    await bucket.client.abort_multipart_upload(
                        Bucket=bucket.name, Key=upload["Key"], UploadId=upload["UploadId"]
                    )
                    aborted += 1
        if aborted:
            log.info(
                "aborted %d unfinished uploads left by stopped processes",
                aborted,
                extra={"event": "stale_uploads_aborted", "count": aborted},
            )

    async def close(self) -> None:
        await self._bucket.close()

    def claim(self, export_id: str) -> S3Claim:
        return S3Claim(self._bucket, self._meta_key(export_id, ".attempts"))

    async def remove_parts(self, export_id: str) -> None:
        """Nothing to do: a dead attempt's upload may be a live one on another host, and
        uploads older than the export deadline are aborted at start-up."""

    def stage(self, export_id: str, output: OutputType, *, fingerprint: str = "") -> S3Upload:
        self._meta_key(export_id, "")  # the id check
        return S3Upload(
            self._bucket,
            self._key(f"{export_id}.{output.extension}"),
            output.media_type,
            {FINGERPRINT_META: fingerprint} if fingerprint else {},
        )

    async def unrecorded_output(
        self, export_id: str, output: OutputType
    ) -> UnrecordedOutput | None:
        """Read back (streamed, hashed) an output that has no manifest."""
        name = f"{export_id}.{output.extension}"
        key = self._key(name)
        bucket = self._bucket
        with bucket.guard(f"cannot read {bucket.uri(key)}"):
            try:
                answer = await bucket.client.get_object(Bucket=bucket.name, Key=key)
            except ClientError as exc:
                if status_of(exc) == NOT_FOUND:
                    return None
                raise
            digest = hashlib.sha256()
            size = 0
            async with answer["Body"] as body:
                while chunk := await body.read(READ_CHUNK_BYTES):
                    size += len(chunk)
                    await asyncio.to_thread(digest.update, chunk)  # hashing leaves the loop
        return UnrecordedOutput(
            name=name,
            uri=bucket.uri(key),
            fingerprint=answer.get("Metadata", {}).get(FINGERPRINT_META),
            size=size,
            sha256=digest.hexdigest(),
        )

    async def manifest(self, export_id: str) -> Manifest | None:
        stored = await self._bucket.get(self._meta_key(export_id, ".manifest.json"))
        if stored is None:
            return None
        try:
            manifest = decode_manifest(stored.body)
        except (ValueError, KeyError, TypeError):
            log.warning(
                "unreadable manifest, export will be redone",
                extra={"event": "manifest_unreadable", "export_id": export_id},
            )
            return None
        if not await self._bucket.exists(self._key(manifest.file_name)):
            return None  # the output was deleted: the export is made again
        return manifest

    async def save_manifest(self, manifest: Manifest) -> None:
        key = self._meta_key(manifest.export_id, ".manifest.json")
        body = encode_manifest(manifest)
        try:
            await self._bucket.put(key, body)
        except PreconditionFailed:
            # One left by an output deleted since: replace that one, and only that one.
            stored = await self._bucket.get(key)
            try:
                await self._bucket.put(key, body, if_match=stored.etag if stored else None)
            except PreconditionFailed:
                log.warning(
                    "another instance wrote the manifest of %s first",
                    manifest.export_id,
                    extra={"event": "manifest_race", "export_id": manifest.export_id},
                )

    async def download_link(self, file_name: str) -> DownloadLink | None:
        if not self._presign_s:
            return None
        expires = datetime.now(UTC) + timedelta(seconds=self._presign_s)
        with self._bucket.guard(f"cannot sign a link to {file_name}"):
            url = await self._bucket.client.generate_presigned_url(
                "get_object",
                Params={"Bucket": self._bucket.name, "Key": self._key(file_name)},
                ExpiresIn=self._presign_s,
            )
        return DownloadLink(url=str(url), expires_at=utc_timestamp(expires))
