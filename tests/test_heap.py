"""The service's malloc setting: freed output buffers leave the process's memory."""

from __future__ import annotations

import platform
import subprocess
import sys

import pytest

# Buffers the size of output parts, freed while smaller allocations made between them live
# on: what an export does with parts and worker replies. Prints resident MiB retained.
PROGRAM = """
import sys
from consumer.heap import release_large_buffers

if sys.argv[1] == "bucket":
    assert release_large_buffers(object_store=True)

def resident() -> float:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * 4096 / 2**20

first = b"\x01" * (4 << 20)
del first  # by default, glibc now serves 4 MiB from the heap instead of a mapping
before = resident()
parts, kept = [], []
for _ in range(25):
    parts.append(b"\x01" * (4 << 20))
    kept.append(b"x" * 100_000)  # malloc puts it just after the part
del parts
print(round(resident() - before))
"""


def run_probe(program: str, mode: str) -> int:
    """Run a probe program in a fresh interpreter (the setting is per process): the number
    it prints."""
    answer = subprocess.run(
        [sys.executable, "-c", program, mode], capture_output=True, text=True, check=True
    )
    return int(answer.stdout)


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="a glibc setting")
def test_freed_large_buffers_go_back_to_the_system() -> None:
    """With the service's setting for a bucket, 100 MiB of freed part-sized buffers are no
    longer resident; with glibc's default most of them stay."""
    assert run_probe(PROGRAM, "default") > 60
    assert run_probe(PROGRAM, "bucket") < 10


# Fetch-sized buffers made and freed one after another, as each fetch does: prints the
# page faults they cost after the first.
FETCHES = """
import resource
import sys
from consumer.heap import release_large_buffers

assert release_large_buffers(object_store=sys.argv[1] == "bucket")
kept = []
frame = b"\\x01" * (4 << 20)
del frame
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(50):
    frame = b"\\x01" * (4 << 20)
    kept.append(b"x" * 1000)
    del frame
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="a glibc setting")
def test_fetch_sized_buffers_are_reused_with_the_local_directory() -> None:
    """50 buffers of 4 MiB, each freed before the next: with the directory's setting they
    come from the heap and fault in once; as mappings (the bucket's setting) they fault
    their 1,024 pages each time."""
    assert run_probe(FETCHES, "directory") < 2_000
    assert run_probe(FETCHES, "bucket") > 40_000


# A lane's pieces: message values of about 200 KiB, each's rows written to the reply
# buffer, the reply taken: prints the page faults they cost.
LANE = """
import io
import resource
import sys
from consumer.heap import reuse_lane_buffers

if sys.argv[1] == "lane":
    assert reuse_lane_buffers()
kept = []
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for piece in range(100):
    out = io.BytesIO()
    for n in range(3):
        value = b"\\x01" * (200_000 + 1_000 * ((piece * 3 + n) % 50))
        out.write(value[: len(value) * 2 // 5])
        del value
    reply = out.getvalue()
    kept.append(b"x" * 100)
    del out, reply
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="a glibc setting")
def test_a_lanes_buffers_are_reused() -> None:
    """With the lane's setting, 300 values and 100 replies fault in a few hundred pages;
    with glibc's default each is a fresh mapping, faulted in again every time (15,600)."""
    assert run_probe(LANE, "lane") < 1_000
    assert run_probe(LANE, "default") > 10_000
