"""`replay-export`: publish requests from the request topic again, chosen three ways.

    replay-export --from-offset 100 --to-offset 200 [--partition 2]
    replay-export --since 2026-11-28T10:00:00Z [--until 2026-11-28T11:00:00Z]
    replay-export --failed [--reason source_unavailable]
    ... --dry-run      # list what would be sent, send nothing

Requests are copied unchanged (value and key), so the service's replay rules apply: an
export that completed is answered again from its output (`"replayed": true`) and never
made twice; one that failed is tried again.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import sys
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition
from tqdm import tqdm

from consumer.errors import SettingsError
from consumer.topics import topic_partitions
from producer_tools.kafka import producer, tool_settings

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Sequence

    from aiokafka.structs import ConsumerRecord, OffsetAndTimestamp

    from consumer.settings import Settings

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


@dataclass(frozen=True, slots=True)
class Chosen:
    """A request picked for replay, where it was found, and the bytes to send again."""

    partition: int
    offset: int
    export_id: str
    key: bytes | None
    value: bytes


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="replay-export",
        description="Publish requests from the request topic again: a range of offsets, a "
        "time window, or those whose latest result failed. Kafka settings come from the "
        "EXPORT_* variables.",
    )
    by = parser.add_argument_group("which requests (offsets, a time window, or --failed)")
    by.add_argument("--from-offset", type=int, help="first offset, inclusive")
    by.add_argument("--to-offset", type=int, help="last offset, exclusive (default: the end)")
    by.add_argument("--partition", type=int, help="only this partition (default: all)")
    by.add_argument("--since", type=_timestamp, help="ISO time: requests written from then")
    by.add_argument("--until", type=_timestamp, help="ISO time: ... and before then")
    by.add_argument("--failed", action="store_true", help="requests whose latest result failed")
    by.add_argument("--reason", help="with --failed: only failures with this reason")
    parser.add_argument("--dry-run", action="store_true", help="list them, send nothing")
    parser.add_argument("--bootstrap-servers", default=None, help="EXPORT_BOOTSTRAP_SERVERS")
    parser.add_argument("--request-topic", default=None, help="EXPORT_REQUEST_TOPIC")
    parser.add_argument("--result-topic", default=None, help="EXPORT_RESULT_TOPIC")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    ways = [
        args.from_offset is not None or args.to_offset is not None,
        args.since is not None or args.until is not None,
        args.failed,
    ]
    if sum(ways) != 1:
        parser.error("choose one of: --from-offset/--to-offset, --since/--until, --failed")
    if args.reason and not args.failed:
        parser.error("--reason needs --failed")
    try:
        settings = tool_settings(
            os.environ,
            bootstrap_servers=args.bootstrap_servers,
            request_topic=args.request_topic,
            result_topic=args.result_topic,
        )
    except SettingsError as exc:
        print(f"replay-export: {exc}", file=sys.stderr)
        return EXIT_USAGE
    try:
        return asyncio.run(_replay(settings, args))
    except (RuntimeError, TimeoutError, OSError) as exc:
        print(f"replay-export: {exc}", file=sys.stderr)
        return EXIT_FAILED


async def _replay(settings: Settings, args: argparse.Namespace) -> int:
    chosen = await choose(settings, args)
    for item in chosen:
        print(f"{'would send' if args.dry_run else 'sending'} {item.export_id} "
              f"(partition {item.partition}, offset {item.offset})")  # fmt: skip
    if not args.dry_run and chosen:
        send = producer(settings)
        await send.start()
        try:
            for item in chosen:
                await send.send_and_wait(settings.request_topic, item.value, key=item.key)
        finally:
            await send.stop()
    verb = "would replay" if args.dry_run else "replayed"
    print(f"{verb} {len(chosen)} request(s) on {settings.request_topic}")
    return EXIT_OK


async def choose(settings: Settings, args: argparse.Namespace) -> list[Chosen]:
    """The requests to send again, in topic order (by partition, then offset)."""
    failed: set[str] | None = None
    if args.failed:
        failed = await latest_failures(settings, args.reason)
    picked: dict[str, Chosen] = {}
    async with _reader(settings) as consumer:
        partitions = await _partitions(consumer, settings.request_topic, args.partition)
        ends = await consumer.end_offsets(partitions)
        starts = await consumer.beginning_offsets(partitions)
        if args.since is not None:
            found = await consumer.offsets_for_times(dict.fromkeys(partitions, args.since))
            starts = {tp: _first_at(o, ends[tp]) for tp, o in found.items()}
        if args.from_offset is not None:
            starts = {tp: max(starts[tp], args.from_offset) for tp in partitions}
        if args.until is not None:
            found = await consumer.offsets_for_times(dict.fromkeys(partitions, args.until))
            ends = {tp: _first_at(o, ends[tp]) for tp, o in found.items()}
        if args.to_offset is not None:
            ends = {tp: min(ends[tp], args.to_offset) for tp in partitions}
        total = sum(max(0, ends[tp] - starts[tp]) for tp in partitions)
        with tqdm(total=total, unit="msg", desc="reading requests", disable=args.quiet) as bar:
            async for message in _read(consumer, starts, ends):
                bar.update(1)
                export_id = _export_id(message.value)
                if export_id is None or message.value is None:
                    continue  # not a request the service could answer: the DLQ has it
                if failed is None or export_id in failed:
                    # For --failed the latest request under an id is the one to send again.
                    key = (
                        export_id if failed is not None else f"{message.partition}:{message.offset}"
                    )
                    picked[key] = Chosen(
                        message.partition, message.offset, export_id, message.key, message.value
                    )
    return sorted(picked.values(), key=lambda c: (c.partition, c.offset))


async def latest_failures(settings: Settings, reason: str | None) -> set[str]:
    """Export ids whose latest outcome on the result topic is `failed` (with `reason`)."""
    latest: dict[str, dict[str, Any]] = {}
    async with _reader(settings) as consumer:
        partitions = await _partitions(consumer, settings.result_topic, None)
        starts = await consumer.beginning_offsets(partitions)
        ends = await consumer.end_offsets(partitions)
        async for message in _read(consumer, starts, ends):
            try:
                event = orjson.loads(message.value or b"")
            except orjson.JSONDecodeError:
                continue
            if isinstance(event, dict) and event.get("status") in {"completed", "failed"}:
                latest[str(event.get("export_id"))] = event
    return {
        export_id
        for export_id, event in latest.items()
        if event["status"] == "failed"
        and (reason is None or (event.get("error") or {}).get("reason") == reason)
    }


@contextlib.asynccontextmanager
async def _reader(settings: Settings) -> AsyncIterator[AIOKafkaConsumer]:
    """A group-less consumer, started and stopped around its use."""
    consumer = AIOKafkaConsumer(
        **settings.kafka_client_options(), group_id=None, enable_auto_commit=False
    )
    await consumer.start()
    try:
        yield consumer
    finally:
        await consumer.stop()


async def _partitions(
    consumer: AIOKafkaConsumer, topic: str, only: int | None
) -> list[TopicPartition]:
    known = await topic_partitions(consumer, topic)
    if not known:
        raise RuntimeError(f"topic {topic!r} not found")
    if only is not None and only not in known:
        raise RuntimeError(f"topic {topic!r} has no partition {only}")
    return [TopicPartition(topic, p) for p in sorted(known) if only is None or p == only]


async def _read(
    consumer: AIOKafkaConsumer, starts: dict[TopicPartition, int], ends: dict[TopicPartition, int]
) -> AsyncIterator[ConsumerRecord[bytes, bytes]]:
    """Every message in [start, end) of each partition, partition by partition."""
    for tp in sorted(starts, key=lambda t: t.partition):
        if starts[tp] >= ends[tp]:
            continue
        consumer.assign([tp])
        consumer.seek(tp, starts[tp])
        position = starts[tp]
        while position < ends[tp]:
            fetched = await consumer.getmany(tp, timeout_ms=1000)
            for message in fetched.get(tp, []):
                if message.offset >= ends[tp]:
                    position = ends[tp]
                    break
                yield message
            else:
                position = await consumer.position(tp)


def _first_at(found: OffsetAndTimestamp | None, end: int) -> int:
    """The first offset at or after a time; the end when no message is that late.

    Kafka answers "none" as no offset; Tansu as offset 0 with timestamp -1.
    """
    return end if found is None or found.timestamp < 0 else int(found.offset)


def _export_id(value: bytes | None) -> str | None:
    try:
        body = orjson.loads(value or b"")
    except orjson.JSONDecodeError:
        return None
    export_id = body.get("export_id") if isinstance(body, dict) else None
    return export_id if isinstance(export_id, str) else None


def _timestamp(text: str) -> int:
    """ISO 8601 (a trailing Z allowed) to Kafka's milliseconds since the epoch."""
    try:
        moment = datetime.fromisoformat(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not an ISO 8601 time: {text!r}") from exc
    if moment.tzinfo is None:
        raise argparse.ArgumentTypeError(f"give a time zone (e.g. Z): {text!r}")
    return int(moment.timestamp() * 1000)


if __name__ == "__main__":
    sys.exit(main())
