"""A workbook's package (a ZIP) copied with new document properties.

rust_xlsxwriter (under rustpy-xlsxwriter) streams the rows into the package but has no
way to set the title, so the finished package is copied to the store with its
`docProps/core.xml` replaced: every other member's bytes (the worksheet's, compressed)
are copied as they are, and only the central directory is written anew.
"""

from __future__ import annotations

import struct
import zipfile
import zlib
from typing import TYPE_CHECKING, BinaryIO

if TYPE_CHECKING:
    from consumer.writers import Sink

CORE = "docProps/core.xml"
CHUNK = 1024 * 1024
_LOCAL = struct.Struct("<4s5H3L2H")
_CENTRAL = struct.Struct("<4s6H3L5H2L")
_END = struct.Struct("<4s4H2LH")
_END64 = struct.Struct("<4sQ2H2L4Q")
_LOCATOR64 = struct.Struct("<4sLQL")
_CENTRAL_OFFSET = 42
"""Where a central directory entry holds its member's offset."""
LIMIT = 0xFFFFFFFF


class PackageTooLarge(ValueError):
    """A member past 4 GiB where the copy would have to move it."""


def copy_with_core(package: BinaryIO, sink: Sink, core_xml: bytes) -> int:
    """Write the package to `sink` with `docProps/core.xml` replaced; the bytes written."""
    archive = zipfile.ZipFile(package)
    members = sorted(archive.infolist(), key=lambda m: m.header_offset)
    directory_at = archive.start_dir
    ends = [m.header_offset for m in members[1:]] + [directory_at]
    package.seek(directory_at)
    directory = package.read(_directory_size(archive))
    entries = _split_entries(directory, len(members))
    written = 0
    moved = 0  # how far later members move
    new_entries = []
    for member, end, entry in zip(members, ends, entries, strict=True):
        offset = member.header_offset + moved
        if member.filename == CORE:
            local, central = _stored_member(member, core_xml, offset)
            sink.write(local)
            written += len(local)
            moved += len(local) - (end - member.header_offset)
            new_entries.append(central)
            continue
        written += _copy_range(package, member.header_offset, end, sink)
        moved_entry = bytearray(entry)
        if moved:
            if offset >= LIMIT or member.header_offset >= LIMIT:
                raise PackageTooLarge("the workbook's package passed 4 GiB")
            struct.pack_into("<L", moved_entry, _CENTRAL_OFFSET, offset)
        new_entries.append(bytes(moved_entry))
    body = b"".join(new_entries)
    tail = _end_records(len(new_entries), len(body), written)
    sink.write(body)
    sink.write(tail)
    return written + len(body) + len(tail)


def _directory_size(archive: zipfile.ZipFile) -> int:
    return sum(
        _CENTRAL.size + len(m.orig_filename.encode()) + len(m.extra) + len(m.comment)
        for m in archive.infolist()
    )


def _split_entries(directory: bytes, count: int) -> list[bytes]:
    entries, at = [], 0
    for _ in range(count):
        fields = _CENTRAL.unpack_from(directory, at)
        size = _CENTRAL.size + fields[10] + fields[11] + fields[12]
        entries.append(directory[at : at + size])
        at += size
    # infolist() is in directory order; the copy goes in offset order (the same here).
    return entries


def _stored_member(member: zipfile.ZipInfo, data: bytes, offset: int) -> tuple[bytes, bytes]:
    """A small member, stored (not compressed): its local record and directory entry."""
    name = member.filename.encode()
    time_, date = _dos_time(member.date_time)
    crc = zlib.crc32(data)
    local = _LOCAL.pack(
        b"PK\x03\x04", 20, 0, 0, time_, date, crc, len(data), len(data), len(name), 0
    )
    central = _CENTRAL.pack(
        b"PK\x01\x02", 20, 20, 0, 0, time_, date, crc, len(data), len(data),
        len(name), 0, 0, 0, 0, 0, offset,
    )  # fmt: skip
    return local + name + data, central + name


def _dos_time(moment: tuple[int, int, int, int, int, int]) -> tuple[int, int]:
    year, month, day, hour, minute, second = moment
    return hour << 11 | minute << 5 | second // 2, (year - 1980) << 9 | month << 5 | day


def _copy_range(package: BinaryIO, start: int, end: int, sink: Sink) -> int:
    package.seek(start)
    left = end - start
    while left:
        chunk = package.read(min(CHUNK, left))
        if not chunk:
            raise EOFError("the workbook's package ended early")
        sink.write(chunk)
        left -= len(chunk)
    return end - start


def _end_records(count: int, size: int, offset: int) -> bytes:
    """The end of central directory record, with its ZIP64 form first when needed."""
    if offset < LIMIT and size < LIMIT and count < 0xFFFF:  # noqa: PLR2004
        return _END.pack(b"PK\x05\x06", 0, 0, count, count, size, offset, 0)
    end64_at = offset + size
    return (
        _END64.pack(b"PK\x06\x06", _END64.size - 12, 45, 45, 0, 0, count, count, size, offset)
        + _LOCATOR64.pack(b"PK\x06\x07", 0, end64_at, 1)
        + _END.pack(b"PK\x05\x06", 0, 0, 0xFFFF, 0xFFFF, LIMIT, LIMIT, 0)
    )
