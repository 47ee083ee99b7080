"""The local store's own ways: hidden staged files, write-backs, paths that stay inside the
output directory (what every store does is in tests/integration/test_stores.py)."""

from __future__ import annotations

import hashlib

import pytest

from consumer.errors import WriteError
from consumer.output_types import OutputType
from consumer.storage.local import WRITEBACK_BYTES, LocalStore, _export_id_of_part
from consumer.structs import ExportFormat


@pytest.fixture
async def store(tmp_path):
    out = LocalStore(tmp_path / "exports")
    await out.prepare()
    return out


class TestStagedFile:
    async def test_output_appears_only_on_commit(self, store):
        """Until commit the output name does not exist; after, it holds every byte."""
        async with store.stage("inv-1", OutputType.of(ExportFormat.CSV)) as staged:
            staged.write(b"a,b\r\n")
            assert not (store.root / "inv-1.csv").exists()
            assert staged.temp_path.name.startswith(".")
            await staged.commit()
        assert (store.root / "inv-1.csv").read_bytes() == b"a,b\r\n"
        assert staged.bytes_written == 5
        assert list(store.root.iterdir()) == [store.root / "inv-1.csv"]

    async def test_large_outputs_are_whole_and_hashed_through_the_writebacks(self, store):
        """Past the write-back size (written back while writing), every byte and the
        hash are the file's; a large staged file abandoned mid-way leaves nothing."""
        pieces = [bytes([i]) * (1024 * 1024 + i) for i in range(40)]  # ~40 MB, 2 write-backs
        async with store.stage("big", OutputType.of(ExportFormat.CSV)) as staged:
            for piece in pieces:
                staged.write(piece)
            await staged.commit()
        data = (store.root / "big.csv").read_bytes()
        assert data == b"".join(pieces)
        assert staged.sha256 == hashlib.sha256(data).hexdigest()
        assert len(data) > 2 * WRITEBACK_BYTES
        async with store.stage("abandoned", OutputType.of(ExportFormat.CSV)) as staged:
            for piece in pieces:
                staged.write(piece)
        assert sorted(p.name for p in store.root.iterdir()) == ["big.csv"]

    async def test_output_directory_gone_is_a_write_error(self, store):
        """When the output directory cannot take files, staging fails with `write_error`."""
        store.root.rmdir()
        store.root.write_bytes(b"not a directory")
        with pytest.raises(WriteError, match="cannot create"):
            store.stage("inv-3", OutputType.of(ExportFormat.CSV))


class TestPaths:
    @pytest.mark.parametrize("export_id", ["../x", "a/b", ".hidden", "", "/etc/passwd"])
    async def test_ids_cannot_leave_the_directory(self, store, export_id):
        """Ids that are not safe file names are refused before any file is made."""
        with pytest.raises(WriteError):
            store.stage(export_id, OutputType.of(ExportFormat.CSV))
        assert list(store.root.parent.iterdir()) == [store.root]


@pytest.mark.parametrize(
    ("name", "export_id"),
    [
        (".inv-1.csv.0a1b2c3d.part", "inv-1"),
        (".inv.2026.csv.gz.0a1b2c3d.part", "inv.2026"),  # dots in the id, two in the extension
        (".a.jsonl.gz.0a1b2c3d.part", "a"),
        (".a.xlsx.0a1b2c3d.part", "a"),
        (".a.parquet.0a1b2c3d.part", "a"),
        (".a.manifest.json.0a1b2c3d.part", "a"),
        (".a.docx.0a1b2c3d.part", None),
        ("a.csv", None),
    ],
)
def test_a_staged_file_names_its_export(name, export_id):
    """Start-up finds the export of every staged file, whatever its extension."""
    assert _export_id_of_part(name) == export_id
