"""`seed-export`: write generated record batches and an export request, wait for the result."""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import sys
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import orjson
from tqdm import tqdm

from consumer.errors import SettingsError
from consumer.topics import RECORDS_TOPIC
from producer_tools.kafka import ResultWaiter, producer, send_batches, tool_settings
from producer_tools.records import COLUMNS, generate

if TYPE_CHECKING:
    from collections.abc import Sequence

    from consumer.settings import Settings

BATCH_SIZE = 1_000
EXIT_FAILED = 1
EXIT_USAGE = 2


@dataclass(frozen=True, slots=True)
class Scenario:
    """One export to seed, and the outcome it must have."""

    name: str
    records: int
    format: str
    expect_status: str = "completed"
    expect_reason: str | None = None
    request_overrides: dict[str, Any] = field(default_factory=dict)
    window: tuple[datetime, datetime] | None = None
    """Batches stamped across this window and partitions, and a window request."""
    recent: timedelta | None = None
    """The window is this long a span up to now."""

    def window_now(self) -> tuple[datetime, datetime] | None:
        if self.recent is None:
            return self.window
        now = datetime.now(UTC)
        return now - self.recent, now


FORMATS = ("csv", "pdf", "jsonl", "xlsx", "parquet")
# Typed for the formats that keep types: a date cell in a workbook, a timestamp in Parquet.
TYPED_COLUMNS: list[Any] = [
    {"field": c, "label": c, "type": "timestamp"} if c == "created_at" else c for c in COLUMNS
]
GZIP = {"compression": "gzip"}

BATCH_SCENARIOS = (
    Scenario("small-csv", 100, "csv"),
    Scenario("medium-csv", 10_000, "csv", request_overrides={"options": {"bom": True}}),
    Scenario("large-csv", 100_000, "csv"),
    Scenario("report-pdf", 2_000, "pdf"),
    Scenario("window-csv", 6_000, "csv", recent=timedelta(hours=24)),
    Scenario("sheet-xlsx", 10_000, "xlsx", request_overrides={"columns": TYPED_COLUMNS}),
    Scenario("table-parquet", 100_000, "parquet", request_overrides={"columns": TYPED_COLUMNS}),
    Scenario("lines-jsonl-gz", 10_000, "jsonl", request_overrides={"options": GZIP}),
    Scenario(
        "invalid-request",
        10,
        "csv",
        expect_status="failed",
        expect_reason="invalid_request",
        request_overrides={"options": {"rows_per_page": 5}},
    ),
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="seed-export",
        description="Write generated records to the records topic, request their export, "
        "and print the result. Kafka settings come from the EXPORT_* variables.",
    )
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument(
        "--records", type=int, default=1_000, help="records to generate (default 1000)"
    )
    mode.add_argument("--batch", action="store_true", help="run the six demo scenarios instead")
    parser.add_argument("--format", choices=FORMATS, default="csv")
    parser.add_argument(
        "--gzip", action="store_true", help="compress the output (csv and jsonl): .csv.gz"
    )
    parser.add_argument("--export-id", help="default: seed-<random>")
    parser.add_argument("--title", default=None)
    parser.add_argument("--records-topic", default=RECORDS_TOPIC)
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds to wait for a result")
    parser.add_argument("--bootstrap-servers", default=None, help="EXPORT_BOOTSTRAP_SERVERS")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    window = parser.add_argument_group(
        "time window",
        "write the batches with timestamps spread over a window, across partitions, and "
        "request the window instead of an offset range",
    )
    window.add_argument(
        "--window",
        type=parse_duration,
        metavar="DURATION",
        help="the last DURATION (24h, 90m, 30s)",
    )
    window.add_argument("--since", type=parse_time, help="RFC 3339 start (inclusive)")
    window.add_argument("--until", type=parse_time, help="RFC 3339 end (exclusive; default now)")
    window.add_argument(
        "--partitions", type=int, metavar="N", help="spread over partitions 0..N-1 (default: all)"
    )
    return parser


def parse_duration(text: str) -> timedelta:
    """`24h`, `90m`, `30s`, `2d` as a timedelta."""
    units = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}
    number, unit = text[:-1], text[-1:]
    if unit not in units or not number.isdigit() or int(number) == 0:
        raise argparse.ArgumentTypeError(f"{text!r}: use a number and s, m, h or d (24h)")
    return timedelta(**{units[unit]: int(number)})


def parse_time(text: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        moment = None
    if moment is None or moment.tzinfo is None:
        raise argparse.ArgumentTypeError(f"{text!r}: use an RFC 3339 time with a zone")
    return moment


def window_of(args: argparse.Namespace) -> tuple[datetime, datetime] | None:
    """The window the options ask for, or None for an offset range."""
    if args.window is None and args.since is None:
        return None
    until = args.until or datetime.now(UTC)
    since = args.since or until - args.window
    if until <= since:
        raise SettingsError("--until must be after --since")
    return since, until


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if not args.batch and args.records < 0:
        print("seed-export: --records must be 0 or more", file=sys.stderr)
        return EXIT_USAGE
    try:
        settings = tool_settings(os.environ, bootstrap_servers=args.bootstrap_servers)
    except SettingsError as exc:
        print(f"seed-export: {exc}", file=sys.stderr)
        return EXIT_USAGE
    try:
        window = window_of(args)
    except SettingsError as exc:
        print(f"seed-export: {exc}", file=sys.stderr)
        return EXIT_USAGE
    if args.gzip and args.format not in {"csv", "jsonl"}:
        print("seed-export: --gzip is for csv and jsonl", file=sys.stderr)
        return EXIT_USAGE
    overrides: dict[str, Any] = {"options": GZIP} if args.gzip else {}
    if args.format in {"xlsx", "parquet"}:
        overrides["columns"] = TYPED_COLUMNS
    one = Scenario(
        args.export_id or "seed", args.records, args.format, request_overrides=overrides,
        window=window,
    )  # fmt: skip
    scenarios = list(BATCH_SCENARIOS) if args.batch else [one]
    try:
        return asyncio.run(_seed_all(settings, args, scenarios))
    except (RuntimeError, TimeoutError) as exc:
        print(f"seed-export: {exc}", file=sys.stderr)
        return EXIT_FAILED


async def _seed_all(settings: Settings, args: argparse.Namespace, scenarios: list[Scenario]) -> int:
    waiter = ResultWaiter(settings)
    await waiter.start()
    send = producer(settings)
    await send.start()
    failures = 0
    try:
        for scenario in scenarios:
            export_id = (
                args.export_id
                if args.export_id and not args.batch
                else f"seed-{scenario.name}-{secrets.token_hex(4)}"
            )
            result = await _seed_one(
                settings, args, scenario, export_id=export_id, send=send, waiter=waiter
            )
            ok = result.get("status") == scenario.expect_status and (
                scenario.expect_reason is None
                or result.get("error", {}).get("reason") == scenario.expect_reason
            )
            failures += not ok
            if args.batch:
                verdict = "ok" if ok else "UNEXPECTED"
                print(f"{scenario.name}: {_summary(result)} [{verdict}]", flush=True)
            else:
                print(orjson.dumps(result, option=orjson.OPT_INDENT_2).decode(), flush=True)
    finally:
        await send.stop()
        await waiter.stop()
    return EXIT_FAILED if failures else 0


def _summary(result: dict[str, Any]) -> str:
    if result.get("status") == "completed":
        output = result.get("output", {})
        link = f" (download: {output['url']})" if "url" in output else ""
        return (
            f"completed {result.get('records')} records, {result.get('bytes')} bytes "
            f"in {result.get('duration_ms')} ms -> {output.get('uri', '')}{link}"
        )
    error = result.get("error", {})
    return f"failed ({error.get('reason')}): {error.get('message')}"


async def _seed_one(
    settings: Settings,
    args: argparse.Namespace,
    scenario: Scenario,
    *,
    export_id: str,
    send: Any,
    waiter: ResultWaiter,
) -> dict[str, Any]:
    key = export_id.encode()
    batches = [
        orjson.dumps(generate(min(BATCH_SIZE, scenario.records - start), start_id=start + 1))
        for start in range(0, scenario.records, BATCH_SIZE)
    ]
    with tqdm(
        total=len(batches),
        desc=f"{scenario.name}: sending batches",
        unit="batch",
        disable=args.quiet,
        file=sys.stderr,
        leave=False,
    ) as bar:
        window = scenario.window_now()
        if window is None:
            start, end = await send_batches(
                send, args.records_topic, partition=0, key=key, batches=batches, on_sent=bar.update
            )
            source: dict[str, Any] = {
                "topic": args.records_topic,
                "partition": 0,
                "start_offset": start,
                "end_offset": end,
            }
        else:
            since, until = window
            count = args.partitions or len(await send.partitions_for(args.records_topic))
            await send_spread(
                send,
                args.records_topic,
                partitions=count,
                key=key,
                batches=batches,
                window=window,
                on_sent=bar.update,
            )
            source = {
                "topic": args.records_topic,
                "since": _rfc3339(since),
                "until": _rfc3339(until),
            }
    source["key"] = export_id
    request: dict[str, Any] = {
        "export_id": export_id,
        "format": scenario.format,
        "columns": list(COLUMNS),
        "source": source,
        "requested_by": os.environ.get("USER", "seed-export"),
        "title": args.title or f"Seeded export: {scenario.name}",
    }
    request.update(scenario.request_overrides)
    await send.send_and_wait(settings.request_topic, orjson.dumps(request), key=key)
    with tqdm(
        total=100,
        desc=f"{scenario.name}: exporting",
        unit="%",
        disable=args.quiet,
        file=sys.stderr,
        leave=False,
        bar_format="{desc}: {percentage:3.0f}%|{bar}| {elapsed}",
    ) as bar:

        def on_event(event: dict[str, Any]) -> None:
            percent = event.get("percent")
            if event.get("status") == "running" and isinstance(percent, int | float):
                bar.update(max(0.0, float(percent) - bar.n))

        result = await waiter.wait(export_id, args.timeout, on_event)
        bar.update(100 - bar.n)
    return result


async def send_spread(
    send: Any,
    topic: str,
    *,
    partitions: int,
    key: bytes,
    batches: list[bytes],
    window: tuple[datetime, datetime],
    on_sent: Any,
) -> None:
    """Batch i goes to partition i mod `partitions`, stamped at the middle of its share of
    the window: every partition's timestamps rise with its offsets."""
    since, until = window
    span = (until - since) / max(len(batches), 1)
    in_flight = 16
    for first in range(0, len(batches), in_flight):
        futures = [
            await send.send(
                topic,
                batches[index],
                key=key,
                partition=index % partitions,
                timestamp_ms=int((since + span * (index + 0.5)).timestamp() * 1000),
            )
            for index in range(first, min(first + in_flight, len(batches)))
        ]
        for future in futures:
            await future
            on_sent(1)


def _rfc3339(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


if __name__ == "__main__":
    sys.exit(main())
