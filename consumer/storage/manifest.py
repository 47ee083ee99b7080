"""The manifest: which request made an output, and the result to publish again on replay."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from consumer.events import decode_json, encode_json


@dataclass(frozen=True, slots=True)
class Manifest:
    """What the store knows about an export it completed."""

    export_id: str
    fingerprint: str
    """The request digest that made the output."""
    file_name: str
    result: dict[str, Any]
    """The completed result event as published, to publish again on replay."""


def encode_manifest(manifest: Manifest) -> bytes:
    return encode_json(
        {
            "export_id": manifest.export_id,
            "fingerprint": manifest.fingerprint,
            "file_name": manifest.file_name,
            "result": manifest.result,
        }
    )


def decode_manifest(body: bytes) -> Manifest:
    """Raises ValueError (or KeyError, TypeError) when the body is not a manifest."""
    data = decode_json(body)
    return Manifest(
        export_id=data["export_id"],
        fingerprint=data["fingerprint"],
        file_name=data["file_name"],
        result=data["result"],
    )
