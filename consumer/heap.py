"""The service process's malloc setting: large buffers go back to the system when freed.

glibc serves an allocation of 128 KiB or more with its own mmap, and returns it when
freed, but each such free raises that threshold to the freed size (up to 32 MiB). After
the first few output parts and worker replies (1-8 MiB each) are freed, later ones come
from the heap arenas (one per thread), where freed holes stay resident: the service with
the S3 store peaked at 206 MB instead of about 110 MB for a 1,000,000-record CSV export
(`python -m bench.store`). Fixing the threshold turns the raise off.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import platform

log = logging.getLogger(__name__)

M_MMAP_THRESHOLD = -3
"""mallopt's parameter number (malloc.h)."""
MMAP_THRESHOLD_BYTES = 1024 * 1024
"""At and above this, an allocation is its own mapping: buffers of output and worker
replies are; the many small objects are not, so they pay no page faults."""


def release_large_buffers() -> bool:
    """Fix glibc's mmap threshold for this process; False where the C library is not glibc."""
    if platform.libc_ver()[0] != "glibc":
        return False
    libc = ctypes.CDLL(ctypes.util.find_library("c"))
    applied = bool(libc.mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES))
    log.debug("malloc mmap threshold fixed at %d bytes: %s", MMAP_THRESHOLD_BYTES, applied)
    return applied
