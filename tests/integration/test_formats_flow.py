"""JSON Lines, workbooks, Parquet and gzip end to end: request in, file out (in the
directory and in the bucket), result and metrics, replay and conflict, bad records."""

from __future__ import annotations

import gzip
import hashlib
import io

import duckdb
import openpyxl
import orjson
import pyarrow.parquet as pq
import pytest

from consumer.events import RESULT_SCHEMA, validator
from tests.integration.conftest import S3_PREFIX as PREFIX
from tests.integration.harness import metric_value, output_of, scrape

ROWS = [
    {"id": 1, "name": 'Zoë, "the" first', "amount": 12.5, "customer": {"city": "Paris"}},
    {"id": 2, "name": "=cmd()", "amount": -3},
    {"id": 3, "name": None, "extra": True},
]
COLUMNS = ["id", "name", "amount", {"field": "customer.city", "label": "City"}]
JSONL = (
    b'{"id":1,"name":"Zo\xc3\xab, \\"the\\" first","amount":12.5,"City":"Paris"}\n'
    b'{"id":2,"name":"=cmd()","amount":-3,"City":null}\n'
    b'{"id":3,"name":null,"amount":null,"City":null}\n'
)


def read_back(fmt: str, data: bytes) -> list[list[object]]:
    """The rows as the format's readers see them (headings aside)."""
    if fmt == "jsonl":
        return [list(orjson.loads(line).values()) for line in data.splitlines()]
    if fmt == "xlsx":
        sheet = openpyxl.load_workbook(io.BytesIO(data)).active
        return [[c.value for c in row] for row in sheet.iter_rows(min_row=2)]
    arrow_table = pq.read_table(io.BytesIO(data))
    rows = duckdb.execute("select * from arrow_table").fetchall()
    assert [list(r) for r in rows] == [list(r.values()) for r in arrow_table.to_pylist()]
    return [list(r) for r in rows]


EXPECTED = {
    "jsonl": [
        [1, 'Zoë, "the" first', 12.5, "Paris"],
        [2, "=cmd()", -3, None],
        [3, None, None, None],
    ],
    "xlsx": [
        [1, 'Zoë, "the" first', 12.5, "Paris"],
        [2, "=cmd()", -3, None],
        [3, None, None, None],
    ],
    "parquet": [
        [1, 'Zoë, "the" first', 12.5, "Paris"],
        [2, "=cmd()", -3.0, None],
        [3, None, None, None],
    ],
}


class TestEveryFormat:
    @pytest.mark.parametrize("fmt", ["jsonl", "xlsx", "parquet"])
    async def test_file_result_metrics_replay_and_conflict(self, harness, fmt):
        """The file is `{id}.{format}` and reads back as the records; the result counts
        and hashes it; a replay is answered from it; another request under its id is a
        conflict; the metrics count it under its format."""
        start, end = await harness.write_batches([ROWS[:2], ROWS[2]])
        body = harness.request(f"out-{fmt}", start, end, format=fmt, columns=COLUMNS)
        async with harness.service() as service:
            await harness.send_request(body)
            result = await harness.result(f"out-{fmt}")
            assert result["status"] == "completed", result
            path = output_of(result)
            data = path.read_bytes()
            assert path.name == f"out-{fmt}.{fmt}"
            assert read_back(fmt, data) == EXPECTED[fmt]
            assert result["records"] == 3
            assert result["format"] == fmt
            assert result["bytes"] == len(data)
            assert result["output"]["sha256"] == hashlib.sha256(data).hexdigest()
            assert list(validator(RESULT_SCHEMA).iter_errors(result)) == []
            await harness.send_request(body)
            replay = await harness.result(f"out-{fmt}", nth=2)
            assert replay["replayed"] is True
            assert replay["output"] == result["output"]
            await harness.send_request(body | {"columns": ["id"]})
            conflict = await harness.result(f"out-{fmt}", nth=3)
            assert conflict["status"] == "failed"
            assert conflict["error"]["reason"] == "conflict"
            _, text = scrape(service.metrics_port)
            assert metric_value(text, "export_requests_total", format=fmt, status="completed") == 2
        if fmt == "jsonl":
            assert data == JSONL

    @pytest.mark.parametrize("fmt", ["csv", "jsonl"])
    async def test_gzip(self, harness, fmt):
        """`compression: gzip` writes `{id}.{format}.gz`: the plain file, gzipped; the
        result's bytes and sha256 are the compressed file's."""
        start, end = await harness.write_batches([ROWS[:2], ROWS[2]])
        async with harness.service():
            plain = harness.request(f"plain-{fmt}", start, end, format=fmt, columns=COLUMNS)
            packed = plain | {"export_id": f"gz-{fmt}", "options": {"compression": "gzip"}}
            await harness.send_request(plain)
            await harness.send_request(packed)
            plain_result = await harness.result(f"plain-{fmt}")
            result = await harness.result(f"gz-{fmt}")
        path = output_of(result)
        assert path.name == f"gz-{fmt}.{fmt}.gz"
        data = path.read_bytes()
        assert gzip.decompress(data) == output_of(plain_result).read_bytes()
        assert result["bytes"] == len(data)
        assert result["output"]["sha256"] == hashlib.sha256(data).hexdigest()

    async def test_parquet_misfit_fails_at_its_offset_or_is_skipped(self, harness):
        """A value that does not fit its column is a bad record at its offset."""
        start, end = await harness.write_batches([{"n": 1}, {"n": "two"}, {"n": 3}])
        async with harness.service():
            strict = harness.request("pq-strict", start, end, format="parquet", columns=["n"])
            lenient = strict | {"export_id": "pq-lenient", "options": {"max_bad_records": 1}}
            await harness.send_request(strict)
            await harness.send_request(lenient)
            failed = await harness.result("pq-strict")
            skipped = await harness.result("pq-lenient")
        assert failed["status"] == "failed"
        assert failed["error"]["reason"] == "bad_record"
        assert failed["error"]["offset"] == start + 1
        assert "column 'n'" in failed["error"]["message"]
        assert sorted(p.name for p in harness.output_dir.iterdir() if "strict" in p.name) == []
        assert skipped["status"] == "completed"
        assert (skipped["records"], skipped["skipped"]) == (2, 1)
        assert read_back("parquet", output_of(skipped).read_bytes()) == [[1], [3]]


class TestEveryFormatInTheBucket:
    @pytest.mark.parametrize(
        "case",
        [
            ("jsonl", {}, "b.jsonl", "application/jsonl; charset=utf-8"),
            (
                "xlsx",
                {},
                "b.xlsx",
                "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
            ),
            ("parquet", {}, "b.parquet", "application/vnd.apache.parquet"),
            ("csv", {"compression": "gzip"}, "b.csv.gz", "application/gzip"),
        ],
    )
    async def test_object_and_its_type(self, harness, seaweed, bucket, s3, case):
        """Each format is the object `{prefix}/{id}.{ext}` with its media type."""
        fmt, options, name, media_type = case
        start, end = await harness.write_batches([ROWS])
        async with harness.service(**s3):
            body = harness.request("b", start, end, format=fmt, columns=COLUMNS, options=options)
            await harness.send_request(body)
            result = await harness.result("b")
        assert result["status"] == "completed", result
        assert result["output"]["uri"] == f"s3://{bucket}/{PREFIX}/{name}"
        data = seaweed.read(bucket, f"{PREFIX}/{name}")
        assert result["output"]["sha256"] == hashlib.sha256(data).hexdigest()
        head = seaweed.client().head_object(Bucket=bucket, Key=f"{PREFIX}/{name}")
        assert head["ContentType"] == media_type
        if fmt in EXPECTED:
            assert read_back(fmt, data) == EXPECTED[fmt]
        else:
            assert gzip.decompress(data).startswith(b"id,name,amount,City\r\n")
        assert seaweed.uploads(bucket) == []
