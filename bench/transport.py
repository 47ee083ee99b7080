"""The transport limit: the service's CSV export against reading the same bytes and no more.

    python -m bench.transport                  # 1,000,000 records, 3 alternating rounds

Side by side in one run, on the same records: a bare aiokafka consumer and a bare
confluent-kafka (librdkafka) consumer reading the range without decoding it
(`bench/peers/read_*.py`), `kcat -C -e -o START -c N -f '%s\\n'` writing the raw values to
a file, and the service exporting the range as CSV. Every tool is a whole process timed as
its user would time it: a peer from launching it to its exit, the service from publishing
the request to receiving the `completed` result (it is already running, as a service is).
The peers' own connect-to-last-record time is reported beside it. Goal (issue #19): the
service within 1.25x of the faster bare consumer.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass

import orjson

from bench.harness import MB, BenchKafka, ProcessTree, SeededRange, median, parse_args, run


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench.transport", description=__doc__)
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds (default 3)")
    return parser


@dataclass
class Timing:
    """One tool's rounds."""

    wall_s: list[float]
    own_s: list[float]
    """The peer's own connect-to-last-record seconds (empty for kcat and the service)."""
    peak_mb: list[float]


async def run_process(
    command: list[str], stdout: int | None = subprocess.PIPE
) -> tuple[float, float, bytes]:
    """Launch to exit: seconds, peak MB, what it printed."""
    started = time.perf_counter()
    process = subprocess.Popen(command, stdout=stdout)  # noqa: ASYNC220 - waited in a thread
    with ProcessTree(process.pid) as tree:
        out, _ = await asyncio.to_thread(process.communicate)
    seconds = time.perf_counter() - started
    if process.returncode != 0:
        raise RuntimeError(f"{' '.join(command[:3])} exited with {process.returncode}")
    return seconds, tree.peak_rss / MB, out or b""


def peer_command(name: str, kafka: BenchKafka, seeded: SeededRange) -> list[str]:
    span = [seeded.topic, str(seeded.start), str(seeded.end)]
    return [sys.executable, "-m", f"bench.peers.{name}", kafka.broker.bootstrap_servers, *span]


async def run_kcat(kafka: BenchKafka, seeded: SeededRange) -> tuple[float, float]:
    out = kafka.workdir / "kcat.out"
    command = [
        "kcat", "-C", "-q", "-b", kafka.broker.bootstrap_servers, "-t", seeded.topic, "-p", "0",
        "-o", str(seeded.start), "-c", str(seeded.end - seeded.start), "-e", "-f", "%s\\n",
    ]  # fmt: skip
    with out.open("wb") as file:
        seconds, peak, _ = await run_process(command, stdout=file.fileno())
    out.unlink()
    return seconds, peak


async def compare(records: int, rounds: int) -> None:
    kcat = shutil.which("kcat")
    async with BenchKafka() as kafka:
        print(f"seeding {records:,} records in batches of 1,000 on {kafka.kind}", flush=True)
        seeded = await kafka.seed(records)
        tools = ["read_aiokafka", "read_confluent", *(["kcat"] if kcat else []), "service"]
        timings = {tool: Timing([], [], []) for tool in tools}
        with kafka.service("transport") as service:
            assert service.process is not None  # noqa: S101
            await kafka.export(seeded, "csv")  # warm-up: workers started, connections made
            with ProcessTree(service.process.pid) as tree:
                for round_no in range(1, rounds + 1):
                    for tool in tools:
                        timing = timings[tool]
                        if tool == "service":
                            tree.reset_peak()
                            seconds, result = await kafka.export(seeded, "csv")
                            timing.wall_s.append(seconds)
                            timing.peak_mb.append(tree.peak_rss / MB)
                        elif tool == "kcat":
                            seconds, peak = await run_kcat(kafka, seeded)
                            timing.wall_s.append(seconds)
                            timing.peak_mb.append(peak)
                        else:
                            seconds, peak, out = await run_process(
                                peer_command(tool, kafka, seeded)
                            )
                            report = orjson.loads(out)
                            timing.wall_s.append(seconds)
                            timing.own_s.append(float(report["seconds"]))
                            timing.peak_mb.append(peak)
                    print(
                        f"round {round_no}: "
                        + ", ".join(f"{tool} {timings[tool].wall_s[-1]:.2f} s" for tool in tools),
                        flush=True,
                    )
    size = int(result["bytes"])
    print(f"\n{records:,} records ({size / MB:.0f} MB of CSV), medians of {rounds} rounds:")
    for tool in tools:
        timing = timings[tool]
        own = f" (its own time {median(timing.own_s):.2f} s)" if timing.own_s else ""
        print(f"  {tool:15} {median(timing.wall_s):6.2f} s{own}, peak {max(timing.peak_mb):.0f} MB")
    fastest = min(median(timings[t].wall_s) for t in ("read_aiokafka", "read_confluent"))
    ours = median(timings["service"].wall_s)
    print(f"service / faster bare consumer {ours / fastest:.2f}x (goal <= 1.25x)")
    if kcat:
        print(f"service / kcat {ours / median(timings['kcat'].wall_s):.2f}x")


def main() -> None:
    args = parse_args(build_parser())
    run(lambda: compare(args.records, args.rounds))


if __name__ == "__main__":
    main()
