"""gzip for the text formats: each lane's reply is one gzip member.

Members end to end are one gzip file (RFC 1952 §2.2; `gzip -d`, Python's `gzip`, zlib's
`gunzip` and pandas read them all), so the lanes of an export compress in parallel and
the service only concatenates.
"""

from __future__ import annotations

import gzip

LEVEL = 6
"""zlib's default: the ratio people expect of a `.gz`."""


def gzip_member(data: bytes) -> bytes:
    """`data` as one gzip member, with no time or name in its header (same bytes, same file)."""
    return gzip.compress(data, compresslevel=LEVEL, mtime=0)
