"""The service process's malloc setting: large buffers go back to the system when freed.

glibc serves an allocation of 128 KiB or more with its own mmap, and returns it when
freed, but each such free raises that threshold to the freed size (up to 32 MiB). After
the first few output parts and worker replies (1-8 MiB each) are freed, later ones come
from the heap arenas (one per thread), where freed holes stay resident: the service with
the S3 store peaked at 206 MB instead of about 110 MB for a 1,000,000-record CSV export
(`python -m bench.store`). Fixing the threshold turns the raise off.

It is fixed at 8 MiB, the size of an upload part, not lower: the fetch path makes several
buffers of about 4 MiB per fetch (aiokafka's frame, its copies), and as mappings each cost
a page fault per 4 KiB, every time: 200,000 faults and 0.35 CPU-s of the service's 1.0 for
a 1,000,000-record CSV export. From the heap they are reused, with the trim threshold
raised to match, since a fixed mmap threshold leaves glibc's at 128 KiB and the heap's top
would go back to the system, and fault in again, after each fetch.
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
MMAP_THRESHOLD_BYTES = 8 * 1024 * 1024
"""At and above this, an allocation is its own mapping: upload parts are; fetch buffers
and worker replies (at most 4 MiB) are not, so they pay no page faults."""
TRIM_THRESHOLD_BYTES = 32 * 1024 * 1024
"""Free space at the heap's top kept for the next fetch instead of returned."""


def release_large_buffers() -> bool:
    """Fix glibc's mmap threshold for this process; False where the C library is not glibc."""
    if platform.libc_ver()[0] != "glibc":
        return False
    libc = ctypes.CDLL(ctypes.util.find_library("c"))
    applied = bool(libc.mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES))
    applied &= bool(libc.mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD_BYTES))
    log.debug("malloc mmap threshold fixed at %d bytes: %s", MMAP_THRESHOLD_BYTES, applied)
    return applied
