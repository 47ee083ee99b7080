"""Load benchmarks: responsiveness under PDF load, and memory with mixed large exports.

    python -m bench.load --responsiveness   # 5 concurrent 50,000-record PDFs: loop lag, /metrics
    python -m bench.load --mixed            # 3 CSV of 1,000,000 and 2 PDF of 50,000 at once

Loop lag comes from the service's own `export_event_loop_lag_seconds` histogram (a 100 ms
timer that records how late it wakes), the difference of two scrapes around the load;
/metrics is timed from this process every 100 ms while the exports run.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
import urllib.request
from collections import defaultdict

from prometheus_client.parser import text_string_to_metric_families

from bench.harness import BenchKafka, ProcessTree, parse_args, run
from producer_tools.assert_metrics import quantile_from_buckets


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench.load", description=__doc__)
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--responsiveness", action="store_true")
    mode.add_argument("--mixed", action="store_true")
    parser.add_argument(
        "--records",
        type=int,
        help="records per export (default: 50,000 per PDF; mixed: 1,000,000 per CSV and "
        "a twentieth of that per PDF)",
    )
    return parser


def scrape(url: str) -> tuple[float, str]:
    started = time.perf_counter()
    with urllib.request.urlopen(url, timeout=10) as response:  # noqa: S310 - our own port
        body = response.read().decode()
    return time.perf_counter() - started, body


def lag_buckets(text: str) -> dict[float, float]:
    buckets: defaultdict[float, float] = defaultdict(float)
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "export_event_loop_lag_seconds_bucket":
                buckets[float(sample.labels["le"])] += sample.value
    return dict(buckets)


async def responsiveness(count: int = 5, records: int = 50_000) -> None:
    async with BenchKafka() as kafka:
        ranges = [await kafka.seed(records) for _ in range(count)]
        with kafka.service("responsiveness") as service:
            await kafka.export(ranges[0], "pdf")  # warm-up: workers exist
            _, before = await asyncio.to_thread(scrape, service.metrics_url)
            timings: list[float] = []
            done = asyncio.Event()

            async def poll() -> None:
                while not done.is_set():
                    seconds, _ = await asyncio.to_thread(scrape, service.metrics_url)
                    timings.append(seconds)
                    await asyncio.sleep(0.1)

            poller = asyncio.create_task(poll())
            wall_s, _ = await kafka.export_many(ranges, "pdf")
            done.set()
            await poller
            _, after = await asyncio.to_thread(scrape, service.metrics_url)
    start, end = lag_buckets(before), lag_buckets(after)
    delta = {edge: end[edge] - start.get(edge, 0.0) for edge in end}
    p99 = quantile_from_buckets(delta, 0.99)
    timings.sort()
    print(
        f"{count} concurrent PDF exports of {records:,} records in {wall_s:.1f} s: event-loop "
        f"lag p99 {p99 * 1000:.1f} ms over {delta.get(float('inf'), 0):.0f} wakes "
        f"(from the histogram's buckets); /metrics answered {len(timings)} scrapes, "
        f"median {statistics.median(timings) * 1000:.1f} ms, "
        f"p99 {timings[int(0.99 * (len(timings) - 1))] * 1000:.1f} ms, "
        f"max {timings[-1] * 1000:.1f} ms"
    )


async def mixed(csv_records: int = 1_000_000) -> None:
    async with BenchKafka() as kafka:
        csv_ranges = [await kafka.seed(csv_records) for _ in range(3)]
        pdf_ranges = [await kafka.seed(csv_records // 20) for _ in range(2)]
        with kafka.service("mixed") as service:
            assert service.process is not None  # noqa: S101
            await kafka.export(pdf_ranges[0], "pdf")  # warm-up: a PDF worker exists
            with ProcessTree(service.process.pid) as tree:
                tree.reset_peak()
                started = time.perf_counter()
                await asyncio.gather(
                    kafka.export_many(csv_ranges, "csv"), kafka.export_many(pdf_ranges, "pdf")
                )
                wall_s = time.perf_counter() - started
    print(
        f"3 CSV exports of {csv_records:,} records and 2 PDF exports of {csv_records // 20:,} "
        f"at once: {wall_s:.1f} s; "
        f"service and its workers {tree.describe_peaks()}"
    )


def main() -> None:
    args = parse_args(build_parser())
    if args.responsiveness:
        run(lambda: responsiveness(records=args.records or 50_000))
    else:
        run(lambda: mixed(args.records or 1_000_000))


if __name__ == "__main__":
    main()
