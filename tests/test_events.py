"""Request validation, dead-letter detection, batch decoding and the result's JSON."""

from __future__ import annotations

import copy
import csv
import io
from typing import Any

import orjson
import pytest

from consumer.batches import decode_batch
from consumer.errors import FailureReason, InvalidRequest, PoisonMessage
from consumer.events import (
    RESULT_SCHEMA,
    decode_request,
    encode_result,
    parse_envelope,
    utc_timestamp,
    validator,
)
from consumer.json_text import JsonNumber
from consumer.runner import failed_result
from consumer.structs import (
    Column,
    ColumnType,
    ExportFormat,
    ExportRequest,
    ExportResult,
    OutputFile,
    PartitionRange,
    ResultStatus,
    SourceRange,
    SourceWindow,
)
from consumer.writers.cells import cell_text, escape_formula
from consumer.writers.csv import CsvWriter

VALID: dict[str, Any] = {
    "export_id": "inv-2026-11-0001",
    "format": "csv",
    "columns": ["id", "customer", "amount"],
    "source": {"topic": "export.records", "partition": 0, "start_offset": 0,
               "end_offset": 1000, "key": "inv-2026-11-0001"},
    "requested_by": "alice",
    "title": "Invoices, November",
    "options": {"delimiter": ",", "header": True, "bom": False, "escape_formulas": True,
                "rows_per_page": 50, "orientation": "auto", "max_bad_records": 0},
}  # fmt: skip


def with_change(path: str, value, *, delete: bool = False) -> dict[str, Any]:
    body: dict[str, Any] = copy.deepcopy(VALID)
    *parents, last = path.split(".")
    target: Any = body
    for part in parents:
        target = target[part]
    if delete:
        del target[last]
    else:
        target[last] = value
    return body


class TestDecodeRequest:
    def test_contract_example_is_valid(self):
        """The contract's example request decodes with every field."""
        request = decode_request(VALID)
        assert request.export_id == "inv-2026-11-0001"
        assert request.format is ExportFormat.CSV
        assert request.fields == ("id", "customer", "amount")
        assert request.labels == ("id", "customer", "amount")
        assert request.source.key == "inv-2026-11-0001"
        assert request.options.rows_per_page == 50

    def test_optional_fields_take_defaults(self):
        """Without options the contract's defaults apply."""
        body = {k: VALID[k] for k in ("export_id", "format", "columns", "source")}
        request = decode_request(body)
        assert request.options.delimiter == ","
        assert request.options.header is True
        assert request.options.escape_formulas is True
        assert request.options.max_bad_records == 0
        assert request.title is None

    @pytest.mark.parametrize(
        ("path", "value", "delete", "field"),
        [
            ("format", None, True, "format"),
            ("format", "docx", False, "format"),
            ("columns", None, True, "columns"),
            ("columns", [], False, "columns"),
            ("columns", ["a", "a"], False, "columns[1]"),
            ("columns", ["a", {"field": "a", "label": "A"}], False, "columns[1]"),
            ("columns", [{"label": "A"}], False, "columns[0].field"),
            ("columns", [{"field": ""}], False, "columns[0].field"),
            ("columns", [{"field": "a", "type": "decimal"}], False, "columns[0].type"),
            ("columns", [{"field": "a", "label": 3}], False, "columns[0].label"),
            ("columns", [{"field": "a", "width": 3}], False, "columns[0]"),
            ("columns", ["a", ""], False, "columns[1]"),
            ("columns", ["a", 3], False, "columns[1]"),
            ("columns", [f"c{i}" for i in range(257)], False, "columns"),
            ("columns", "id", False, "columns"),
            ("source", None, True, "source"),
            ("source", "export.records", False, "source"),
            ("source.topic", None, True, "source.topic"),
            ("source.topic", "bad topic!", False, "source.topic"),
            ("source.partition", -1, False, "source.partition"),
            ("source.partition", "0", False, "source.partition"),
            ("source.start_offset", None, True, "source.start_offset"),
            ("source.start_offset", -5, False, "source.start_offset"),
            ("source.end_offset", 1.5, False, "source.end_offset"),
            ("source.key", 5, False, "source.key"),
            ("source.extra", 1, False, "source"),
            ("requested_by", 42, False, "requested_by"),
            ("title", ["x"], False, "title"),
            ("options", "fast", False, "options"),
            ("options.delimiter", ",,", False, "options.delimiter"),
            ("options.delimiter", '"', False, "options.delimiter"),
            ("options.delimiter", "\n", False, "options.delimiter"),
            ("options.header", "yes", False, "options.header"),
            ("options.bom", 1, False, "options.bom"),
            ("options.escape_formulas", None, False, "options.escape_formulas"),
            ("options.rows_per_page", 9, False, "options.rows_per_page"),
            ("options.rows_per_page", 201, False, "options.rows_per_page"),
            ("options.orientation", "sideways", False, "options.orientation"),
            ("options.max_bad_records", -1, False, "options.max_bad_records"),
            ("options.rows_per_pages", 20, False, "options"),
            ("surprise", True, False, "request"),
        ],
    )
    def test_each_rule_names_the_field(self, path, value, delete, field):
        """Every rule of the request section fails with a message that starts with the field."""
        with pytest.raises(InvalidRequest) as caught:
            decode_request(with_change(path, value, delete=delete))
        assert caught.value.reason is FailureReason.INVALID_REQUEST
        assert caught.value.message.startswith(f"{field}:"), caught.value.message

    def test_a_column_of_neither_form_says_what_it_may_be(self):
        """A column that is neither a name nor an object says which two forms it may take."""
        with pytest.raises(InvalidRequest) as caught:
            decode_request(with_change("columns", ["a", 3]))
        assert caught.value.message == "columns[1]: 3 is neither a field name nor a column object"

    def test_unknown_fields_are_named(self):
        """A typo in options is named, not silently ignored."""
        with pytest.raises(InvalidRequest, match="'rows_per_pages'"):
            decode_request(with_change("options.rows_per_pages", 20))

    def test_end_before_start(self):
        """A range that ends before it starts names source.end_offset."""
        body = with_change("source.end_offset", 3)
        body["source"]["start_offset"] = 5
        with pytest.raises(InvalidRequest, match=r"^source\.end_offset:"):
            decode_request(body)

    def test_column_objects_name_field_label_and_type(self):
        """A column object's label heads it and its type is kept; plain names head themselves."""
        columns = ["id", {"field": "customer.name", "label": "Customer", "type": "string"},
                   {"field": "amount"}]  # fmt: skip
        request = decode_request(with_change("columns", columns))
        assert request.columns == (
            Column("id", "id"),
            Column("customer.name", "Customer", ColumnType.STRING),
            Column("amount", "amount"),
        )

    def test_repeated_field_names_both_columns(self):
        """Two columns with one field are refused, naming both positions."""
        body = with_change("columns", ["id", "amount", {"field": "id", "label": "Again"}])
        with pytest.raises(InvalidRequest, match=r"^columns\[2\]: .*'id'.*columns\[0\]"):
            decode_request(body)

    @pytest.mark.parametrize("fmt", ["jsonl", "xlsx", "parquet"])
    def test_keyed_formats_need_distinct_labels(self, fmt):
        """A label is a key in these formats: two alike are refused, naming both columns;
        CSV and PDF headings may repeat."""
        columns = ["id", {"field": "amount", "label": "id"}]
        body = with_change("columns", columns) | {"format": fmt}
        with pytest.raises(
            InvalidRequest, match=rf"^columns\[1\]: label 'id' .*columns\[0\].*{fmt}"
        ):
            decode_request(body)
        assert decode_request(with_change("columns", columns)).labels == ("id", "id")

    @pytest.mark.parametrize("fmt", ["pdf", "xlsx", "parquet"])
    def test_gzip_is_for_text_formats_only(self, fmt):
        body = with_change("options.compression", "gzip") | {"format": fmt}
        with pytest.raises(
            InvalidRequest, match=rf"^options.compression: gzip applies to csv and jsonl, not {fmt}"
        ):
            decode_request(body)

    def test_gzip_changes_the_fingerprint_and_none_keeps_it(self):
        plain = decode_request(VALID)
        assert (
            decode_request(with_change("options.compression", "none")).fingerprint
            == plain.fingerprint
        )
        gz = decode_request(with_change("options.compression", "gzip"))
        assert gz.options.compression.value == "gzip"
        assert gz.fingerprint != plain.fingerprint

    def test_v1_request_keeps_its_fingerprint(self):
        """A v1 request's fingerprint is what it was before v2, so its stored output stays a
        replay across the upgrade; a column object that only repeats its name is the same."""
        pinned = "d144aca12d1d2d2f522821c157525f6a9021755f9d88fb154be1ce9f4684a0e8"
        assert decode_request(VALID).fingerprint == pinned
        plain_object = with_change("columns", ["id", {"field": "customer"}, "amount"])
        assert decode_request(plain_object).fingerprint == pinned
        labelled = with_change("columns", ["id", {"field": "customer", "label": "C"}, "amount"])
        assert decode_request(labelled).fingerprint != pinned

    def test_time_window_source(self):
        """A window names its topic, times (as instants too) and partitions, sorted."""
        window = {"topic": "t", "since": "2026-11-01T00:00:00Z",
                  "until": "2026-11-01T02:00:00+01:00",
                  "partitions": [3, 1], "key": "k"}  # fmt: skip
        source = decode_request(with_change("source", window)).source
        assert source == SourceWindow(
            topic="t",
            since="2026-11-01T00:00:00Z",
            until="2026-11-01T02:00:00+01:00",
            since_ms=1_793_491_200_000,
            until_ms=1_793_491_200_000 + 3_600_000,
            partitions=(1, 3),
            key="k",
        )

    @pytest.mark.parametrize(
        ("change", "field"),
        [
            ({"since": "yesterday"}, "source.since"),
            ({"since": "2026-11-01"}, "source.since"),
            ({"until": "2026-11-01T00:00:00"}, "source.until"),
            ({"until": "2026-11-01T00:00:00Z"}, "source.until"),
            ({"until": "2026-10-31T23:00:00Z"}, "source.until"),
            ({"partitions": []}, "source.partitions"),
            ({"partitions": [-1]}, "source.partitions[0]"),
            ({"partitions": "0"}, "source.partitions"),
            ({"partition": 0}, "source"),
        ],
    )
    def test_window_rules_name_the_field(self, change, field):
        """A bad time, an `until` not after `since` or an empty `partitions` names the field."""
        window = {"topic": "t", "since": "2026-11-01T00:00:00Z", "until": "2026-11-02T00:00:00Z"}
        with pytest.raises(InvalidRequest) as caught:
            decode_request(with_change("source", {**window, **change}))
        assert caught.value.message.startswith(f"{field}:"), caught.value.message

    def test_the_same_window_written_another_way_is_the_same_request(self):
        """Fingerprints compare instants: Z and +00:00 are one window; another until is not."""
        base = {"topic": "t", "since": "2026-11-01T00:00:00Z", "until": "2026-11-02T00:00:00Z"}
        other = {**base, "since": "2026-11-01T01:00:00+01:00"}
        later = {**base, "until": "2026-11-02T00:00:01Z"}
        fingerprint = decode_request(with_change("source", base)).fingerprint
        assert decode_request(with_change("source", other)).fingerprint == fingerprint
        assert decode_request(with_change("source", later)).fingerprint != fingerprint

    def test_fingerprint_tells_replays_from_conflicts(self):
        """Same shaping fields give the same fingerprint; requested_by does not count."""
        same = decode_request(with_change("requested_by", "bob")).fingerprint
        assert same == decode_request(VALID).fingerprint
        assert decode_request(with_change("columns", ["id"])).fingerprint != same
        assert decode_request(with_change("source.end_offset", 999)).fingerprint != same
        assert decode_request(with_change("options.bom", True)).fingerprint != same


class TestParseEnvelope:
    @pytest.mark.parametrize(
        ("value", "words"),
        [
            (None, "no value"),
            (b"\xff\xfe", "not JSON"),
            (b"[1]", "not an object"),
            (b'"inv"', "not an object"),
            (b"{}", "export_id"),
            (b'{"export_id": 7}', "export_id"),
            (b'{"export_id": "../etc/passwd"}', "export_id"),
            (b'{"export_id": ".hidden"}', "export_id"),
            (b'{"export_id": "a/b"}', "export_id"),
            (orjson.dumps({"export_id": "x" * 129}), "export_id"),
        ],
    )
    def test_unroutable_requests_are_poison(self, value, words):
        """Anything without a valid export_id is poison (dead-letter topic)."""
        with pytest.raises(PoisonMessage, match=words):
            parse_envelope(value)

    def test_valid_id_is_returned_even_if_the_rest_is_wrong(self):
        """A valid id is enough to answer with a failure event instead of a dead letter."""
        assert parse_envelope(b'{"export_id": "A.b-c_1", "format": 3}')[0] == "A.b-c_1"


class TestDecodeBatch:
    def test_object_and_array(self):
        """One object or an array of objects are records, numbers as their text."""
        assert decode_batch(b'{"a": 1}').records == [{"a": "1"}]
        records = decode_batch(b'[{"a": 1.50}, {"b": -0}]').records
        assert records == [{"a": "1.50"}, {"b": "-0"}]
        assert isinstance(records[0]["a"], JsonNumber)

    @pytest.mark.parametrize(
        ("value", "bad", "kept", "words"),
        [
            (b"{oops", 1, 0, "not JSON"),
            (None, 1, 0, "tombstone"),
            (b"42", 1, 0, "message is a JSON number, not an object or array"),
            (b'[{"a": 1}, 2, "x"]', 2, 1, "item 1"),
        ],
    )
    def test_bad_records_are_counted_and_described(self, value, bad, kept, words):
        """What is not a record object is counted as bad, with what was wrong."""
        batch = decode_batch(value)
        assert batch.bad == bad
        assert len(batch.records) == kept
        assert words in (batch.problem or "")


class TestResultJson:
    def test_completed_result_matches_the_schema_and_contract(self):
        """A completed result has the contract's fields and validates."""
        result = ExportResult(
            export_id="inv-1", status=ResultStatus.COMPLETED, finished_at=utc_timestamp(),
            duration_ms=183.24, format=ExportFormat.CSV,
            source=SourceRange("export.records", 0, 0, 1000, key="k"),
            ranges=(PartitionRange(0, 0, 1000),),
            records=1000, bytes=48213, output=OutputFile("file:///srv/exports/inv-1.csv", "a" * 64),
        )  # fmt: skip
        data = orjson.loads(encode_result(result))
        assert list(validator(RESULT_SCHEMA).iter_errors(data)) == []
        assert data["source"] == {"topic": "export.records", "partition": 0,
                                  "start_offset": 0, "end_offset": 1000,
                                  "ranges": [{"partition": 0, "start_offset": 0,
                                              "end_offset": 1000}]}  # fmt: skip
        assert data["duration_ms"] == 183.2
        assert data["finished_at"].endswith("Z")
        assert len(data["finished_at"]) == len("2026-11-28T16:00:00.000Z")

    def test_failure_result_carries_reason_message_offset(self):
        """A failure event has the error object and validates."""
        error = InvalidRequest("columns: is required")
        data = orjson.loads(
            encode_result(failed_result("x", error, fmt=None, source=None, duration_ms=0))
        )
        assert data["error"] == {"reason": "invalid_request", "message": "columns: is required"}
        assert "format" not in data
        assert list(validator(RESULT_SCHEMA).iter_errors(data)) == []


V1_EXAMPLES = [
    VALID,
    {k: v for k, v in VALID.items() if k in {"export_id", "format", "columns", "source"}},
    with_change("options", {"delimiter": ";", "bom": True, "escape_formulas": False}),
    with_change("format", "pdf"),
]
V1_RECORDS = [
    {"id": 1, "customer": 'Zoë, "the" first', "amount": 12.5},
    {"id": 2, "customer": "=cmd()", "amount": -3, "customer.x": 1},
    {"id": 3, "customer": {"name": "nested"}, "extra": True},
]


@pytest.mark.parametrize("body", V1_EXAMPLES)
def test_every_v1_request_validates_and_writes_the_same_bytes(body):
    """A v1 request (plain column names) is valid under the v2 schema, keeps its
    fingerprint when its columns are spelled as v2 objects naming only the field, and its
    CSV rows are the bytes v1 wrote (the rows pinned before v2 came, in
    tests/integration/test_export_flow.py, still pass; here the v1 and v2 spellings are
    held to each other and to the csv module's rows)."""
    v1 = decode_request(body)
    v2 = decode_request(body | {"columns": [{"field": c} for c in body["columns"]]})
    assert v2.fingerprint == v1.fingerprint
    assert v2.columns == v1.columns

    def written(request: ExportRequest) -> bytes:
        sink = io.BytesIO()
        writer = CsvWriter(request.columns, request.options)
        writer.begin(sink)
        writer.write_records(V1_RECORDS)
        return sink.getvalue()

    expected = io.StringIO()
    options = v1.options
    rows = [list(v1.fields)] + [[cell_text(r.get(c)) for c in v1.fields] for r in V1_RECORDS]
    if options.escape_formulas:
        rows = [[escape_formula(cell) for cell in row] for row in rows]
    csv.writer(expected, delimiter=options.delimiter, lineterminator="\r\n").writerows(rows)
    bom = "\ufeff".encode() if options.bom else b""
    assert written(v1) == written(v2) == bom + expected.getvalue().encode()
