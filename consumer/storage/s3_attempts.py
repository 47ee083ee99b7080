"""The S3 store's claims: how many attempts at an export started and never ended, counted
in the bucket (`{prefix}/.exports/{export_id}.attempts`) with conditional writes.

Unlike the local store's `flock`, a bucket cannot tell that a process died, so the claim
excludes no one: two hosts may work on one export at once (a zombie after a rebalance),
and `If-None-Match: *` on the output decides which one publishes. What the count gives is
the crash-loop limit: an attempt adds one as it starts (`If-Match` on the ETag it read, so
two hosts never both write the same count) and takes itself, and the deaths it was told
of, away as it ends; a process that dies leaves its one behind for the next delivery.
"""

from __future__ import annotations

import asyncio
import logging
import random
from typing import TYPE_CHECKING, Self

from consumer.errors import ExportError
from consumer.storage.s3_bucket import PreconditionFailed

if TYPE_CHECKING:
    from types import TracebackType

    from consumer.storage.s3_bucket import Bucket

log = logging.getLogger(__name__)

MAX_RACES = 20
"""Conditional writes lost in a row before giving up (each loss means another host won)."""
RACE_PAUSE_S = 0.05


class S3Claim:
    """One attempt at an export, counted in the bucket while it runs."""

    def __init__(self, bucket: Bucket, key: str) -> None:
        self._bucket = bucket
        self._key = key
        self.earlier_attempts = 0
        """Attempts that started before this one and never ended (or still run elsewhere)."""

    async def _update(self, change: int) -> int:
        """Add `change` to the count (dropping the object at 0); the count it had before."""
        for _ in range(MAX_RACES):
            stored = await self._bucket.get(self._key)
            text = stored.body.decode("ascii", "replace").strip() if stored else ""
            before = int(text) if text.isdigit() else 0
            after = max(0, before + change)
            try:
                if stored is None:
                    if after:
                        await self._bucket.put(self._key, f"{after}\n".encode())
                elif after:
                    await self._bucket.put(self._key, f"{after}\n".encode(), if_match=stored.etag)
                else:
                    await self._bucket.delete(self._key, if_match=stored.etag)
            except PreconditionFailed:
                await asyncio.sleep(RACE_PAUSE_S * random.random())  # noqa: S311 - jitter only
                continue
            return before
        raise ExportError(f"internal error: lost {MAX_RACES} updates of {self._key} in a row")

    async def __aenter__(self) -> Self:
        self.earlier_attempts = await self._update(+1)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        # This attempt ended with the process alive: it and the deaths it saw are done with.
        try:
            await asyncio.shield(self._update(-(1 + self.earlier_attempts)))
        except ExportError as error:
            # The count stays one too high: the next delivery takes this attempt for a death.
            log.warning(
                "could not record the end of an attempt: %s",
                error.message,
                extra={"event": "attempt_end_unrecorded", "key": self._key},
            )
