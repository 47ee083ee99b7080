"""The malloc settings of the service's process and of its lanes.

glibc serves an allocation of 128 KiB or more with its own mmap, and returns it when
freed, but each such free raises that threshold to the freed size (up to 32 MiB). After
the first few output parts and worker replies (1-8 MiB each) are freed, later ones come
from the heap arenas (one per thread), where freed holes stay resident: the service with
the S3 store peaked at 206 MB instead of about 110 MB for a 1,000,000-record CSV export
(`python -m bench.store`). Fixing the threshold turns the raise off.

With the local directory, it is fixed at 8 MiB instead: there are no upload parts, and
the fetch path makes several buffers of about 4 MiB per fetch (aiokafka's frame, its
copies), which as mappings each cost a page fault per 4 KiB, every time: 200,000 faults
and 0.35 CPU-s of the service's 1.0 for a 1,000,000-record CSV export. From the heap they
are reused, with the trim threshold raised to match (a fixed mmap threshold leaves it at
128 KiB, and the heap's top would go back to the system, and fault in again, after each
fetch). With a bucket that costs memory the goal has no room for (257 MB against 190 MB
peak, `python -m bench.store`), so there the 1 MiB setting stays.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import platform

log = logging.getLogger(__name__)

M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
"""mallopt's parameter numbers (malloc.h)."""
MMAP_THRESHOLD_BYTES = 1024 * 1024
"""With a bucket: at and above this, an allocation is its own mapping: buffers of output
and worker replies are; the many small objects are not, so they pay no page faults."""
DIRECTORY_MMAP_THRESHOLD_BYTES = 8 * 1024 * 1024
"""With the local directory: fetch buffers and worker replies (at most 4 MiB) come from
the heap and are reused."""
DIRECTORY_TRIM_THRESHOLD_BYTES = 32 * 1024 * 1024
"""Free space at the heap's top kept for the next fetch instead of returned."""
LANE_MMAP_THRESHOLD_BYTES = 4 * 1024 * 1024
LANE_TRIM_THRESHOLD_BYTES = 16 * 1024 * 1024
"""A lane's: message values (a JSON batch of 1,000 records is about 200 KiB), their rows
and its replies come from the heap and are reused, not mapped and faulted in each time."""


def reuse_lane_buffers() -> bool:
    """A lane's setting: its buffers (under 4 MiB) reused from the heap. A lane's values
    and rows were each a fresh mapping, faulted in page by page: fixed, a 1,000,000-record
    CSV export's lanes spent 0.28 CPU-s instead of 0.41, and the export took 0.34 s
    instead of 0.48 (medians of 5 side by side), the lanes as large as before (21-22 MB).
    False where the C library is not glibc."""
    return _set(LANE_MMAP_THRESHOLD_BYTES, LANE_TRIM_THRESHOLD_BYTES)


def _set(threshold: int, trim: int | None) -> bool:
    if platform.libc_ver()[0] != "glibc":
        return False
    libc = ctypes.CDLL(ctypes.util.find_library("c"))
    applied = bool(libc.mallopt(M_MMAP_THRESHOLD, threshold))
    if trim is not None:
        applied &= bool(libc.mallopt(M_TRIM_THRESHOLD, trim))
    log.debug("malloc mmap threshold fixed at %d bytes: %s", threshold, applied)
    return applied


def release_large_buffers(*, object_store: bool) -> bool:
    """Fix glibc's mmap threshold for this process (see above for the two settings);
    False where the C library is not glibc."""
    if object_store:
        return _set(MMAP_THRESHOLD_BYTES, None)
    return _set(DIRECTORY_MMAP_THRESHOLD_BYTES, DIRECTORY_TRIM_THRESHOLD_BYTES)
