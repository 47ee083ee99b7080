"""JSON Lines, Parquet, workbooks and gzip, written by lanes (worker processes) as an
export writes them, and read back the way their users read them."""

from __future__ import annotations

import gzip
import io
import random
import subprocess
from datetime import datetime
from typing import Any

import duckdb
import openpyxl
import orjson
import pyarrow.parquet as pq
import pypdf
import pytest

from consumer.errors import BadRecord
from consumer.lanes import SEND_BYTES, LanePool, LaneWriter, RawMessage
from consumer.runner_core import Tally
from consumer.structs import Column, ColumnType, Compression, ExportFormat, ExportOptions
from consumer.writers.files import FileInfo, FileSpec

INFO = FileInfo(export_id="inv-9", title="Invoices, November", source='{"topic":"t"}')


def write(
    pool: LanePool,
    fmt: ExportFormat,
    columns: list[str | Column],
    messages: list[bytes],
    *,
    options: ExportOptions | None = None,
    max_bad: int = 0,
    tally: Tally | None = None,
) -> bytes:
    sink, tally = io.BytesIO(), tally if tally is not None else Tally()
    spec = FileSpec.of(fmt, columns, options, INFO)
    writer = LaneWriter(pool, spec, (max_bad, 1 << 20))
    try:
        writer.begin(sink, tally)
        raw = [RawMessage(100 + n, m) for n, m in enumerate(messages)]
        for start in range(0, len(raw), 3):
            writer.write_messages(raw[start : start + 3], tally)
        writer.finish(tally)
    finally:
        writer.close()
    return sink.getvalue()


AWKWARD = (
    b'[{"id": 1, "name": "Zo\\u00eb \\"q\\"\\n", "amount": 1E5, "big": 18446744073709551616,'
    b' "meta": {"x": [1.50, null]}, "flag": true},'
    b' {"id": -0, "name": "=cmd()", "amount": 0.10000000000000000001}]'
)


class TestJsonl:
    def test_lines_hold_the_values_as_written(self, pool):
        """Labels are the keys in column order, numbers keep their text, strings are
        re-escaped, nested values are JSON, missing is null."""
        columns: list[str | Column] = [
            Column("name", "Name"),
            "id",
            "amount",
            "big",
            "meta",
            "flag",
            "meta.x",
        ]
        out = write(pool, ExportFormat.JSONL, columns, [AWKWARD])
        assert out == (
            b'{"Name":"Zo\xc3\xab \\"q\\"\\n","id":1,"amount":1E5,"big":18446744073709551616,'
            b'"meta":{"x":[1.50,null]},"flag":true,"meta.x":[1.50,null]}\n'
            b'{"Name":"=cmd()","id":-0,"amount":0.10000000000000000001,"big":null,'
            b'"meta":null,"flag":null,"meta.x":null}\n'
        )

    def test_many_lanes_keep_the_order(self, pool):
        messages = [orjson.dumps([{"n": i * 10 + j} for j in range(10)]) for i in range(40)]
        out = write(pool, ExportFormat.JSONL, ["n"], messages)
        assert [orjson.loads(line)["n"] for line in out.splitlines()] == list(range(400))

    def test_bad_records_are_skipped_by_the_rules(self, pool):
        tally = Tally()
        out = write(
            pool, ExportFormat.JSONL, ["n"], [b'[{"n": 1}, 7]', b"{"], max_bad=2, tally=tally
        )
        assert out == b'{"n":1}\n'
        assert tally.skipped == 2


class TestGzip:
    @pytest.mark.parametrize("fmt", [ExportFormat.CSV, ExportFormat.JSONL])
    def test_gzip_is_the_plain_file_compressed(self, pool, fmt):
        """Members from every lane make one gzip file of exactly the plain bytes."""
        messages = [orjson.dumps([{"n": i, "s": "x" * (i % 7)}] * 50) for i in range(60)]
        plain = write(pool, fmt, ["n", "s"], messages)
        gz = write(
            pool, fmt, ["n", "s"], messages, options=ExportOptions(compression=Compression.GZIP)
        )
        assert gz[:2] == b"\x1f\x8b"
        assert gzip.decompress(gz) == plain
        assert len(gz) < len(plain) / 3


class TestParquet:
    def read(self, data: bytes, tmp_path) -> tuple[Any, list[dict[str, Any]]]:
        path = tmp_path / "out.parquet"
        path.write_bytes(data)
        table = pq.read_table(path)
        rows = duckdb.execute("select * from read_parquet(?)", [str(path)]).fetchall()
        assert [tuple(r.values()) for r in table.to_pylist()] == [tuple(r) for r in rows]
        return table, table.to_pylist()

    def test_types_from_first_values_and_declared(self, pool, tmp_path):
        columns: list[str | Column] = [
            "id",
            Column("amount", "Amount"),
            "name",
            "ok",
            "meta",
            Column("at", "At", ColumnType.TIMESTAMP),
            Column("code", "Code", ColumnType.STRING),
            "empty",
        ]
        messages = [
            (
                b'[{"id": 1, "amount": 2.5, "name": "a", "ok": true, "meta": {"k": 1.50},'
                b' "at": "2026-11-01T01:00:00+01:00", "code": "007"},'
                b' {"id": 2, "amount": 3, "name": null, "ok": false, "meta": [1],'
                b' "at": "2026-11-01T00:00:00.5Z"}]'
            )
        ]
        data = write(pool, ExportFormat.PARQUET, columns, messages)
        table, rows = self.read(data, tmp_path)
        types = {f.name: str(f.type) for f in table.schema}
        assert types == {
            "id": "int64",
            "Amount": "double",
            "name": "string",
            "ok": "bool",
            "meta": "string",
            "At": "timestamp[us, tz=UTC]",
            "Code": "string",
            "empty": "string",
        }
        assert rows[0]["id"] == 1
        assert rows[1]["Amount"] == 3.0
        assert rows[0]["meta"] == '{"k":1.50}'
        assert rows[1]["meta"] == "[1]"
        assert rows[0]["At"].isoformat() == "2026-11-01T00:00:00+00:00"
        assert rows[1]["At"].isoformat() == "2026-11-01T00:00:00.500000+00:00"
        metadata = pq.read_metadata(tmp_path / "out.parquet").metadata
        assert metadata[b"export_id"] == b"inv-9"
        assert metadata[b"title"] == b"Invoices, November"
        assert metadata[b"source"] == b'{"topic":"t"}'

    def test_a_misfit_is_a_bad_record_at_its_offset(self, pool, tmp_path):
        """An int column meeting a string: skipped within max_bad_records, else the
        export fails naming the offset and the column."""
        messages = [b'{"n": 1}', b'[{"n": 2}, {"n": "two"}]', b'{"n": 2.5}', b'{"n": 3}']
        tally = Tally()
        data = write(pool, ExportFormat.PARQUET, ["n"], messages, max_bad=2, tally=tally)
        assert [r["n"] for r in self.read(data, tmp_path)[1]] == [1, 2, 3]
        assert (tally.records, tally.skipped) == (3, 2)
        with pytest.raises(
            BadRecord, match=r"offset 101: column 'n': \"two\" does not fit an? int64"
        ):
            write(pool, ExportFormat.PARQUET, ["n"], messages)

    def test_many_row_groups(self, pool, tmp_path):
        messages = [orjson.dumps([{"n": i * 1000 + j} for j in range(1000)]) for i in range(140)]
        data = write(pool, ExportFormat.PARQUET, ["n"], messages)
        (tmp_path / "out.parquet").write_bytes(data)
        meta = pq.read_metadata(tmp_path / "out.parquet")
        assert meta.num_row_groups == 5  # 33,000 each (a group closes past 32,768), then 8,000
        assert pq.read_table(tmp_path / "out.parquet")["n"].to_pylist() == list(range(140_000))


class TestXlsx:
    def read(self, data: bytes, tmp_path):
        path = tmp_path / "out.xlsx"
        path.write_bytes(data)
        return openpyxl.load_workbook(path)

    def test_cells_are_typed_and_strings_stay_text(self, pool, tmp_path):
        columns: list[str | Column] = [
            "id",
            "name",
            "amount",
            "big",
            "meta",
            "flag",
            Column("at", "When", ColumnType.TIMESTAMP),
            "day",
        ]
        messages = [
            AWKWARD,
            (
                b'{"id": 9007199254740993, "name": "=HYPERLINK(\\"http://x\\")", "amount": 12.5,'
                b' "big": 1234567890123456, "at": "2026-11-01T01:30:00+01:00", "day": "2026-11-01"}'
            ),
        ]
        book = self.read(write(pool, ExportFormat.XLSX, columns, messages), tmp_path)
        sheet = book.active
        rows = [[(c.value, c.data_type) for c in row] for row in sheet.iter_rows()]
        assert [v for v, _ in rows[0]] == [
            "id",
            "name",
            "amount",
            "big",
            "meta",
            "flag",
            "When",
            "day",
        ]
        assert all(sheet.cell(1, c).font.b for c in range(1, 9))
        assert sheet.freeze_panes == "A2"
        assert rows[1][0] == (1, "n")
        assert rows[1][1] == ('Zoë "q"\n', "s")
        assert rows[1][2] == (100000, "n")
        assert rows[1][3] == ("18446744073709551616", "s")  # past 2^53: text, not rounded
        assert rows[1][4] == ('{"x":[1.50,null]}', "s")
        assert rows[1][5] == (True, "b")
        assert rows[2][1] == ("=cmd()", "s")
        assert rows[2][2] == ("0.10000000000000000001", "s")  # 20 significant digits
        assert rows[3][0] == ("9007199254740993", "s")
        assert rows[3][1] == ('=HYPERLINK("http://x")', "s")
        assert rows[3][3] == ("1234567890123456", "s")
        assert rows[3][6] == (datetime(2026, 11, 1, 0, 30, tzinfo=None), "d")  # noqa: DTZ001 - a cell has no zone
        assert rows[3][7] == ("2026-11-01", "s")  # no type: a date stays its text
        assert book.properties.title == "Invoices, November"
        assert sheet.column_dimensions["B"].width > sheet.column_dimensions["A"].width

    def test_a_string_past_a_cell_is_a_bad_record(self, pool, tmp_path):
        long = orjson.dumps({"s": "x" * 40_000})
        tally = Tally()
        data = write(pool, ExportFormat.XLSX, ["s"], [b'{"s": "a"}', long], max_bad=1, tally=tally)
        assert [r[0].value for r in self.read(data, tmp_path).active.iter_rows()] == ["s", "a"]
        assert tally.skipped == 1
        with pytest.raises(BadRecord, match="offset 101: column 's' holds a string longer"):
            write(pool, ExportFormat.XLSX, ["s"], [b'{"s": "a"}', long])


class TestXlsxInLibreOffice:
    def test_libreoffice_opens_and_renders_the_workbook(self, pool, tmp_path):
        """LibreOffice (headless) opens the workbook and prints its cells: strings that look
        like formulas as their text, numbers, the heading; the page renders to an image."""
        columns: list[str | Column] = ["id", "name", "amount"]
        messages = [
            (
                b'[{"id": 1, "name": "=HYPERLINK(\\"http://x\\",\\"click\\")", "amount": 12.5},'
                b' {"id": 2, "name": "Zo\\u00eb", "amount": 18446744073709551616}]'
            )
        ]
        book = tmp_path / "book.xlsx"
        book.write_bytes(write(pool, ExportFormat.XLSX, columns, messages))
        profile = (tmp_path / "lo-profile").as_uri()
        subprocess.run(
            ["soffice", f"-env:UserInstallation={profile}", "--headless", "--convert-to", "pdf",
             "--outdir", str(tmp_path), str(book)],
            check=True, capture_output=True, timeout=120,
        )  # fmt: skip
        text = pypdf.PdfReader(tmp_path / "book.pdf").pages[0].extract_text()
        assert '=HYPERLINK("http://x","click")' in text  # text, never evaluated to "click"
        assert "Zoë" in text
        assert "12.5" in text
        assert "18446744073709551616" in text  # text: not 1.84467E+19
        assert "amount" in text
        subprocess.run(
            ["pdftoppm", "-png", "-r", "40", "-f", "1", "-l", "1", str(tmp_path / "book.pdf"),
             str(tmp_path / "page")],
            check=True, timeout=60,
        )  # fmt: skip
        image = next(tmp_path.glob("page*.png")).read_bytes()
        assert image.startswith(b"\x89PNG")


def test_a_large_workbook_reaches_the_service_in_pieces(pool, tmp_path):
    """A workbook's package (written all at the end) passes the lane's send size: it
    arrives whole and in order, every row read back."""
    rng = random.Random(5)  # noqa: S311 - test data
    rows = [{"n": i, "s": rng.randbytes(1500).hex()} for i in range(6000)]
    messages = [orjson.dumps(rows[i : i + 200]) for i in range(0, len(rows), 200)]
    data = write(pool, ExportFormat.XLSX, ["n", "s"], messages)
    assert len(data) > 2 * SEND_BYTES
    sheet = openpyxl.load_workbook(io.BytesIO(data), read_only=True).active
    read = [(r[0].value, r[1].value) for r in sheet.iter_rows(min_row=2)]
    assert read == [(r["n"], r["s"]) for r in rows]


def test_an_empty_export_is_a_valid_file_of_each_format(pool, tmp_path):
    """No records: a Parquet file with its columns and no rows, a workbook with its
    heading, an empty JSON Lines file."""
    data = write(pool, ExportFormat.PARQUET, ["a", "b"], [])
    table = pq.read_table(io.BytesIO(data))
    assert (table.num_rows, table.column_names) == (0, ["a", "b"])
    data = write(pool, ExportFormat.XLSX, ["a", "b"], [])
    sheet = openpyxl.load_workbook(io.BytesIO(data)).active
    assert [[c.value for c in row] for row in sheet.iter_rows()] == [["a", "b"]]
    assert write(pool, ExportFormat.JSONL, ["a"], []) == b""
