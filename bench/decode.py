"""The CSV fallback path's cost: decoding source messages, then writing their records.

    python -m bench.decode                # 1,000,000 records in messages of 1,000, 3 rounds

What a message costs when the C path (format_json) leaves it to Python: `decode_batch`
alone, and `decode_batch` plus the CSV writer's `write_records`. In this process, no
broker: the numbers compare one implementation with another on the same machine.
"""

from __future__ import annotations

import argparse
import io
import time

import orjson

from bench.harness import median
from consumer.batches import decode_batch
from consumer.structs import ExportOptions
from consumer.writers.csv import CsvWriter
from producer_tools.records import COLUMNS, generate

BATCH = 1_000


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench.decode", description=__doc__)
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=3, help="timed rounds (default 3)")
    return parser


def main() -> None:
    args = build_parser().parse_args()
    messages = [
        orjson.dumps(generate(min(BATCH, args.records - start), start_id=start + 1))
        for start in range(0, args.records, BATCH)
    ]
    decode_s, write_s = [], []
    for _ in range(args.rounds):
        started = time.perf_counter()
        for message in messages:
            decode_batch(message)
        decode_s.append(time.perf_counter() - started)
        writer = CsvWriter(COLUMNS, ExportOptions())
        writer.begin(io.BytesIO())
        started = time.perf_counter()
        for message in messages:
            writer.write_records(decode_batch(message).records)
        write_s.append(time.perf_counter() - started)
    print(
        f"{args.records:,} records, median of {args.rounds}: decode_batch "
        f"{median(decode_s):.2f} s; decode_batch + write_records {median(write_s):.2f} s"
    )


if __name__ == "__main__":
    main()
