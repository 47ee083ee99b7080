"""The peers of bench.formats: what a user would write instead of the service, one each.

    python -m bench.peers.formats FORMAT BOOTSTRAP TOPIC START END OUT col1,col2,...

FORMAT is
  xlsx     aiokafka + orjson + openpyxl's `write_only` workbook, a row per record
  parquet  aiokafka, every batch's records as JSON Lines in memory, read whole by
           `pyarrow.json.read_json`, then `pyarrow.parquet.write_table` (zstd)
  jsonl    aiokafka + `orjson.loads` per batch and `orjson.dumps` per record

Assigns partition 0 and reads the range; prints one JSON line: seconds, records, bytes.
"""

from __future__ import annotations

import asyncio
import io
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition

if TYPE_CHECKING:
    from collections.abc import AsyncIterator


async def batches(bootstrap: str, topic: str, span: tuple[int, int]) -> AsyncIterator[bytes]:
    start, end = span
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        tp = TopicPartition(topic, 0)
        consumer.assign([tp])
        consumer.seek(tp, start)
        position = start
        while position < end:
            fetched = await consumer.getmany(tp, timeout_ms=1000)
            for message in fetched.get(tp, []):
                if message.offset >= end:
                    return
                yield message.value or b"[]"
                position = message.offset + 1
    finally:
        await consumer.stop()


async def to_xlsx(source: AsyncIterator[bytes], out: Path, columns: list[str]) -> int:
    import openpyxl  # noqa: PLC0415 - only this peer needs it

    book = openpyxl.Workbook(write_only=True)
    sheet = book.create_sheet()
    sheet.append(columns)
    records = 0
    async for value in source:
        for record in orjson.loads(value):
            sheet.append([record.get(c) for c in columns])
            records += 1
    book.save(out)
    return records


async def to_parquet(source: AsyncIterator[bytes], out: Path, columns: list[str]) -> int:
    import pyarrow.json as pj  # noqa: PLC0415
    import pyarrow.parquet as pq  # noqa: PLC0415

    lines = io.BytesIO()
    async for value in source:  # a batch is a JSON array: its records as lines
        lines.write(b"\n".join(map(orjson.dumps, orjson.loads(value))) + b"\n")
    lines.seek(0)
    table = pj.read_json(lines).select(columns)
    pq.write_table(table, out, compression="zstd")
    return int(table.num_rows)


async def to_jsonl(source: AsyncIterator[bytes], out: Path, columns: list[str]) -> int:
    records = 0
    with out.open("wb") as file:
        async for value in source:
            for record in orjson.loads(value):
                file.write(orjson.dumps({c: record.get(c) for c in columns}) + b"\n")
                records += 1
    return records


WRITERS: dict[str, Any] = {"xlsx": to_xlsx, "parquet": to_parquet, "jsonl": to_jsonl}


def main() -> None:
    fmt, bootstrap, topic, start, end, out, columns = sys.argv[1:8]
    started = time.perf_counter()
    source = batches(bootstrap, topic, (int(start), int(end)))
    records = asyncio.run(WRITERS[fmt](source, Path(out), columns.split(",")))
    seconds = time.perf_counter() - started
    size = Path(out).stat().st_size
    print(orjson.dumps({"seconds": seconds, "records": records, "bytes": size}).decode())


if __name__ == "__main__":
    main()
