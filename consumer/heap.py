"""The service process's malloc setting: large buffers go back to the system when freed.

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


def release_large_buffers(*, object_store: bool) -> bool:
    """Fix glibc's mmap threshold for this process (see above for the two settings);
    False where the C library is not glibc."""
    if platform.libc_ver()[0] != "glibc":
        return False
    libc = ctypes.CDLL(ctypes.util.find_library("c"))
    if object_store:
        threshold, trim = MMAP_THRESHOLD_BYTES, None
    else:
        threshold, trim = DIRECTORY_MMAP_THRESHOLD_BYTES, DIRECTORY_TRIM_THRESHOLD_BYTES
    applied = bool(libc.mallopt(M_MMAP_THRESHOLD, threshold))
    if trim is not None:
        applied &= bool(libc.mallopt(M_TRIM_THRESHOLD, trim))
    log.debug("malloc mmap threshold fixed at %d bytes: %s", threshold, applied)
    return applied
