"""The formats against what a user would write instead, on the same records, one run.

    python -m bench.formats                      # every format, 1,000,000 records
    python -m bench.formats --format xlsx --records 200000

xlsx: the service against openpyxl's write_only workbook; parquet: against pyarrow
reading the batches whole (`pyarrow.json`, then `write_table`); jsonl: against orjson
loads and dumps per record; gzip: the service's csv.gz against its plain csv. Each peer
runs as its own process, timed by itself; the service is timed from publishing the
request to its result. Peaks are the resident memory of each process tree, sampled
every 20 ms. Rounds alternate peer and service; medians are reported.
"""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import sys
from typing import Any

import orjson

from bench.harness import MB, BenchKafka, ProcessTree, SeededRange, median, parse_args, run
from producer_tools.records import COLUMNS

FORMATS = ("jsonl", "parquet", "xlsx", "gzip")
GOALS = {"jsonl": "peer/service >= 3", "parquet": "service/peer <= 1.5, service < 250 MB",
         "xlsx": "peer/service >= 3", "gzip": "csv.gz/csv <= 1.5"}  # fmt: skip


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench.formats", description=__doc__)
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=2, help="timed rounds of each (default 2)")
    parser.add_argument("--format", choices=FORMATS, action="append", help="default: all")
    return parser


async def run_peer(kafka: BenchKafka, seeded: SeededRange, fmt: str) -> tuple[float, int]:
    """The peer in its own process: its seconds and its peak memory."""
    out = kafka.workdir / f"peer.{fmt}"
    command = [
        sys.executable, "-m", "bench.peers.formats", fmt, kafka.broker.bootstrap_servers,
        seeded.topic, str(seeded.start), str(seeded.end), str(out), ",".join(COLUMNS),
    ]  # fmt: skip
    process = subprocess.Popen(command, stdout=subprocess.PIPE)  # noqa: ASYNC220
    with ProcessTree(process.pid) as tree:
        stdout, _ = await asyncio.to_thread(process.communicate)
    if process.returncode != 0:
        raise RuntimeError(f"the {fmt} peer exited with {process.returncode}")
    report = orjson.loads(stdout)
    out.unlink()
    return float(report["seconds"]), tree.peak_rss


async def export(kafka: BenchKafka, seeded: SeededRange, fmt: str) -> tuple[float, dict[str, Any]]:
    if fmt == "gzip":
        return await kafka.export(seeded, "csv", compression="gzip")
    return await kafka.export(seeded, fmt)


async def compare(records: int, rounds: int, formats: list[str]) -> None:
    async with BenchKafka() as kafka:
        print(f"seeding {records:,} records in batches of 1,000", flush=True)
        seeded = await kafka.seed(records)
        with kafka.service("formats") as service:
            assert service.process is not None  # noqa: S101
            with ProcessTree(service.process.pid) as tree:
                lines = [await _one(kafka, seeded, fmt, rounds, tree) for fmt in formats]
    for line in lines:
        print(line)


async def _one(
    kafka: BenchKafka, seeded: SeededRange, fmt: str, rounds: int, tree: ProcessTree
) -> str:
    async def peer() -> tuple[float, int]:
        if fmt == "gzip":  # the plain CSV export is the peer
            tree.reset_peak()
            seconds, _ = await kafka.export(seeded, "csv")
            return seconds, tree.peak_rss
        return await run_peer(kafka, seeded, fmt)

    print(f"{fmt}: warm-up", flush=True)
    await peer()
    await export(kafka, seeded, fmt)
    peer_s, ours_s, peer_mb, ours_mb, ours_pss = [], [], [], [], []
    size = 0
    for round_no in range(1, rounds + 1):
        seconds, peak = await peer()
        peer_s.append(seconds)
        peer_mb.append(peak / MB)
        tree.reset_peak()
        seconds, result = await export(kafka, seeded, fmt)
        ours_s.append(seconds)
        ours_mb.append(tree.peak_rss / MB)
        ours_pss.append(tree.peak_pss / MB)
        size = result["bytes"]
        print(
            f"{fmt} round {round_no}: peer {peer_s[-1]:.2f} s, peak {peer_mb[-1]:.0f} MB; "
            f"service {ours_s[-1]:.2f} s, peak {ours_mb[-1]:.0f} MB RSS, "
            f"{ours_pss[-1]:.0f} MB PSS ({size / MB:.1f} MB file)",
            flush=True,
        )
    peer_t, ours_t = median(peer_s), median(ours_s)
    name = "plain csv" if fmt == "gzip" else "peer"
    return (
        f"{fmt} {seeded.count:,} records, median of {rounds}: {name} {peer_t:.2f} s "
        f"(peak {max(peer_mb):.0f} MB), service {ours_t:.2f} s (peak {max(ours_mb):.0f} MB RSS, "
        f"{max(ours_pss):.0f} MB PSS, "
        f"{size / MB:.1f} MB file): service/{name.replace(' ', '-')} {ours_t / peer_t:.2f}x, "
        f"{name.replace(' ', '-')}/service {peer_t / ours_t:.2f}x (goal {GOALS[fmt]})"
    )


def main() -> None:
    args = parse_args(build_parser())
    formats = args.format or list(FORMATS)
    run(lambda: compare(args.records, args.rounds, formats))


if __name__ == "__main__":
    main()
