"""`seed-export`: write generated record batches and an export request, wait for the result."""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import sys
from dataclasses import dataclass, field
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


BATCH_SCENARIOS = (
    Scenario("small-csv", 100, "csv"),
    Scenario("medium-csv", 10_000, "csv", request_overrides={"options": {"bom": True}}),
    Scenario("large-csv", 100_000, "csv"),
    Scenario("report-pdf", 2_000, "pdf"),
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
    mode.add_argument("--batch", action="store_true", help="run the five demo scenarios instead")
    parser.add_argument("--format", choices=("csv", "pdf"), default="csv")
    parser.add_argument("--export-id", help="default: seed-<random>")
    parser.add_argument("--title", default=None)
    parser.add_argument("--records-topic", default=RECORDS_TOPIC)
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds to wait for a result")
    parser.add_argument("--bootstrap-servers", default=None, help="EXPORT_BOOTSTRAP_SERVERS")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    return parser


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
    scenarios = (
        list(BATCH_SCENARIOS)
        if args.batch
        else [Scenario(args.export_id or "seed", args.records, args.format)]
    )
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
        start, end = await send_batches(
            send, args.records_topic, partition=0, key=key, batches=batches, on_sent=bar.update
        )
    request: dict[str, Any] = {
        "export_id": export_id,
        "format": scenario.format,
        "columns": list(COLUMNS),
        "source": {
            "topic": args.records_topic,
            "partition": 0,
            "start_offset": start,
            "end_offset": end,
            "key": export_id,
        },
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


if __name__ == "__main__":
    sys.exit(main())
