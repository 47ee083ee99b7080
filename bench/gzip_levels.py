"""gzip for the text formats: zlib against zlib-ng and python-isal on the same CSV pieces.

    python -m bench.gzip_levels                 # 200,000 records of the CSV benchmark

Each library compresses the pieces a lane would (512 KiB of CSV, one gzip member each)
at several levels, best of three, one after the other in this process; it prints time
and ratio relative to zlib at its default level 6, which the choice is held to.
"""

from __future__ import annotations

import argparse
import gzip
import io
import time
from typing import TYPE_CHECKING

from isal import igzip
from zlib_ng import gzip_ng

from consumer.structs import ExportOptions
from consumer.writers.csv import CsvWriter
from producer_tools.records import COLUMNS, generate

if TYPE_CHECKING:
    from collections.abc import Callable

PIECE = 512 * 1024


def csv_bytes(records: int) -> bytes:
    sink = io.BytesIO()
    writer = CsvWriter(COLUMNS, ExportOptions())
    writer.begin(sink)
    for start in range(0, records, 5000):
        writer.write_records(generate(min(5000, records - start), start_id=start + 1))
    return sink.getvalue()


def measure(pieces: list[bytes], compress: Callable[[bytes], bytes]) -> tuple[float, int]:
    best, size = float("inf"), 0
    for _ in range(3):
        started = time.perf_counter()
        size = sum(len(compress(p)) for p in pieces)
        best = min(best, time.perf_counter() - started)
    return best, size


def _level(compress: Callable[..., bytes], level: int) -> Callable[[bytes], bytes]:
    return lambda data: compress(data, level, mtime=0)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.gzip_levels", description=__doc__)
    parser.add_argument("--records", type=int, default=200_000)
    args = parser.parse_args(argv)
    data = csv_bytes(args.records)
    pieces = [data[i : i + PIECE] for i in range(0, len(data), PIECE)]
    candidates: list[tuple[str, Callable[[bytes], bytes]]] = [
        ("zlib 6", lambda p: gzip.compress(p, 6, mtime=0)),
        ("zlib 1", lambda p: gzip.compress(p, 1, mtime=0)),
    ]
    candidates += [(f"zlib-ng {n}", _level(gzip_ng.compress, n)) for n in (1, 3, 5, 6)]
    candidates += [(f"isal {n}", _level(igzip.compress, n)) for n in (1, 2, 3)]
    print(f"{len(data) / 1e6:.1f} MB of CSV in {len(pieces)} pieces")
    base_time, base_size = measure(pieces, candidates[0][1])
    for name, compress in candidates:
        seconds, size = measure(pieces, compress)
        print(
            f"{name:10s} {base_time / seconds:5.2f}x zlib 6's speed   ratio {len(data) / size:.2f}"
            f"   size {size / base_size:.3f}x zlib 6's"
        )


if __name__ == "__main__":
    main()
