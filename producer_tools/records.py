"""Realistic generated records: non-ASCII names, amounts, timestamps, awkward text."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from typing import Any

COLUMNS = ("id", "customer", "country", "amount", "currency", "created_at", "paid", "note")

NAMES = (
    "Zoë Ångström", "Łukasz Żółkiewski", "Çağla Öztürk", "José Núñez", "Ægir Þórsson",
    "Σοφία Παπαδοπούλου", "Дмитрий Иванов", "Jürgen Müller", "Siobhán Ó Briain", "Ana Đorđević",
    "François Lefèvre", "Nguyễn Thị Hà", "Ayşe Yılmaz", "Bjørn Ødegård", "Alice Smith",
)  # fmt: skip
COUNTRIES = ("DE", "TR", "GR", "PL", "ES", "IS", "FR", "NO", "IE", "RS", "VN", "GB", "UA")
NOTES = (
    "", "Paid in full", 'Customer said "thanks, see you"', "Split, 3 instalments",
    "Line one\nline two", '=HYPERLINK("http://example.invalid")', "-discount applied",
    "+1 555 0100", "@ops please check", "Ünïcödé ✓ — ok", "<b>bold?</b> & more",
)  # fmt: skip
EPOCH = datetime(2026, 1, 1, tzinfo=UTC)


def generate(count: int, *, seed: int = 7, start_id: int = 1) -> list[dict[str, Any]]:
    """`count` records, the same ones for the same seed."""
    rng = random.Random(seed + start_id)  # noqa: S311 - test data, not secrets
    return [
        {
            "id": start_id + i,
            "customer": rng.choice(NAMES),
            "country": rng.choice(COUNTRIES),
            "amount": round(rng.uniform(-500, 25_000), 2),
            "currency": "EUR",
            "created_at": (EPOCH + timedelta(seconds=rng.randrange(31_536_000)))
            .isoformat()
            .replace("+00:00", "Z"),
            "paid": rng.random() < 0.8,  # noqa: PLR2004 - share of paid invoices
            "note": rng.choice(NOTES),
        }
        for i in range(count)
    ]
