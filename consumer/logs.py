"""Logging: JSON lines with the record's `extra=` fields where machines read them (piped,
in a container, in `dev`'s log file), short lines for people at a terminal."""

from __future__ import annotations

import contextlib
import logging
import sys
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import orjson

from consumer.settings import LogFormat

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

# Attributes every LogRecord has; anything else came in through `extra=`.
_STANDARD = frozenset(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {
    "message",
    "asctime",
    "taskName",
}


CURRENT_EXPORT: ContextVar[str | None] = ContextVar("current_export", default=None)
"""The export a task (and the threads it hands work to) is working on."""


class ExportContext(logging.Filter):
    """Stamps `export_id` on every record logged while an export is being handled."""

    def filter(self, record: logging.LogRecord) -> bool:
        export_id = CURRENT_EXPORT.get()
        if export_id is not None and not hasattr(record, "export_id"):
            record.export_id = export_id
        return True


class JsonFormatter(logging.Formatter):
    """`{"ts", "level", "logger", "message", ...extra, "exc"}` as one compact line."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        entry.update(
            {k: v for k, v in vars(record).items() if k not in _STANDARD and not k.startswith("_")}
        )
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return orjson.dumps(entry, default=str).decode()


class TextFormatter(logging.Formatter):
    """`15:04:05 INFO  [export_id] message key=value ...`: a line a person reads."""

    def format(self, record: logging.LogRecord) -> str:
        when = datetime.fromtimestamp(record.created).strftime("%H:%M:%S")  # noqa: DTZ006 - the reader's own clock
        fields = {
            k: v
            for k, v in vars(record).items()
            if k not in _STANDARD and not k.startswith("_") and k not in {"event", "export_id"}
        }
        export_id = getattr(record, "export_id", None)
        line = f"{when} {record.levelname:<7} " + (f"[{export_id}] " if export_id else "")
        line += record.getMessage()
        line += "".join(f" {k}={v}" for k, v in fields.items())
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


class ForPeople(logging.Filter):
    """What a person at `dev`'s terminal wants: problems, and one line per finished export."""

    def __init__(self, *, per_export: bool) -> None:
        super().__init__()
        self._per_export = per_export

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno >= logging.WARNING:
            return True
        return self._per_export and getattr(record, "event", None) == "export_finished"


def configure_logging(
    level: str,
    log_format: LogFormat = LogFormat.AUTO,
    *,
    people_log: Path | None = None,
    per_export: bool = True,
) -> Path | None:
    """Route every logger's records at `level`: JSON lines on stderr when it is not a
    terminal or `log_format` is json; lines for people when it is text, or auto at a
    terminal. With `people_log` (`dev` at a terminal, auto), the JSON lines go to that file
    and the terminal gets only `ForPeople`'s lines (a line per finished export unless
    `per_export` is false); the file's path is returned."""
    at_terminal = sys.stderr.isatty()
    handlers: list[logging.Handler] = []
    written_to: Path | None = None
    if log_format is LogFormat.JSON or (log_format is LogFormat.AUTO and not at_terminal):
        handlers.append(_handler(logging.StreamHandler(sys.stderr), JsonFormatter()))
    elif log_format is LogFormat.AUTO and people_log is not None:
        people_log.parent.mkdir(parents=True, exist_ok=True)
        handlers.append(_handler(logging.FileHandler(people_log), JsonFormatter()))
        console = _handler(logging.StreamHandler(sys.stderr), TextFormatter())
        console.addFilter(ForPeople(per_export=per_export))
        handlers.append(console)
        written_to = people_log
    else:
        handlers.append(_handler(logging.StreamHandler(sys.stderr), TextFormatter()))
    root = logging.getLogger()
    for old in root.handlers:
        old.close()
    root.handlers[:] = handlers
    root.setLevel(level)
    # aiokafka logs every reconnect attempt at INFO/ERROR; keep its noise at WARNING.
    logging.getLogger("aiokafka").setLevel(max(logging.WARNING, root.level))
    return written_to


def _handler(handler: logging.Handler, formatter: logging.Formatter) -> logging.Handler:
    handler.setFormatter(formatter)
    handler.addFilter(ExportContext())
    return handler


@contextlib.contextmanager
def silenced(*names: str) -> Iterator[None]:
    """Drop the named loggers' records below CRITICAL for a while: for a client library's
    error lines about a failure that is about to be raised, and said, once, by us."""
    loggers = [logging.getLogger(name) for name in names]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)
