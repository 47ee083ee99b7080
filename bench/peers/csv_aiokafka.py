"""The CSV peer: the script a user would write with aiokafka, orjson and the csv module.

    python -m bench.peers.csv_aiokafka BOOTSTRAP TOPIC START END OUT.csv col1,col2,...

Assigns partition 0, reads the range, decodes each batch with orjson and writes rows with
the standard `csv` module; prints one JSON line: seconds, records and bytes.
"""

from __future__ import annotations

import asyncio
import csv
import sys
import time
from pathlib import Path

import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition


async def export(
    bootstrap: str, topic: str, span: tuple[int, int], out: Path, columns: list[str]
) -> int:
    start, end = span
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    records = 0
    try:
        tp = TopicPartition(topic, 0)
        consumer.assign([tp])
        consumer.seek(tp, start)
        with out.open("w", newline="", encoding="utf-8") as file:
            writer = csv.writer(file)
            writer.writerow(columns)
            position = start
            while position < end:
                fetched = await consumer.getmany(tp, timeout_ms=1000)
                for message in fetched.get(tp, []):
                    if message.offset >= end:
                        position = end
                        break
                    for record in orjson.loads(message.value or b"[]"):
                        writer.writerow([record.get(column) for column in columns])
                        records += 1
                    position = message.offset + 1
    finally:
        await consumer.stop()
    return records


def main() -> None:
    bootstrap, topic, start, end, out, columns = sys.argv[1:7]
    started = time.perf_counter()
    span = (int(start), int(end))
    records = asyncio.run(export(bootstrap, topic, span, Path(out), columns.split(",")))
    seconds = time.perf_counter() - started
    size = Path(out).stat().st_size
    print(orjson.dumps({"seconds": seconds, "records": records, "bytes": size}).decode())


if __name__ == "__main__":
    main()
