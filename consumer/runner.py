"""Runs one export from a validated request to its result; the one place errors become results."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import logging
import time
from typing import TYPE_CHECKING

import orjson

from consumer.errors import Conflict, ExportError, ExportTimeout, WriteError
from consumer.events import replayed_result, result_json, source_json, utc_timestamp
from consumer.keyed_locks import KeyedLocks
from consumer.lanes import LaneWriter
from consumer.limits import XLSX_LIMIT, XLSX_MAX_RECORDS, BoundedSink, check_range_length
from consumer.offloop import finish_despite_cancel, run_off_loop
from consumer.output_types import OutputType
from consumer.progress import ProgressReporter
from consumer.render_pool import PdfWriter
from consumer.runner_core import DecodingWriter, Tally
from consumer.source import MIN_FETCH_BYTES, SourceReader, fetch_bytes_for, reader_for
from consumer.storage import OutputTaken
from consumer.storage.manifest import Manifest
from consumer.structs import (
    ExportFormat,
    ExportResult,
    Failure,
    OutputFile,
    PartitionRange,
    ResultStatus,
    Source,
    SourceRange,
)
from consumer.topic_access import TopicAccess
from consumer.writers.files import FileInfo, FileSpec
from consumer.writers.pdf import ReportInfo

if TYPE_CHECKING:
    from collections.abc import Callable

    from consumer.lanes import LanePool
    from consumer.progress import ProgressSink
    from consumer.render_pool import PdfWorkerPool
    from consumer.runner_core import MessageWriter
    from consumer.settings import Settings
    from consumer.storage import Claim, OutputStore, StagedOutput
    from consumer.structs import ExportRequest

log = logging.getLogger(__name__)

MAX_CRASHED_ATTEMPTS = 3
"""Deliveries that may die mid-export before the next one fails it with `internal`."""
WINNER_WAIT_S = 10.0
"""How long a lost race waits for the winner's manifest (it writes it right after)."""
WINNER_POLL_S = 0.2


def failed_result(
    export_id: str,
    error: ExportError,
    *,
    fmt: ExportFormat | None,
    source: Source | None,
    duration_ms: float,
    tally: Tally | None = None,
) -> ExportResult:
    """The failure event for an export, named by the error's reason and offset."""
    return ExportResult(
        export_id=export_id,
        status=ResultStatus.FAILED,
        finished_at=utc_timestamp(),
        duration_ms=duration_ms,
        format=fmt,
        source=source,
        records=tally.records if tally else 0,
        skipped=tally.skipped if tally else 0,
        error=Failure(reason=error.reason, message=error.message, offset=error.offset),
    )


class ExportRunner:
    """Turns a request into a result: replay, conflict, read, write, store."""

    def __init__(
        self,
        settings: Settings,
        store: OutputStore,
        pdf_pool: PdfWorkerPool,
        lane_pool: LanePool,
        load: Callable[[], int] | None = None,
    ) -> None:
        self._settings = settings
        self._store = store
        self._pdf_pool = pdf_pool
        self._lane_pool = lane_pool
        self._load = load or (lambda: 1)
        """Exports this instance has taken on (running or waiting): sizes each fetch."""
        self._locks = KeyedLocks()
        self._access = TopicAccess.from_settings(settings)

    async def run(
        self, request: ExportRequest, on_progress: ProgressSink | None = None
    ) -> ExportResult:
        """Never raises for a failed export: the failure is the result.

        `on_progress` gets a `running` event at most once a second while records flow.
        """
        started = time.monotonic()
        tally = _tally_for(request, self._settings.max_records)
        progress = ProgressReporter(request, started, on_progress)
        error: ExportError
        try:
            self._check_allowed(request)
            # One export per id at a time: a replay waits for the first to finish, here
            # and (through the claim file) in every process sharing the output directory.
            async with self._locks.hold(request.export_id):
                async with asyncio.timeout(self._settings.timeout_s) as deadline:
                    async with self._store.claim(request.export_id) as claim:
                        return await self._export(request, claim, started, tally, progress)
        except TimeoutError:
            if not deadline.expired():
                raise
            error = ExportTimeout(
                f"deadline of {self._settings.timeout_s:g}s passed with {tally.records} records "
                f"written; {describe_source(request.source)} was not fully read"
            )
        except ExportError as exc:
            error = exc
        except Exception as exc:  # the one broad handler: anything else is `internal`
            log.exception(
                "export failed", extra={"event": "export_crashed", "export_id": request.export_id}
            )
            error = ExportError(f"internal error: {type(exc).__name__}: {exc}")
        return failed_result(
            request.export_id,
            error,
            fmt=request.format,
            source=request.source,
            duration_ms=(time.monotonic() - started) * 1000,
            tally=tally,
        )

    async def _export(
        self,
        request: ExportRequest,
        claim: Claim,
        started: float,
        tally: Tally,
        progress: ProgressReporter,
    ) -> ExportResult:
        manifest = await self._store.manifest(request.export_id)
        if manifest is not None:
            return await self._replay(request, manifest)
        if claim.earlier_attempts >= MAX_CRASHED_ATTEMPTS:
            raise ExportError(
                f"internal error: the service died during each of the last "
                f"{claim.earlier_attempts} attempts at this export (out of memory or a crash); "
                "not trying again"
            )
        if claim.earlier_attempts:
            # Only a dead attempt leaves a hidden part (its count is written before staging),
            # so the directory is listed only then, not on every export.
            await self._store.remove_parts(request.export_id)

        writer = self._writer_for(request)
        taken = False
        try:
            fetch_bytes = self._fetch_bytes(request)
            reader = reader_for(self._settings, request.source, fetch_bytes, progress.waiting)
            async with (
                reader,
                self._store.stage(
                    request.export_id, output_type(request), fingerprint=request.fingerprint
                ) as staged,
            ):
                # A window's length is known once it is resolved.
                check_range_length(reader.read_offsets()[1], self._settings.max_records)
                sink = BoundedSink(staged, self._settings.max_output_bytes)
                await run_off_loop(functools.partial(writer.begin, sink, tally))
                if isinstance(writer, LaneWriter) and isinstance(reader, SourceReader):
                    # The lanes read the records out of the fetched batches themselves.
                    source = reader.source
                    # Closed on leaving, so a fetch in flight stops with the export.
                    async with contextlib.aclosing(reader.fetched_batches()) as fetches:
                        async for fetched in fetches:
                            write = functools.partial(writer.write_batches, fetched, source, tally)
                            await run_off_loop(write)
                            await progress.update(tally.records, reader.read_offsets())
                else:
                    async with contextlib.aclosing(reader.batches()) as batches:
                        async for messages in batches:
                            write = functools.partial(writer.write_messages, messages, tally)
                            await run_off_loop(write)
                            await progress.update(tally.records, reader.read_offsets())
                await run_off_loop(functools.partial(writer.finish, tally))
                # Once the output is being made visible its manifest must follow, even if a
                # rebalance or the deadline cancels us now: an object in the bucket without
                # one would stand in the way of every later attempt.
                result = await finish_despite_cancel(
                    self._store_output(request, staged, started, tally, reader.ranges)
                )
        except OutputTaken:
            taken = True  # another attempt made it first; leaving the block discarded ours
        finally:
            await run_off_loop(writer.close)
        if taken:
            return await self._replay_winner(request, started, tally)
        return await self._with_link(result, staged.name)

    def _check_allowed(self, request: ExportRequest) -> None:
        """Refuse, before anything is read, a source outside `EXPORT_SOURCE_TOPICS` and a
        range longer than `EXPORT_MAX_RECORDS` (a source form that reads several topics or
        partitions checks each, and its resolved length, the same way)."""
        source = request.source
        self._access.check(source.topic, request.export_id)
        if isinstance(source, SourceRange):
            check_range_length(source.end_offset - source.start_offset, self._settings.max_records)

    async def _store_output(
        self,
        request: ExportRequest,
        staged: StagedOutput,
        started: float,
        tally: Tally,
        ranges: tuple[PartitionRange, ...],
    ) -> ExportResult:
        """Make the output visible, then record its manifest; the completed result."""
        await staged.commit()
        output = OutputFile(uri=staged.uri, sha256=staged.sha256)
        result = _completed(request, started, tally, staged.bytes_written, output, ranges=ranges)
        await self._record(request, staged.name, result)
        # The one line per output made: a result published later may be a replay of it.
        log.info(
            "output stored",
            extra={
                "event": "output_stored",
                "export_id": request.export_id,
                "file": staged.name,
                "bytes": staged.bytes_written,
            },
        )
        return result

    async def _record(self, request: ExportRequest, name: str, result: ExportResult) -> Manifest:
        """Save the manifest that answers this request's replays with `result`."""
        manifest = Manifest(request.export_id, request.fingerprint, name, result_json(result))
        await self._store.save_manifest(manifest)
        return manifest

    async def _replay(self, request: ExportRequest, manifest: Manifest) -> ExportResult:
        _check_same_request(request, manifest.fingerprint, manifest.file_name)
        return await self._with_link(replayed_result(manifest.result), manifest.file_name)

    async def _replay_winner(
        self, request: ExportRequest, started: float, tally: Tally
    ) -> ExportResult:
        """Another attempt (another host) created the output first: answer with its result,
        once its manifest, written right after the output, is there."""
        waited = 0.0
        while (manifest := await self._store.manifest(request.export_id)) is None:
            if waited >= WINNER_WAIT_S:
                return await self._adopt(request, started, tally)
            await asyncio.sleep(WINNER_POLL_S)
            waited += WINNER_POLL_S
        log.info(
            "another attempt stored the output first; answering with its result",
            extra={"event": "output_taken", "export_id": request.export_id},
        )
        return await self._replay(request, manifest)

    async def _adopt(self, request: ExportRequest, started: float, tally: Tally) -> ExportResult:
        """The output's maker died before recording its manifest: if the same request made
        it, record it as ours (the records we counted are its records) and replay it."""
        found = await self._store.unrecorded_output(request.export_id, output_type(request))
        if found is None or found.fingerprint is None:
            raise WriteError(
                f"the output of {request.export_id!r} was created by another attempt, "
                f"which recorded no manifest within {WINNER_WAIT_S:g}s"
            )
        _check_same_request(request, found.fingerprint, found.name)
        output = OutputFile(uri=found.uri, sha256=found.sha256)
        result = _completed(request, started, tally, found.size, output)
        manifest = await self._record(request, found.name, result)
        log.warning(
            "an output without a manifest (its maker died) was recorded and is replayed",
            extra={"event": "output_adopted", "export_id": request.export_id},
        )
        return await self._replay(request, manifest)

    async def _with_link(self, result: ExportResult, file_name: str) -> ExportResult:
        """The result with a fresh download link, where the store gives one."""
        link = await self._store.download_link(file_name)
        if link is None or result.output is None:
            return result
        output = dataclasses.replace(result.output, url=link.url, expires_at=link.expires_at)
        return dataclasses.replace(result, output=output)

    def _fetch_bytes(self, request: ExportRequest) -> int:
        # Large fetches save round trips for the formats written in lanes; a report is
        # drawing-bound, and each fetch is decoded in this process, so PDF reads the least.
        if request.format is not ExportFormat.PDF:
            return fetch_bytes_for(self._load())
        return MIN_FETCH_BYTES

    def _writer_for(self, request: ExportRequest) -> MessageWriter:
        limits = (request.options.max_bad_records, self._settings.max_batch_bytes)
        if request.format is not ExportFormat.PDF:
            return LaneWriter(self._lane_pool, file_spec(request), limits)
        pdf = PdfWriter(self._pdf_pool, request.columns, request.options, report_info(request))
        return DecodingWriter(pdf, limits)


def _tally_for(request: ExportRequest, max_records: int) -> Tally:
    """The export's counts, stopped at `EXPORT_MAX_RECORDS` or a worksheet's rows."""
    if request.format is ExportFormat.XLSX and max_records > XLSX_MAX_RECORDS:
        return Tally(max_records=XLSX_MAX_RECORDS, limited_by=XLSX_LIMIT)
    return Tally(max_records=max_records)


def file_spec(request: ExportRequest) -> FileSpec:
    """What a lane needs to write the request's file."""
    info = FileInfo(
        export_id=request.export_id,
        title=request.title or request.export_id,
        source=orjson.dumps(source_json(request.source)).decode(),
    )
    return FileSpec(request.format, request.columns, request.options, info)


def output_type(request: ExportRequest) -> OutputType:
    """The request's file: its format's, with `.gz` when compressed."""
    return OutputType.of(request.format, request.options.compression)


def _completed(
    request: ExportRequest,
    started: float,
    tally: Tally,
    size: int,
    output: OutputFile,
    *,
    ranges: tuple[PartitionRange, ...] = (),
) -> ExportResult:
    """The completed result of `request`, whose output is `output` of `size` bytes, read
    from `ranges` (by default the request's own offset range)."""
    src = request.source
    if not ranges and isinstance(src, SourceRange):
        ranges = (PartitionRange(src.partition, src.start_offset, src.end_offset),)
    return ExportResult(
        export_id=request.export_id,
        status=ResultStatus.COMPLETED,
        finished_at=utc_timestamp(),
        duration_ms=(time.monotonic() - started) * 1000,
        format=request.format,
        source=request.source,
        ranges=ranges,
        records=tally.records,
        bytes=size,
        skipped=tally.skipped,
        output=output,
    )


def _check_same_request(request: ExportRequest, fingerprint: str, name: str) -> None:
    """Raise `Conflict` unless the output `name` was made from this very request."""
    if fingerprint != request.fingerprint:
        raise Conflict(
            f"export_id {request.export_id!r} already has an output "
            f"({name}) made from a different request"
        )


def report_info(request: ExportRequest) -> ReportInfo:
    """What the report's first page says: title, source range, time, id."""
    return ReportInfo(
        title=request.title or request.export_id,
        source=describe_source(request.source, printed=True),
        generated_at=utc_timestamp()[:16].replace("T", " ") + " UTC",
        export_id=request.export_id,
    )


def describe_source(src: Source, *, printed: bool = False) -> str:
    """The source in words: for messages, or (`printed`) a report's first page."""
    if isinstance(src, SourceRange):
        if printed:
            text = (
                f"{src.topic}[{src.partition}] offsets {src.start_offset} to {src.end_offset - 1}"
            )
        else:
            text = f"the range {src.start_offset}..{src.end_offset}"
    else:
        partitions = (
            f"[{', '.join(map(str, src.partitions))}]" if src.partitions is not None else ""
        )
        text = f"{src.topic}{partitions} from {src.since} until {src.until}"
        if not printed:
            text = f"the window of {text}"
    if printed and src.key is not None:
        text += f", key {src.key}"
    return text
