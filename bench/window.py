"""Time windows against offset ranges: the same records, read two ways.

    python -m bench.window                     # 1,000,000 records, 3 alternating rounds

The same generated records are written twice: into one partition (exported by its offset
range) and spread over 4 partitions with timestamps rising across an hour (exported by a
time window, the partitions merged by timestamp). One service exports both, alternately,
timed from publishing the request to the `completed` result, its memory (service and
workers) sampled throughout. Goal (issue #17): the window at most 1.1x the range, under
200 MB peak.
"""

from __future__ import annotations

import argparse

from bench.harness import MB, BenchKafka, ProcessTree, median, parse_args, run


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench.window", description=__doc__)
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds (default 3)")
    return parser


async def compare(records: int, partitions: int, rounds: int) -> None:
    async with BenchKafka() as kafka:
        print(f"seeding {records:,} records twice on {kafka.kind}", flush=True)
        seeded_range = await kafka.seed(records)
        seeded_window = await kafka.seed_window(records, partitions)
        range_s: list[float] = []
        window_s: list[float] = []
        range_mb: list[float] = []
        window_mb: list[float] = []
        with kafka.service("window") as service:
            assert service.process is not None  # noqa: S101
            await kafka.export(seeded_range, "csv")  # warm-up
            await kafka.export(seeded_window, "csv")
            with ProcessTree(service.process.pid) as tree:
                for round_no in range(1, rounds + 1):
                    tree.reset_peak()
                    seconds, by_range = await kafka.export(seeded_range, "csv")
                    range_s.append(seconds)
                    range_mb.append(tree.peak_rss / MB)
                    tree.reset_peak()
                    seconds, by_window = await kafka.export(seeded_window, "csv")
                    window_s.append(seconds)
                    window_mb.append(tree.peak_rss / MB)
                    print(
                        f"round {round_no}: range {range_s[-1]:.2f} s ({range_mb[-1]:.0f} MB), "
                        f"window over {partitions} partitions {window_s[-1]:.2f} s "
                        f"({window_mb[-1]:.0f} MB)",
                        flush=True,
                    )
                peaks = tree.describe_peaks()
    if by_range["records"] != by_window["records"] or by_range["bytes"] != by_window["bytes"]:
        raise RuntimeError(f"the two exports differ: {by_range} against {by_window}")
    ours, base = median(window_s), median(range_s)
    print(
        f"CSV {records:,} records, median of {rounds}: offset range of one partition "
        f"{base:.2f} s (peak {max(range_mb):.0f} MB), time window over {partitions} "
        f"partitions {ours:.2f} s (peak {max(window_mb):.0f} MB): window/range "
        f"{ours / base:.2f}x (goal <= 1.1x, peak < 200 MB); {peaks}"
    )


def main() -> None:
    args = parse_args(build_parser())
    run(lambda: compare(args.records, args.partitions, args.rounds))


if __name__ == "__main__":
    main()
