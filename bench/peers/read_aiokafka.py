"""The transport limit with aiokafka: read the range, decode nothing, write nothing.

    python -m bench.peers.read_aiokafka BOOTSTRAP TOPIC START END

Assigns partition 0 and reads from START to END with the fetch sizes the service uses for
one export; prints one JSON line: seconds (connect to last record), records and bytes.
"""

from __future__ import annotations

import asyncio
import sys
import time

import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition

FETCH_BYTES = 4 * 1024 * 1024
"""What the service fetches at once for a lone export (consumer/source)."""


async def read(bootstrap: str, topic: str, start: int, end: int) -> tuple[int, int]:
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        enable_auto_commit=False,
        max_partition_fetch_bytes=FETCH_BYTES,
        fetch_max_bytes=FETCH_BYTES,
    )
    await consumer.start()
    records = size = 0
    try:
        tp = TopicPartition(topic, 0)
        consumer.assign([tp])
        consumer.seek(tp, start)
        position = start
        while position < end:
            fetched = await consumer.getmany(tp, timeout_ms=1000)
            for message in fetched.get(tp, []):
                if message.offset >= end:
                    break
                records += 1
                size += len(message.value or b"")
            position = await consumer.position(tp)
    finally:
        await consumer.stop()
    return records, size


def main() -> None:
    bootstrap, topic, start, end = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    started = time.perf_counter()
    messages, size = asyncio.run(read(bootstrap, topic, start, end))
    seconds = time.perf_counter() - started
    print(orjson.dumps({"seconds": seconds, "messages": messages, "bytes": size}).decode())


if __name__ == "__main__":
    main()
