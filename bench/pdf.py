"""PDF benchmark: the service against the platypus peer on the same records, side by side.

    python -m bench.pdf                 # 20,000 records, peer and service alternately, 3 rounds
    python -m bench.pdf --memory 100000 # peak memory of one 100,000-record report
    python -m bench.pdf --concurrent 5  # five reports at once: wall time and cores used

The service is timed from publishing the request to receiving its `completed` result,
through a real broker; the peer, in a process of its own, renders the same records from
memory (its time counts the rendering only).
"""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import sys

import orjson

from bench.harness import MB, BenchKafka, ProcessTree, concurrent, median, parse_args, run


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench.pdf", description=__doc__)
    parser.add_argument("--records", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=3, help="timed rounds of each (default 3)")
    parser.add_argument("--memory", type=int, metavar="N", help="measure one N-record report")
    parser.add_argument("--concurrent", type=int, metavar="K", help="K reports at once")
    return parser


async def run_peer(records: int) -> tuple[float, float, int]:
    """The peer in a process of its own: seconds rendering, its peak MB, the PDF's bytes."""
    command = [sys.executable, "-m", "bench.peers.pdf_platypus", str(records)]
    done = await asyncio.to_thread(subprocess.run, command, capture_output=True, check=True)
    report = orjson.loads(done.stdout)
    return float(report["seconds"]), float(report["peak_mb"]), int(report["bytes"])


async def throughput(records: int, rounds: int) -> None:
    async with BenchKafka() as kafka:
        seeded = await kafka.seed(records)
        with kafka.service("throughput") as service:
            assert service.process is not None  # noqa: S101
            print(f"warm-up: peer and service, {records} records", flush=True)
            await run_peer(records)
            await kafka.export(seeded, "pdf")
            peer_s, service_s, peer_mb, service_mb = [], [], [], []
            with ProcessTree(service.process.pid) as tree:
                for round_no in range(1, rounds + 1):
                    seconds, peak, size = await run_peer(records)
                    peer_s.append(seconds)
                    peer_mb.append(peak)
                    tree.reset_peak()
                    seconds, result = await kafka.export(seeded, "pdf")
                    service_s.append(seconds)
                    service_mb.append(tree.peak_rss / MB)
                    print(
                        f"round {round_no}: peer {peer_s[-1]:.2f} s, peak {peak:.0f} MB "
                        f"({size / MB:.1f} MB); service {seconds:.2f} s, peak "
                        f"{service_mb[-1]:.0f} MB ({result['bytes'] / MB:.1f} MB)",
                        flush=True,
                    )
    peer, ours = median(peer_s), median(service_s)
    print(
        f"PDF {records} records, median of {rounds}: peer {peer:.2f} s "
        f"({records / peer:,.0f} rec/s, peak {max(peer_mb):.0f} MB), service {ours:.2f} s "
        f"({records / ours:,.0f} rec/s, peak {max(service_mb):.0f} MB), "
        f"service/peer {ours / peer:.2f}x"
    )


async def memory(records: int) -> None:
    async with BenchKafka() as kafka:
        seeded = await kafka.seed(records)
        with kafka.service("memory") as service:
            assert service.process is not None  # noqa: S101
            with ProcessTree(service.process.pid) as tree:
                idle = tree.sample()
                tree.reset_peak()
                seconds, result = await kafka.export(seeded, "pdf")
    print(
        f"PDF {records} records: {seconds:.2f} s, {result['bytes'] / MB:.1f} MB file; "
        f"service + PDF worker resident memory: idle {idle / MB:.0f} MB, "
        f"{tree.describe_peaks()}, sampled every 20 ms"
    )


def main() -> None:
    args = parse_args(build_parser())
    if args.memory:
        run(lambda: memory(args.memory))
    elif args.concurrent:
        run(lambda: concurrent("pdf", args.concurrent, args.records))
    else:
        run(lambda: throughput(args.records, args.rounds))


if __name__ == "__main__":
    main()
