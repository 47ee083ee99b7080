"""The bucket as the S3 store sees it: one client, a handful of (conditional) requests, and
every client error turned into a `WriteError` that names the endpoint."""

from __future__ import annotations

import logging
from contextlib import AsyncExitStack, contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from aiobotocore.session import get_session
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from consumer.errors import WriteError

if TYPE_CHECKING:
    from collections.abc import Iterator

    from consumer.settings import Settings

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 5
"""Tries per request: botocore's standard mode retries throttling (SlowDown, 429) and 5xx
answers and dropped connections, with exponential backoff and jitter."""
CONNECT_TIMEOUT_S = 5.0
READ_TIMEOUT_S = 30.0
PRECONDITION_FAILED = 412
CONDITIONAL_CONFLICT = 409
"""AWS's answer while another conditional write to the key is in progress."""
NOT_FOUND = 404


class PreconditionFailed(Exception):
    """`If-None-Match: *` met an object, or `If-Match` a newer one."""


@dataclass(frozen=True, slots=True)
class Stored:
    """An object's bytes and the ETag they had."""

    body: bytes
    etag: str


def status_of(exc: ClientError) -> int:
    return int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0))


def split_url(url: str) -> tuple[str, str]:
    """`s3://bucket/a/b/` -> (`bucket`, `a/b/`): the prefix ends in `/` unless empty."""
    bucket, _, prefix = url.removeprefix("s3://").partition("/")
    prefix = prefix.strip("/")
    return bucket, f"{prefix}/" if prefix else ""


class Bucket:
    """One bucket through one aiobotocore client; `open()` before use, `close()` after."""

    def __init__(self, settings: Settings) -> None:
        assert settings.output_url is not None  # noqa: S101 - only built for an s3:// URL
        self.name, self.prefix = split_url(settings.output_url)
        self.endpoint = settings.s3_endpoint_url or f"AWS S3 ({settings.s3_region})"
        """The endpoint as messages name it."""
        self._settings = settings
        self._stack = AsyncExitStack()
        self._client: Any = None

    @property
    def client(self) -> Any:
        assert self._client is not None  # noqa: S101 - open() comes first
        return self._client

    async def open(self) -> None:
        s = self._settings
        options: dict[str, Any] = {
            "signature_version": "s3v4",  # presigned links too: AWS refuses SigV2
            "retries": {"total_max_attempts": MAX_ATTEMPTS, "mode": "standard"},
            "connect_timeout": CONNECT_TIMEOUT_S,
            "read_timeout": READ_TIMEOUT_S,
        }
        if s.s3_endpoint_url:
            # Other S3 implementations take path-style requests and plain checksums best.
            options["s3"] = {"addressing_style": "path"}
            options["request_checksum_calculation"] = "when_required"
            options["response_checksum_validation"] = "when_required"
        secret = s.s3_secret_access_key
        self._client = await self._stack.enter_async_context(
            get_session().create_client(
                "s3",
                endpoint_url=s.s3_endpoint_url,
                region_name=s.s3_region,
                aws_access_key_id=s.s3_access_key_id,
                aws_secret_access_key=secret.get_secret_value() if secret else None,
                config=Config(**options),
            )
        )

    async def close(self) -> None:
        self._client = None
        await self._stack.aclose()

    def uri(self, key: str) -> str:
        return f"s3://{self.name}/{key}"

    @contextmanager
    def guard(self, doing: str) -> Iterator[None]:
        """Client errors become `WriteError`s: what we were doing, where, and the answer."""
        try:
            yield
        except ClientError as exc:
            error = exc.response.get("Error", {})
            answer = f"{status_of(exc)} {error.get('Code', '')} {error.get('Message', '')}"
            raise WriteError(f"{doing} at {self.endpoint}: {answer.strip()}") from exc
        except BotoCoreError as exc:
            raise WriteError(f"{doing} at {self.endpoint}: {exc}") from exc

    async def get(self, key: str) -> Stored | None:
        """The object's bytes and ETag; None when there is none."""
        with self.guard(f"cannot read s3://{self.name}/{key}"):
            try:
                answer = await self.client.get_object(Bucket=self.name, Key=key)
            except ClientError as exc:
                if status_of(exc) == NOT_FOUND:
                    return None
                raise
            async with answer["Body"] as body:
                return Stored(await body.read(), answer["ETag"])

    async def exists(self, key: str) -> bool:
        with self.guard(f"cannot look up s3://{self.name}/{key}"):
            try:
                await self.client.head_object(Bucket=self.name, Key=key)
            except ClientError as exc:
                if status_of(exc) == NOT_FOUND:
                    return False
                raise
            return True

    async def put(self, key: str, body: bytes, *, if_match: str | None = None) -> str:
        """Write the object only if absent (`if_match` None) or unchanged since it had that
        ETag; `PreconditionFailed` otherwise. Returns the new ETag."""
        condition = {"IfMatch": if_match} if if_match else {"IfNoneMatch": "*"}
        with self.guard(f"cannot write s3://{self.name}/{key}"):
            try:
                answer = await self.client.put_object(
                    Bucket=self.name, Key=key, Body=body, **condition
                )
            except ClientError as exc:
                if status_of(exc) in {PRECONDITION_FAILED, CONDITIONAL_CONFLICT}:
                    raise PreconditionFailed(key) from exc
                raise
            return str(answer["ETag"])

    async def delete(self, key: str, *, if_match: str) -> None:
        """Delete the object if unchanged since it had that ETag; `PreconditionFailed` if not."""
        with self.guard(f"cannot delete s3://{self.name}/{key}"):
            try:
                await self.client.delete_object(Bucket=self.name, Key=key, IfMatch=if_match)
            except ClientError as exc:
                if status_of(exc) in {PRECONDITION_FAILED, CONDITIONAL_CONFLICT}:
                    raise PreconditionFailed(key) from exc
                if status_of(exc) != NOT_FOUND:
                    raise
