"""Object-storage clients side by side: obstore and aiobotocore stream the same bytes to
a local SeaweedFS, each in a process of its own, alternately.

    python -m bench.s3_clients                 # 512 MiB in 8 MiB pieces, 2 rounds
    python -m bench.s3_clients --mib 256 --rounds 3

Prints, per client and round, the seconds and the peak resident memory of the process
(after importing the client, and at the end). obstore comes with the `bench` extra.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

PIECE = 8 * 1024 * 1024
BUCKET = "bench-clients"
REGION = "us-east-1"
# The client processes get the test server's keys from the parent, so that they import
# nothing but their client (tests.seaweed would bring botocore into obstore's process).
ACCESS_KEY = os.environ.get("BENCH_S3_ACCESS_KEY", "")
SECRET_KEY = os.environ.get("BENCH_S3_SECRET_KEY", "")


def _pieces(mib: int) -> list[bytes]:
    block = bytes(range(256)) * (PIECE // 256)
    return [block] * (mib // 8)


def _peak_mb() -> float:
    # VmHWM, not ru_maxrss: Linux carries ru_maxrss over exec, from the parent's peak.
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


async def _obstore(endpoint: str, mib: int) -> tuple[float, float]:
    import obstore  # noqa: PLC0415 - only in its own process
    from obstore.store import S3Store  # noqa: PLC0415

    store = S3Store(
        BUCKET,
        endpoint=endpoint,
        access_key_id=ACCESS_KEY,
        secret_access_key=SECRET_KEY,
        region=REGION,
        client_options={"allow_http": True},
    )
    base = _peak_mb()

    async def stream() -> Any:
        for piece in _pieces(mib):
            yield piece

    started = time.perf_counter()
    # Multipart, unconditional: obstore sends a conditional create as one in-memory put.
    await obstore.put_async(store, f"obstore/{time.time()}", stream(), chunk_size=PIECE)
    return base, time.perf_counter() - started


async def _aiobotocore(endpoint: str, mib: int) -> tuple[float, float]:
    from aiobotocore.session import get_session  # noqa: PLC0415

    async with get_session().create_client(
        "s3",
        endpoint_url=endpoint,
        region_name=REGION,
        aws_access_key_id=ACCESS_KEY,
        aws_secret_access_key=SECRET_KEY,
    ) as client:
        base = _peak_mb()
        started = time.perf_counter()
        key = f"aiobotocore/{time.time()}"
        upload = await client.create_multipart_upload(Bucket=BUCKET, Key=key)
        parts = []
        for number, piece in enumerate(_pieces(mib), 1):
            answer = await client.upload_part(
                Bucket=BUCKET, Key=key, UploadId=upload["UploadId"], PartNumber=number, Body=piece
            )
            parts.append({"PartNumber": number, "ETag": answer["ETag"]})
        await client.complete_multipart_upload(
            Bucket=BUCKET,
            Key=key,
            UploadId=upload["UploadId"],
            MultipartUpload={"Parts": parts},
            IfNoneMatch="*",  # what the service sends
        )
        return base, time.perf_counter() - started


def _one(client: str, endpoint: str, mib: int) -> None:
    run = _obstore if client == "obstore" else _aiobotocore
    base, seconds = asyncio.run(run(endpoint, mib))
    print(
        f"{client:12} {mib} MiB in {seconds:5.2f} s ({mib / seconds:4.0f} MiB/s), "
        f"RSS after import {base:4.0f} MB, peak {_peak_mb():4.0f} MB",
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mib", type=int, default=512)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--client", help=argparse.SUPPRESS)
    parser.add_argument("--endpoint", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.client:
        _one(args.client, args.endpoint, args.mib)
        return
    from tests import seaweed  # noqa: PLC0415 - the parent process only

    env = {
        **os.environ,
        "BENCH_S3_ACCESS_KEY": seaweed.ACCESS_KEY,
        "BENCH_S3_SECRET_KEY": seaweed.SECRET_KEY,
    }
    with tempfile.TemporaryDirectory() as root, seaweed.SeaweedS3(Path(root)) as server:
        server.create_bucket(BUCKET)
        for _ in range(args.rounds):
            for client in ("obstore", "aiobotocore"):
                subprocess.run(
                    [sys.executable, "-m", "bench.s3_clients", "--client", client,
                     "--endpoint", server.endpoint_url, "--mib", str(args.mib)],
                    check=False, env=env,
                )  # fmt: skip


if __name__ == "__main__":
    main()
