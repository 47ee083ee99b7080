"""gzip for the text formats: each lane's reply is one gzip member.

Members end to end are one gzip file (RFC 1952 §2.2; `gzip -d`, Python's `gzip`, zlib's
`gunzip` and pandas read them all), so the lanes of an export compress in parallel and
the service only concatenates.
"""

from __future__ import annotations

from isal import igzip

LEVEL = 2
"""ISA-L's level 2 compresses CSV 12x as fast as zlib's default 6 to files 12% larger
(`python -m bench.gzip_levels`). zlib-ng's level 5 (1.7% larger, 2.3x zlib's speed) was
the choice while a CSV export took 0.9 s; at 0.36 s its compression made csv.gz 1.94x
the time of plain CSV, ISA-L's level 2 1.05x (19.9 MB against 18.1 MB for 85 MB of CSV;
zlib-ng's level 3: 1.49x, 18.9 MB; level 2: 1.37x, 20.2 MB), `python -m bench.formats
--format gzip --rounds 3`, side by side, 2026-12-04."""


def gzip_member(data: bytes) -> bytes:
    """`data` as one gzip member, with no time or name in its header (same bytes, same file)."""
    return bytes(igzip.compress(data, compresslevel=LEVEL, mtime=0))
