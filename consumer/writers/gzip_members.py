"""gzip for the text formats: each lane's reply is one gzip member.

Members end to end are one gzip file (RFC 1952 §2.2; `gzip -d`, Python's `gzip`, zlib's
`gunzip` and pandas read them all), so the lanes of an export compress in parallel and
the service only concatenates.
"""

from __future__ import annotations

from zlib_ng import gzip_ng

LEVEL = 5
"""zlib-ng's level 5 compresses CSV 3.1x as fast as zlib's default 6 to files 1.7%
larger (`python -m bench.gzip_levels`); python-isal is faster still but 11% larger."""


def gzip_member(data: bytes) -> bytes:
    """`data` as one gzip member, with no time or name in its header (same bytes, same file)."""
    return bytes(gzip_ng.compress(data, compresslevel=LEVEL, mtime=0))  # type: ignore[no-untyped-call]
