"""Every `export_id` the pattern allows names a file inside the output directory and a key
under the bucket prefix; the shapes it refuses are refused before any path is built."""

from __future__ import annotations

import posixpath

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from consumer.errors import PoisonMessage, WriteError
from consumer.events import EXPORT_ID_PATTERN, parse_envelope
from consumer.output_types import OutputType
from consumer.settings import load_settings
from consumer.storage.attempts import claim_path
from consumer.storage.local import LocalStore
from consumer.storage.s3 import S3Store
from consumer.structs import ExportFormat

PREFIX = "team/exports/"
# Python's `$` also matches before a final newline; the ids the service accepts are the
# pattern's full matches only.
ids = st.from_regex(EXPORT_ID_PATTERN, fullmatch=True).filter(EXPORT_ID_PATTERN.fullmatch)
awkward_ids = st.sampled_from(["a..b", "a-", "a.", "a...", "0--..--", "a" * 128, "A.b.c-d_e"])
REFUSED = [".hidden", "..", "../x", ".", "a/b", "a\\b", "-a", "_a", "a\n", "", "a" * 129]


@pytest.fixture(scope="module")
def local(tmp_path_factory):
    return LocalStore(tmp_path_factory.mktemp("out") / "exports")


@pytest.fixture(scope="module")
def s3():
    return S3Store(load_settings({"output_url": f"s3://bucket/{PREFIX}"}))


class TestAllowedIdsStayInside:
    @given(export_id=st.one_of(ids, awkward_ids))
    def test_local_paths_are_in_the_output_directory(self, local, export_id):
        """The output, manifest and claim of any allowed id are files directly in the
        output directory (`a..b` included: it is a name, not a step up)."""
        root = local.root.resolve()
        paths = [local.output_path(export_id, OutputType.of(fmt)) for fmt in ExportFormat]
        paths += [local._manifest_path(export_id), claim_path(local.root, export_id)]
        for path in paths:
            assert path.resolve().parent == root, path
            assert path.name not in {".", ".."}

    @given(export_id=st.one_of(ids, awkward_ids))
    def test_s3_keys_are_under_the_prefix(self, s3, export_id):
        """The output and record keys of any allowed id start with the prefix, and no
        `/`-separated segment of them is `.` or `..` that a client or proxy could fold."""
        keys = [s3._key(f"{export_id}.{fmt.value}") for fmt in ExportFormat]
        keys += [s3._meta_key(export_id, ".manifest.json"), s3._meta_key(export_id, ".attempts")]
        for key in keys:
            assert key.startswith(PREFIX), key
            assert posixpath.normpath(key) == key, key
            assert not {".", ".."} & set(key.split("/")), key


class TestRefusedIds:
    @pytest.mark.parametrize("export_id", REFUSED)
    def test_the_envelope_refuses_them(self, export_id):
        """A request whose id is `.`-leading, a path or too long is a dead letter."""
        with pytest.raises(PoisonMessage, match="export_id"):
            parse_envelope(orjson.dumps({"export_id": export_id}))

    @pytest.mark.parametrize("export_id", REFUSED)
    def test_the_stores_refuse_them_too(self, local, s3, export_id):
        """Should a bad id get past decoding, neither store builds a path or key from it."""
        with pytest.raises(WriteError):
            local.output_path(export_id, OutputType.of(ExportFormat.CSV))
        with pytest.raises(WriteError):
            s3._meta_key(export_id, ".manifest.json")
