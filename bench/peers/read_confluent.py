"""The transport limit with confluent-kafka (librdkafka): read the range, decode nothing.

    python -m bench.peers.read_confluent BOOTSTRAP TOPIC START END

Assigns partition 0 at START and consumes in batches until END; prints one JSON line:
seconds (connect to last record), messages and bytes.
"""

from __future__ import annotations

import sys
import time

import orjson
from confluent_kafka import Consumer, TopicPartition

BATCH = 10_000


def read(bootstrap: str, topic: str, start: int, end: int) -> tuple[int, int]:
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": "bench-transport",  # required by the client; nothing is committed
            "enable.auto.commit": False,
            "enable.partition.eof": True,
        }
    )
    messages = size = 0
    try:
        consumer.assign([TopicPartition(topic, 0, start)])
        position = start
        while position < end:
            for message in consumer.consume(BATCH, timeout=1.0):
                if message.error() is not None:
                    continue  # end of partition: the range is written, keep polling
                offset = message.offset()
                if offset is None or offset >= end:
                    position = end
                    break
                messages += 1
                size += len(message.value() or b"")
                position = offset + 1
    finally:
        consumer.close()
    return messages, size


def main() -> None:
    bootstrap, topic, start, end = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    started = time.perf_counter()
    messages, size = read(bootstrap, topic, start, end)
    seconds = time.perf_counter() - started
    print(orjson.dumps({"seconds": seconds, "messages": messages, "bytes": size}).decode())


if __name__ == "__main__":
    main()
