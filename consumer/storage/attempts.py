"""The local store's claims: who is working on an export, across processes, and how often
it has died trying.

Each export id has a claim file `.{export_id}.attempts` beside its output. A process
holds an exclusive `flock` on it while it works on the export, so instances sharing an
output directory never write the same export at once, and the kernel drops the lock
when a process dies, even by `kill -9`. The file holds how many attempts started and
never ended: a process that dies mid-export leaves the file and its count behind, so the
next delivery knows; an attempt that ends any other way (result, cancel) removes it.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
from typing import TYPE_CHECKING, Self

from consumer.errors import WriteError

if TYPE_CHECKING:
    from pathlib import Path
    from types import TracebackType

CLAIM_SUFFIX = ".attempts"
POLL_S = 0.1


def claim_path(root: Path, export_id: str) -> Path:
    return root / f".{export_id}{CLAIM_SUFFIX}"


def try_lock(path: Path, *, create: bool = True) -> int | None:
    """A descriptor holding the exclusive lock on `path`; None if another process holds it
    (or, with `create=False`, if there is no such file)."""
    flags = os.O_RDWR | (os.O_CREAT if create else 0)
    while True:
        try:
            fd = os.open(path, flags, 0o644)
        except FileNotFoundError:
            if not create:
                return None
            raise WriteError(f"cannot open {path.name}: the output directory is gone") from None
        except OSError as exc:
            raise WriteError(f"cannot open {path.name} in the output directory: {exc}") from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return None
        # The holder before us may have removed the file as it let go: a lock on a file
        # nobody else will find does not count, so open the one at the path now.
        try:
            current = path.stat().st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            current = False
        if current:
            return fd
        os.close(fd)
        if not create:
            return None


class ExportClaim:
    """The claim on one export id, held for the duration of an attempt."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._fd: int | None = None
        self.earlier_attempts = 0
        """Attempts that started before this one and never ended (the process died)."""

    async def __aenter__(self) -> Self:
        # Polled rather than a blocking flock in a thread, so cancelling the wait is clean.
        while (fd := try_lock(self._path)) is None:  # noqa: ASYNC110 - another process holds it
            await asyncio.sleep(POLL_S)
        self._fd = fd
        try:
            text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
            self.earlier_attempts = int(text) if text.isdigit() else 0
            self._store(self.earlier_attempts + 1)
        except BaseException:
            self._release()
            raise
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        # Reaching here means the process lives: this attempt did not crash it, so the
        # count goes back to none, and the file with it (removed before the lock is let go).
        with contextlib.suppress(OSError):
            self._path.unlink()
        self._release()

    def _store(self, attempts: int) -> None:
        assert self._fd is not None  # noqa: S101 - only while held
        data = f"{attempts}\n".encode()
        os.ftruncate(self._fd, 0)
        os.pwrite(self._fd, data, 0)
        os.fsync(self._fd)

    def _release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing drops the flock
            self._fd = None
