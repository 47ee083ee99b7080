"""CSV benchmark: the service against the aiokafka + csv peer on the same records.

    python -m bench.csv                    # 1,000,000 records; peer and service alternately
    python -m bench.csv --concurrent 5 --records 200000   # five at once against one alone

The service is timed from publishing the request to receiving its `completed` result and
its resident memory sampled every 20 ms; the peer runs as its own process (timed by
itself, from connecting to closing its file) and is sampled the same way.
"""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import sys

import orjson

from bench.harness import (
    MB,
    BenchKafka,
    ProcessTree,
    SeededRange,
    concurrent,
    median,
    parse_args,
    run,
)
from producer_tools.records import COLUMNS


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench.csv", description=__doc__)
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=2, help="timed rounds of each (default 2)")
    parser.add_argument("--concurrent", type=int, metavar="K", help="K exports at once")
    return parser


async def run_peer(kafka: BenchKafka, seeded: SeededRange) -> tuple[float, int, dict[str, int]]:
    """The peer in its own process: its seconds, its peak memory, and what it wrote."""
    out = kafka.workdir / "peer.csv"
    args = [kafka.broker.bootstrap_servers, seeded.topic, str(seeded.start), str(seeded.end)]
    command = [sys.executable, "-m", "bench.peers.csv_aiokafka", *args, str(out), ",".join(COLUMNS)]
    process = subprocess.Popen(command, stdout=subprocess.PIPE)  # noqa: ASYNC220
    with ProcessTree(process.pid) as tree:
        stdout, _ = await asyncio.to_thread(process.communicate)
    if process.returncode != 0:
        raise RuntimeError(f"the CSV peer exited with {process.returncode}")
    report = orjson.loads(stdout)
    out.unlink()
    return float(report["seconds"]), tree.peak_rss, report


async def throughput(records: int, rounds: int) -> None:
    async with BenchKafka() as kafka:
        print(f"seeding {records:,} records in batches of 1,000", flush=True)
        seeded = await kafka.seed(records)
        with kafka.service("throughput") as service:
            assert service.process is not None  # noqa: S101
            print("warm-up: peer and service", flush=True)
            await run_peer(kafka, seeded)
            await kafka.export(seeded, "csv")
            peer_s, service_s, peer_mb, service_mb = [], [], [], []
            with ProcessTree(service.process.pid) as tree:
                for round_no in range(1, rounds + 1):
                    seconds, peak, report = await run_peer(kafka, seeded)
                    peer_s.append(seconds)
                    peer_mb.append(peak / MB)
                    tree.reset_peak()
                    seconds, result = await kafka.export(seeded, "csv")
                    service_s.append(seconds)
                    service_mb.append(tree.peak_rss / MB)
                    print(
                        f"round {round_no}: peer {peer_s[-1]:.2f} s, peak {peer_mb[-1]:.0f} MB "
                        f"({report['bytes'] / MB:.0f} MB file); service {seconds:.2f} s, "
                        f"peak {service_mb[-1]:.0f} MB ({result['bytes'] / MB:.0f} MB file)",
                        flush=True,
                    )
    peer, ours = median(peer_s), median(service_s)
    print(
        f"CSV {records:,} records, median of {rounds}: peer {peer:.2f} s "
        f"({records / peer:,.0f} rec/s, peak {max(peer_mb):.0f} MB), service {ours:.2f} s "
        f"({records / ours:,.0f} rec/s, peak {max(service_mb):.0f} MB): "
        f"service/peer {ours / peer:.2f}x"
    )


def main() -> None:
    args = parse_args(build_parser())
    if args.concurrent:
        run(lambda: concurrent("csv", args.concurrent, args.records, max(3, args.rounds)))
    else:
        run(lambda: throughput(args.records, args.rounds))


if __name__ == "__main__":
    main()
