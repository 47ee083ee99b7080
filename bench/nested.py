"""Nested columns against flat ones: the same records, two of their columns one level down.

    python -m bench.nested                     # 1,000,000 records, 3 alternating rounds

The generated records are written twice: as they are, and with `customer` and `country`
moved into an object (`{"customer": {"name": ..., "country": ...}}`). One service exports
both to CSV, alternately, the nested ones by the dotted fields `customer.name` and
`customer.country` labelled as the flat columns, so the two files must be byte for byte
the same. Goal (issue #17): nested at most 1.25x flat.
"""

from __future__ import annotations

import argparse
from typing import Any

from bench.harness import MB, BenchKafka, ProcessTree, median, parse_args, run
from producer_tools.records import COLUMNS

MOVED = {"customer": "customer.name", "country": "customer.country"}
NESTED_COLUMNS = [{"field": MOVED[c], "label": c} if c in MOVED else c for c in COLUMNS]


def nest(record: dict[str, Any]) -> dict[str, Any]:
    out = {k: v for k, v in record.items() if k not in MOVED}
    out["customer"] = {"name": record["customer"], "country": record["country"]}
    return out


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench.nested", description=__doc__)
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=3, help="timed rounds of each (default 3)")
    return parser


async def compare(records: int, rounds: int) -> None:
    async with BenchKafka() as kafka:
        print(f"seeding {records:,} records twice on {kafka.kind}", flush=True)
        flat = await kafka.seed(records)
        nested = await kafka.seed(records, shape=nest)
        flat_s: list[float] = []
        nested_s: list[float] = []
        peak_mb: list[float] = []
        with kafka.service("nested") as service:
            assert service.process is not None  # noqa: S101
            await kafka.export(flat, "csv")  # warm-up
            await kafka.export(nested, "csv", NESTED_COLUMNS)
            with ProcessTree(service.process.pid) as tree:
                for round_no in range(1, rounds + 1):
                    seconds, by_flat = await kafka.export(flat, "csv")
                    flat_s.append(seconds)
                    tree.reset_peak()
                    seconds, by_nested = await kafka.export(nested, "csv", NESTED_COLUMNS)
                    nested_s.append(seconds)
                    peak_mb.append(tree.peak_rss / MB)
                    print(
                        f"round {round_no}: flat {flat_s[-1]:.2f} s, nested {nested_s[-1]:.2f} s "
                        f"({peak_mb[-1]:.0f} MB)",
                        flush=True,
                    )
    if by_flat["output"]["sha256"] != by_nested["output"]["sha256"]:
        raise RuntimeError(f"the two files differ: {by_flat} against {by_nested}")
    ours, base = median(nested_s), median(flat_s)
    print(
        f"CSV {records:,} records, median of {rounds}: flat {base:.2f} s, two of "
        f"{len(COLUMNS)} columns nested one level {ours:.2f} s (peak {max(peak_mb):.0f} MB): "
        f"nested/flat {ours / base:.2f}x (goal <= 1.25x); the files are the same"
    )


def main() -> None:
    args = parse_args(build_parser())
    run(lambda: compare(args.records, args.rounds))


if __name__ == "__main__":
    main()
