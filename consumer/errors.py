"""The service's exceptions, each carrying the contract's failure `reason`.

Factored out so every module can raise them without import loops.

    ExportError                   reason
    ├── InvalidRequest            invalid_request
    ├── Conflict                  conflict
    ├── SourceUnavailable         source_unavailable
    ├── BadRecord                 bad_record (carries the offset)
    ├── TooLarge                  too_large
    ├── ExportTimeout             timeout
    └── WriteError                write_error
    StartupError                  (start-up only: one line, exit 2)
    └── SettingsError             a setting is missing or malformed
"""

from __future__ import annotations

from enum import StrEnum


class FailureReason(StrEnum):
    """The contract's failure reasons, as they appear on the result topic."""

    INVALID_REQUEST = "invalid_request"
    CONFLICT = "conflict"
    SOURCE_UNAVAILABLE = "source_unavailable"
    BAD_RECORD = "bad_record"
    TOO_LARGE = "too_large"
    TIMEOUT = "timeout"
    WRITE_ERROR = "write_error"
    INTERNAL = "internal"


class ExportError(Exception):
    """An export failed for a reason the requester can act on."""

    reason: FailureReason = FailureReason.INTERNAL

    def __init__(self, message: str, *, offset: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.offset = offset
        """The source offset of the one record to blame, where there is one."""


class InvalidRequest(ExportError):
    reason = FailureReason.INVALID_REQUEST


class Conflict(ExportError):
    reason = FailureReason.CONFLICT


class SourceUnavailable(ExportError):
    reason = FailureReason.SOURCE_UNAVAILABLE


class BadRecord(ExportError):
    reason = FailureReason.BAD_RECORD


class TooLarge(ExportError):
    reason = FailureReason.TOO_LARGE


class ExportTimeout(ExportError):
    reason = FailureReason.TIMEOUT


class WriteError(ExportError):
    reason = FailureReason.WRITE_ERROR


class StartupError(Exception):
    """The service cannot start where and as it is configured; start-up stops with this one
    line (it names the setting or the thing to do)."""


class SettingsError(StartupError):
    """A setting is missing or malformed; start-up stops with this one line."""


class PoisonMessage(ExportError):
    """A request that cannot be tied to an `export_id`; it goes to the dead-letter topic."""

    reason = FailureReason.INVALID_REQUEST
