"""Scaling: export time and peak memory against record count, for both formats.

    python -m bench.scaling [--out docs/scaling.png] [--csv 10000,...] [--pdf 1000,...]

CSV at 10,000, 100,000, 1,000,000 and 10,000,000 records (about 2 GB); PDF at 1,000,
10,000 and 50,000. Each size is
exported twice after a warm-up and the faster run kept; memory is the service's (with its
PDF workers) peak resident size during the run. Prints a Markdown table and writes a PNG
(matplotlib, from the `bench` extra).
"""

from __future__ import annotations

import argparse
import secrets
from pathlib import Path

from bench.harness import MB, BenchKafka, ProcessTree, parse_args, run

SIZES = {"csv": (10_000, 100_000, 1_000_000, 10_000_000), "pdf": (1_000, 10_000, 50_000)}
RUNS = 2


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench.scaling", description=__doc__)
    parser.add_argument("--out", type=Path, default=Path("docs/scaling.png"))
    for fmt, sizes in SIZES.items():
        parser.add_argument(
            f"--{fmt}",
            type=_sizes,
            default=sizes,
            help=f"record counts (default {','.join(map(str, sizes))})",
        )
    return parser


def _sizes(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in text.split(","))


async def measure(sizes: dict[str, tuple[int, ...]]) -> dict[str, list[tuple[int, float, float]]]:
    """format -> [(records, seconds, peak MB)]; each format in a service of its own, so
    one format's idle workers do not count in the other's memory (one consumer group:
    the second service goes on from the first one's commits instead of redoing them)."""
    found: dict[str, list[tuple[int, float, float]]] = {}
    async with BenchKafka() as kafka:
        seeded = {fmt: [await kafka.seed(n) for n in counts] for fmt, counts in sizes.items()}
        group = f"bench-scaling-{secrets.token_hex(4)}"
        for fmt, ranges in seeded.items():
            with kafka.service(f"scaling-{fmt}", EXPORT_GROUP_ID=group) as service:
                assert service.process is not None  # noqa: S101
                await kafka.export(ranges[0], fmt)  # warm-up
                found[fmt] = []
                with ProcessTree(service.process.pid) as tree:
                    for seeded_range in ranges:
                        best, peak = float("inf"), 0.0
                        for _ in range(RUNS):
                            tree.reset_peak()
                            seconds, _ = await kafka.export(seeded_range, fmt)
                            best, peak = min(best, seconds), max(peak, tree.peak_rss / MB)
                        found[fmt].append((seeded_range.count, best, peak))
                        print(f"{fmt} {seeded_range.count:>9,}: {best:6.2f} s, peak {peak:4.0f} MB",
                              flush=True)  # fmt: skip
    return found


def plot(found: dict[str, list[tuple[int, float, float]]], out: Path) -> None:
    import matplotlib as mpl  # noqa: PLC0415 - only this command needs it

    mpl.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    fig, (time_ax, memory_ax) = plt.subplots(1, 2, figsize=(10, 4), layout="constrained")
    for fmt, rows in found.items():
        counts = [r[0] for r in rows]
        time_ax.plot(counts, [r[1] for r in rows], marker="o", label=fmt.upper())
        memory_ax.plot(counts, [r[2] for r in rows], marker="o", label=fmt.upper())
    for ax, label in ((time_ax, "export time (s)"), (memory_ax, "peak resident memory (MB)")):
        ax.set_xscale("log")
        ax.set_xlabel("records")
        ax.set_ylabel(label)
        ax.grid(visible=True, which="both", alpha=0.3)
        ax.legend()
    time_ax.set_yscale("log")
    time_ax.set_yticks([0.1, 0.2, 0.5, 1, 2, 5, 10, 20, 50])
    time_ax.yaxis.set_major_formatter(mpl.ticker.ScalarFormatter())
    time_ax.yaxis.set_minor_formatter(mpl.ticker.NullFormatter())
    memory_ax.set_ylim(bottom=0)
    fig.suptitle("export-consumer: export time and peak memory against record count")
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=100)


async def main(out: Path, sizes: dict[str, tuple[int, ...]]) -> None:
    found = await measure(sizes)
    print("\n| format | records | time (s) | records/s | peak memory (MB) |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for fmt, rows in found.items():
        for count, seconds, peak in rows:
            print(f"| {fmt} | {count:,} | {seconds:.2f} | {count / seconds:,.0f} | {peak:.0f} |")
    plot(found, out)
    print(f"\nplot written to {out}")


if __name__ == "__main__":
    args = parse_args(build_parser())
    run(lambda: main(args.out, {"csv": args.csv, "pdf": args.pdf}))
