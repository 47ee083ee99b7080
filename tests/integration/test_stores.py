"""The store interface, the same tests against both stores: the output directory and an
S3 bucket (SeaweedFS)."""

from __future__ import annotations

import asyncio
import hashlib
import urllib.request
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pytest

from consumer.output_types import OutputType
from consumer.settings import load_settings
from consumer.storage import OutputTaken
from consumer.storage.local import LocalStore
from consumer.storage.manifest import Manifest
from consumer.storage.s3 import S3Store
from consumer.storage.s3_upload import PART_BYTES
from consumer.structs import ExportFormat
from tests.seaweed import ACCESS_KEY, SECRET_KEY

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

PREFIX = "out"


@dataclass
class Subject:
    """A store under test and how to look at what it holds from outside."""

    store: Any
    outputs: Callable[[], list[str]]
    """Names of the visible outputs."""
    unfinished: Callable[[], list[str]]
    """What is half-made: hidden part files, or unfinished multipart uploads."""
    put_raw: Callable[[str, bytes], object]
    """Write a record of the store's own (`{id}.manifest.json`) behind its back."""
    remove_output: Callable[[str], object]
    read: Callable[[str], bytes]
    """An output's bytes, read from outside."""
    links: bool


def local_subject(root: Path) -> Subject:
    def outputs() -> list[str]:
        return sorted(p.name for p in root.iterdir() if not p.name.startswith("."))

    return Subject(
        store=LocalStore(root),
        outputs=outputs,
        unfinished=lambda: sorted(p.name for p in root.glob(".*.part")),
        put_raw=lambda name, body: (root / f".{name}").write_bytes(body),
        remove_output=lambda name: (root / name).unlink(),
        read=lambda name: (root / name).read_bytes(),
        links=False,
    )


def s3_subject(seaweed, bucket: str) -> Subject:
    settings = load_settings(
        {
            "output_url": f"s3://{bucket}/{PREFIX}",
            "s3_endpoint_url": seaweed.endpoint_url,
            "s3_access_key_id": ACCESS_KEY,
            "s3_secret_access_key": SECRET_KEY,
        }
    )
    client = seaweed.client()
    return Subject(
        store=S3Store(settings),
        outputs=lambda: [key.removeprefix(f"{PREFIX}/") for key in seaweed.outputs(bucket)],
        unfinished=lambda: seaweed.uploads(bucket),
        put_raw=lambda name, body: client.put_object(
            Bucket=bucket, Key=f"{PREFIX}/.exports/{name}", Body=body
        ),
        remove_output=lambda name: client.delete_object(Bucket=bucket, Key=f"{PREFIX}/{name}"),
        read=lambda name: client.get_object(Bucket=bucket, Key=f"{PREFIX}/{name}")["Body"].read(),
        links=True,
    )


@pytest.fixture(params=["local", "s3"])
async def subject(request, tmp_path):
    if request.param == "local":
        made = local_subject(tmp_path / "exports")
    else:
        seaweed = request.getfixturevalue("seaweed")
        made = s3_subject(seaweed, request.getfixturevalue("bucket"))
    await made.store.prepare()
    yield made
    await made.store.close()


def download(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=10) as response:  # noqa: S310 - our test server
        return bytes(response.read())


async def write(staged, data: bytes) -> None:
    # Writers run in threads; the S3 store's write blocks while a full part uploads.
    await asyncio.to_thread(staged.write, data)


class TestStaging:
    async def test_output_appears_only_on_commit(self, subject):
        """Until commit the output is not visible; after, it holds every byte, hashed."""
        async with subject.store.stage("inv-1", OutputType.of(ExportFormat.CSV)) as staged:
            await write(staged, b"a,b\r\n")
            assert subject.outputs() == []
            await staged.commit()
        assert subject.outputs() == ["inv-1.csv"]
        assert staged.name == "inv-1.csv"
        assert staged.bytes_written == 5
        assert staged.sha256 == hashlib.sha256(b"a,b\r\n").hexdigest()
        assert staged.uri.endswith("/inv-1.csv")
        assert subject.unfinished() == []

    async def test_large_output_is_whole(self, subject):
        """An output of several parts is stored whole, every byte in order, with writes
        that straddle parts and one larger than a part (part buffers are reused)."""
        pieces = [bytes([i]) * (1024 * 1024 + i) for i in range(20)]  # ~20 MB, three parts
        pieces.insert(7, bytes(range(256)) * (PART_BYTES // 256 + 1001))
        async with subject.store.stage("big", OutputType.of(ExportFormat.CSV)) as staged:
            for piece in pieces:
                await write(staged, piece)
            await staged.commit()
        assert staged.bytes_written == sum(map(len, pieces)) > 2 * PART_BYTES
        assert staged.sha256 == hashlib.sha256(b"".join(pieces)).hexdigest()
        assert subject.outputs() == ["big.csv"]
        assert subject.read("big.csv") == b"".join(pieces)
        assert subject.unfinished() == []

    async def test_leaving_without_commit_leaves_nothing(self, subject):
        """An output abandoned after more than a part was written leaves no object or file
        and nothing half-made, even with parts still uploading when it is left (a part the
        store took after the abort brought the upload back, about once in ten)."""
        for attempt in range(6):
            name = f"abandoned-{attempt}"
            async with subject.store.stage(name, OutputType.of(ExportFormat.CSV)) as staged:
                for _ in range(10):
                    await write(staged, b"x" * 1024 * 1024)
                if attempt == 0:
                    assert subject.unfinished() != []  # it was streaming out
            assert subject.outputs() == []
            assert subject.unfinished() == []

    async def test_links_where_the_store_gives_them(self, subject):
        """The object store's link downloads the output; the directory gives none."""
        async with subject.store.stage("linked", OutputType.of(ExportFormat.PDF)) as staged:
            await write(staged, b"%PDF-1.4 ...")
            await staged.commit()
        link = await subject.store.download_link("linked.pdf")
        if not subject.links:
            assert link is None
            return
        assert await asyncio.to_thread(download, link.url) == b"%PDF-1.4 ..."


class TestManifest:
    async def test_round_trip_and_missing_output(self, subject):
        """A manifest is found while its output exists, and ignored once it is removed."""
        async with subject.store.stage("inv-4", OutputType.of(ExportFormat.CSV)) as staged:
            await write(staged, b"x")
            await staged.commit()
        await subject.store.save_manifest(
            Manifest("inv-4", "f" * 64, "inv-4.csv", {"export_id": "inv-4"})
        )
        found = await subject.store.manifest("inv-4")
        assert found is not None
        assert found.fingerprint == "f" * 64
        assert found.result == {"export_id": "inv-4"}
        subject.remove_output("inv-4.csv")
        assert await subject.store.manifest("inv-4") is None

    async def test_a_new_output_replaces_the_manifest_of_a_removed_one(self, subject):
        """After an output was removed by hand, the export made again records its own."""
        for fingerprint in ("a" * 64, "b" * 64):
            async with subject.store.stage("redo", OutputType.of(ExportFormat.CSV)) as staged:
                await write(staged, b"x")
                await staged.commit()
            await subject.store.save_manifest(Manifest("redo", fingerprint, "redo.csv", {}))
            if fingerprint == "a" * 64:
                subject.remove_output("redo.csv")
        found = await subject.store.manifest("redo")
        assert found is not None
        assert found.fingerprint == "b" * 64

    async def test_unreadable_manifest_means_redo(self, subject):
        """A corrupt manifest does not stop the export: it is made again."""
        subject.put_raw("inv-5.manifest.json", b"{broken")
        assert await subject.store.manifest("inv-5") is None


class TestClaims:
    async def test_an_attempt_that_ends_leaves_no_count(self, subject):
        """Attempts that end (whatever their outcome) are not counted as deaths."""
        for _ in range(2):
            async with subject.store.claim("calm") as claim:
                assert claim.earlier_attempts == 0


async def test_an_s3_output_is_created_only_if_absent(seaweed, bucket):
    """Two attempts at one output in the bucket: the second to commit is told the output
    was taken, and its upload is aborted, so one object and no unfinished upload remain."""
    subject = s3_subject(seaweed, bucket)
    await subject.store.prepare()
    try:
        first = subject.store.stage("once", OutputType.of(ExportFormat.CSV))
        second = subject.store.stage("once", OutputType.of(ExportFormat.CSV))
        async with first, second:
            for staged in (first, second):
                await write(staged, b"y" * (PART_BYTES + 10))
            await first.commit()
            with pytest.raises(OutputTaken):
                await second.commit()
        assert subject.outputs() == ["once.csv"]
        assert subject.unfinished() == []
    finally:
        await subject.store.close()


async def test_s3_claims_count_attempts_that_never_ended(seaweed, bucket):
    """An attempt whose process died (never ended) is counted by the next, from the bucket."""
    subject = s3_subject(seaweed, bucket)
    await subject.store.prepare()
    try:
        for _ in range(2):
            await subject.store.claim("dies").__aenter__()  # and never leaves: a death
        async with subject.store.claim("dies") as claim:
            assert claim.earlier_attempts == 2
        async with subject.store.claim("dies") as claim:
            assert claim.earlier_attempts == 0
    finally:
        await subject.store.close()
