"""The wire format: JSON and the schemas live here, typed structs everywhere else."""

from __future__ import annotations

import hashlib
import json
import re
from datetime import UTC, datetime, timedelta
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import orjson
from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError, best_match

from consumer.errors import InvalidRequest, PoisonMessage
from consumer.structs import (
    COMPRESSIBLE,
    Column,
    ColumnType,
    Compression,
    ExportFormat,
    ExportOptions,
    ExportProgress,
    ExportRequest,
    ExportResult,
    Orientation,
    OutputFile,
    PartitionRange,
    ResultStatus,
    Source,
    SourceRange,
    SourceWindow,
)

REQUEST_SCHEMA = "export-request.schema.json"
RESULT_SCHEMA = "export-result.schema.json"
MAX_ECHO = 80
"""The most of a request's value an error message quotes."""
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
EXPORT_ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


def _schema_text(name: str) -> str:
    packaged = resources.files("consumer").joinpath("schemas", name)
    if packaged.is_file():
        return packaged.read_text(encoding="utf-8")
    # Editable installs run from the checkout, where schemas/ sits beside the package.
    return (Path(__file__).resolve().parent.parent / "schemas" / name).read_text(encoding="utf-8")


@cache
def validator(name: str) -> Draft202012Validator:
    """A compiled validator for one of the files in `schemas/`."""
    schema = json.loads(_schema_text(name))
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema)


def _field_path(path: Any) -> str:
    text = "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in path)
    return text.lstrip(".")


def _describe(error: ValidationError) -> str:
    """One line that starts with the offending field, e.g. `options.rows_per_page: ...`."""
    where = _field_path(error.absolute_path)
    instance = error.instance if isinstance(error.instance, dict) else {}
    if error.validator == "required" and isinstance(error.validator_value, list):
        missing = [name for name in error.validator_value if name not in instance]
        field = ".".join(filter(None, [where, missing[0]]))
        return f"{field}: is required"
    if error.validator == "additionalProperties" and isinstance(error.schema, dict):
        known = error.schema.get("properties", {})
        unknown = sorted(name for name in instance if name not in known)
        return f"{where or 'request'}: unknown field {', '.join(map(repr, unknown))}"
    if error.validator == "maxLength" and isinstance(error.instance, str):
        return (
            f"{where or 'request'}: is {len(error.instance):,} characters long, "
            f"more than the {error.validator_value} allowed"
        )
    if error.validator == "oneOf" and isinstance(error.validator_value, list):
        chosen = _meant_form(error)
        if chosen is not None:
            return _describe(chosen)
        forms = [alt.get("description", "") for alt in error.validator_value]
        if all(forms):
            shown = _echo(error.instance)
            return f"{where or 'request'}: {shown} is neither {' nor '.join(forms)}"
    # jsonschema's messages quote the offending value whole; a requester may send megabytes.
    message = error.message.replace(repr(error.instance), _echo(error.instance))
    return f"{where or 'request'}: {message}"


def _meant_form(error: ValidationError) -> ValidationError | None:
    """Of an object that fits none of several object forms, the error against the form it
    meant: the one with the most of its required fields present (an offset range missing
    its topic is still an offset range)."""
    forms = error.validator_value
    if not isinstance(error.instance, dict) or not isinstance(forms, list):
        return None
    present = [
        sum(name in error.instance for name in alt.get("required", ()))
        if alt.get("type") == "object"
        else 0
        for alt in forms
    ]
    if max(present) == 0:
        return None
    meant = present.index(max(present))
    found: ValidationError | None = best_match(
        e for e in error.context or () if e.relative_schema_path[0] == meant
    )
    return found


def _echo(value: object) -> str:
    """`value` as a message quotes it: its repr, cut to `MAX_ECHO` characters."""
    text = repr(value)
    return text if len(text) <= MAX_ECHO else text[: MAX_ECHO - 1] + "…"


def parse_envelope(value: bytes | None) -> tuple[str, dict[str, Any]]:
    """The request's `export_id` and JSON object, or `PoisonMessage` when there is no valid id."""
    if value is None:
        raise PoisonMessage("request has no value")
    try:
        payload = orjson.loads(value)
    except orjson.JSONDecodeError as exc:
        raise PoisonMessage(f"request is not JSON: {exc}") from exc
    if not isinstance(payload, dict):
        raise PoisonMessage(f"request is a JSON {type(payload).__name__}, not an object")
    export_id = payload.get("export_id")
    if not isinstance(export_id, str) or not EXPORT_ID_PATTERN.fullmatch(export_id):
        raise PoisonMessage(f"export_id {export_id!r} does not match {EXPORT_ID_PATTERN.pattern}")
    return export_id, payload


def declared_format(payload: dict[str, Any]) -> ExportFormat | None:
    """The request's format when it names a known one, for failure events and metrics."""
    value = payload.get("format")
    known = {fmt.value: fmt for fmt in ExportFormat}
    return known.get(value) if isinstance(value, str) else None


def decode_request(payload: dict[str, Any]) -> ExportRequest:
    """Validate a request object against the schema; `InvalidRequest` names the field."""
    error = best_match(validator(REQUEST_SCHEMA).iter_errors(payload))
    if error is not None:
        raise InvalidRequest(_describe(error))
    source = _source(payload["source"])
    raw_options = payload.get("options", {})
    options = ExportOptions(
        **{k: v for k, v in raw_options.items() if k not in {"orientation", "compression"}},
        orientation=Orientation(raw_options.get("orientation", Orientation.AUTO.value)),
        compression=Compression(raw_options.get("compression", Compression.NONE.value)),
    )
    fmt = ExportFormat(payload["format"])
    if options.compression is not Compression.NONE and fmt not in COMPRESSIBLE:
        raise InvalidRequest(
            f"options.compression: {options.compression.value} applies to csv and jsonl, "
            f"not {fmt.value}"
        )
    columns = _columns(payload["columns"])
    if fmt in KEYED_FORMATS:
        _check_distinct_labels(columns, fmt)
    request = ExportRequest(
        export_id=payload["export_id"],
        format=fmt,
        columns=columns,
        source=source,
        requested_by=payload.get("requested_by"),
        title=payload.get("title"),
        options=options,
    )
    return _with_fingerprint(request)


def _source(src: dict[str, Any]) -> Source:
    """The offset range or the time window a request's source names."""
    if "since" not in src:
        if src["end_offset"] < src["start_offset"]:
            raise InvalidRequest(
                f"source.end_offset: {src['end_offset']} is before "
                f"source.start_offset {src['start_offset']}"
            )
        return SourceRange(
            topic=src["topic"],
            partition=src["partition"],
            start_offset=src["start_offset"],
            end_offset=src["end_offset"],
            key=src.get("key"),
        )
    since, until = _instant(src, "since"), _instant(src, "until")
    if until <= since:
        raise InvalidRequest(
            f"source.until: {src['until']} is not after source.since {src['since']}"
        )
    partitions = src.get("partitions")
    return SourceWindow(
        topic=src["topic"],
        since=src["since"],
        until=src["until"],
        since_ms=since,
        until_ms=until,
        partitions=tuple(sorted(set(partitions))) if partitions is not None else None,
        key=src.get("key"),
    )


def _instant(src: dict[str, Any], name: str) -> int:
    """An RFC 3339 time with a zone as milliseconds since the epoch (Kafka's timestamps)."""
    text = src[name]
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        moment = None
    if moment is None or moment.tzinfo is None or "T" not in text.upper():
        raise InvalidRequest(
            f"source.{name}: {text!r} is not an RFC 3339 time with a zone (2026-11-01T00:00:00Z)"
        )
    return (moment - EPOCH) // timedelta(milliseconds=1)


def _columns(items: list[str | dict[str, str]]) -> tuple[Column, ...]:
    """Plain names and column objects as Columns; two with one field are refused."""
    columns = tuple(
        Column.named(item)
        if isinstance(item, str)
        else Column(
            field=item["field"],
            label=item.get("label", item["field"]),
            type=ColumnType(item["type"]) if "type" in item else None,
        )
        for item in items
    )
    if repeat := _first_repeat([c.field for c in columns]):
        index, earlier = repeat
        raise InvalidRequest(
            f"columns[{index}]: field {columns[index].field!r} is also columns[{earlier}]'s; "
            "fields must be distinct"
        )
    return columns


def _first_repeat(values: list[str]) -> tuple[int, int] | None:
    """(index, index of its earlier equal) of the first value that repeats, or None."""
    first_at: dict[str, int] = {}
    for index, value in enumerate(values):
        earlier = first_at.setdefault(value, index)
        if earlier != index:
            return index, earlier
    return None


KEYED_FORMATS = frozenset({ExportFormat.JSONL, ExportFormat.XLSX, ExportFormat.PARQUET})
"""Formats whose labels are keys (a JSON object's, a workbook row's, a Parquet schema's)."""


def _check_distinct_labels(columns: tuple[Column, ...], fmt: ExportFormat) -> None:
    if repeat := _first_repeat([c.label for c in columns]):
        index, earlier = repeat
        raise InvalidRequest(
            f"columns[{index}]: label {columns[index].label!r} is also columns[{earlier}]'s; "
            f"{fmt.value} needs distinct labels"
        )


def _column_json(column: Column) -> str | dict[str, str]:
    # A v1 column stays a plain name, so a v1 request keeps its fingerprint (and its
    # stored outputs stay replays, not conflicts, across the upgrade).
    if column.label == column.field and column.type is None:
        return column.field
    shaped = {"field": column.field, "label": column.label}
    if column.type is not None:
        shaped["type"] = column.type.value
    return shaped


def _with_fingerprint(request: ExportRequest) -> ExportRequest:
    # requested_by does not shape the output: the same export asked for by another
    # person is a replay, not a conflict.
    shaping: dict[str, Any] = {
        "format": request.format.value,
        "columns": [_column_json(c) for c in request.columns],
        "source": _source_json(request.source, with_key=True, normalised=True),
        "title": request.title,
        "options": {
            "delimiter": request.options.delimiter,
            "header": request.options.header,
            "bom": request.options.bom,
            "escape_formulas": request.options.escape_formulas,
            "rows_per_page": request.options.rows_per_page,
            "orientation": request.options.orientation.value,
            "max_bad_records": request.options.max_bad_records,
        },
    }
    if request.options.compression is not Compression.NONE:
        # Only when set: an uncompressed request keeps the fingerprint it had before.
        shaping["options"]["compression"] = request.options.compression.value
    digest = hashlib.sha256(orjson.dumps(shaping, option=orjson.OPT_SORT_KEYS)).hexdigest()
    return ExportRequest(
        export_id=request.export_id,
        format=request.format,
        columns=request.columns,
        source=request.source,
        requested_by=request.requested_by,
        title=request.title,
        options=request.options,
        fingerprint=digest,
    )


def source_json(source: Source) -> dict[str, Any]:
    """The source as the request wrote it (its key too)."""
    return _source_json(source, with_key=True)


def _source_json(
    source: Source,
    *,
    with_key: bool = False,
    ranges: tuple[PartitionRange, ...] = (),
    normalised: bool = False,
) -> dict[str, Any]:
    """The source as JSON; `normalised` writes a window's times as instants (for the
    fingerprint: the same window written another way is the same request)."""
    out: dict[str, Any] = {"topic": source.topic}
    if isinstance(source, SourceRange):
        out["partition"] = source.partition
        out["start_offset"] = source.start_offset
        out["end_offset"] = source.end_offset
    else:
        out["since"] = source.since_ms if normalised else source.since
        out["until"] = source.until_ms if normalised else source.until
        if source.partitions is not None:
            out["partitions"] = list(source.partitions)
    if with_key and source.key is not None:
        out["key"] = source.key
    if ranges:
        out["ranges"] = [
            {"partition": r.partition, "start_offset": r.start_offset, "end_offset": r.end_offset}
            for r in ranges
        ]
    return out


def result_json(result: ExportResult) -> dict[str, Any]:
    """The result as the contract's JSON object."""
    out: dict[str, Any] = {"export_id": result.export_id, "status": result.status.value}
    if result.format is not None:
        out["format"] = result.format.value
    out["records"] = result.records
    out["bytes"] = result.bytes
    if result.output is not None:
        out["output"] = {"uri": result.output.uri, "sha256": result.output.sha256}
        if result.output.url is not None:
            out["output"]["url"] = result.output.url
            out["output"]["expires_at"] = result.output.expires_at
    if result.source is not None:
        out["source"] = _source_json(result.source, ranges=result.ranges)
    out["skipped"] = result.skipped
    if result.error is not None:
        error: dict[str, Any] = {
            "reason": result.error.reason.value,
            "message": result.error.message,
        }
        if result.error.offset is not None:
            error["offset"] = result.error.offset
        out["error"] = error
    out["duration_ms"] = round(result.duration_ms, 1)
    out["finished_at"] = result.finished_at
    out["replayed"] = result.replayed
    return out


def progress_json(progress: ExportProgress) -> dict[str, Any]:
    """A `running` event as JSON: records so far and percent of the offset range."""
    return {
        "export_id": progress.export_id,
        "status": ResultStatus.RUNNING.value,
        "format": progress.format.value,
        "records": progress.records,
        "percent": round(progress.percent, 1),
        "source": _source_json(progress.source),
        "elapsed_ms": round(progress.elapsed_ms, 1),
        "updated_at": progress.updated_at,
        **({"waiting_until": progress.waiting_until} if progress.waiting_until else {}),
    }


def encode_progress(progress: ExportProgress) -> bytes:
    return orjson.dumps(progress_json(progress))


def encode_result(result: ExportResult) -> bytes:
    """The result event's message value."""
    return orjson.dumps(result_json(result))


def decode_json(value: bytes) -> Any:
    """Parse a JSON message value (result events, manifests)."""
    return orjson.loads(value)


def encode_json(value: Any) -> bytes:
    """Serialise a JSON value compactly."""
    return orjson.dumps(value)


def utc_timestamp(moment: datetime | None = None) -> str:
    """`2026-11-28T16:00:00.000Z`: the contract's time format."""
    moment = moment or datetime.now(UTC)
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + (
        f"{moment.microsecond // 1000:03d}Z"
    )


def replayed_result(data: dict[str, Any]) -> ExportResult:
    """A stored completed result (as `result_json` wrote it), marked as a replay."""
    src = data["source"]
    source = _source(src)
    ranges = tuple(
        PartitionRange(r["partition"], r["start_offset"], r["end_offset"])
        for r in src.get("ranges", ())
    )
    return ExportResult(
        export_id=data["export_id"],
        status=ResultStatus.COMPLETED,
        finished_at=data["finished_at"],
        duration_ms=data["duration_ms"],
        format=ExportFormat(data["format"]),
        source=source,
        ranges=ranges
        or (
            (PartitionRange(source.partition, source.start_offset, source.end_offset),)
            if isinstance(source, SourceRange)
            else ()
        ),
        records=data["records"],
        bytes=data["bytes"],
        skipped=data["skipped"],
        output=OutputFile(uri=data["output"]["uri"], sha256=data["output"]["sha256"]),
        replayed=True,
    )
