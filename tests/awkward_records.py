"""Random records with awkward values: what the CSV formatters are held to the csv module on."""

from __future__ import annotations

import random

ALLOWED_DELIMITERS = [chr(c) for c in range(0x20, 0x7F) if chr(c) != '"'] + ["\t"]
"""Every delimiter the request schema allows in ASCII: printable characters but the
quote, and tab."""


def awkward_text(rng: random.Random) -> str:
    alphabet = ["a", "Z", "é", "✓", " ", ",", ";", "|", '"', "\r", "\n", "\x00", "1", "."]
    head = rng.choice(["", "", "=", "+", "-", "@", "\t", "\r", "'", " "])
    body = "".join(rng.choice(alphabet) for _ in range(rng.randrange(6)))
    return rng.choice([head + body, head + str(rng.randrange(-99, 99)), "-1.5e3", "", body])


def awkward_value(rng: random.Random, kind: str) -> object:
    if kind == "mixed":
        kind = rng.choice(["str", "int", "float", "bool", "nested", "null"])
    makers = {
        "str": lambda: awkward_text(rng),
        "int": lambda: rng.choice([0, -1, rng.randrange(-(10**6), 10**6), 10**20, -(2**63)]),
        "float": lambda: rng.choice(
            [0.0, -0.0, 1e-4, 9.99e-5, 1e16, rng.uniform(-1e3, 1e3), 10 ** rng.uniform(-12, 30)]
        ),
        "bool": lambda: rng.random() < 0.5,
        "nested": lambda: rng.choice([[1, "a,b"], {"k": None, "q": '"'}, []]),
        "null": lambda: None,
    }
    return makers[kind]()


ALL_KINDS = ("str", "int", "float", "bool", "nested", "mixed")


def awkward_batch(
    rng: random.Random, columns: tuple[str, ...], kinds_from: tuple[str, ...] = ALL_KINDS
) -> list[dict[str, object]]:
    """Columns of one kind (the fast paths), with nulls, missing keys or mixed kinds."""
    kinds = {c: rng.choice(kinds_from) for c in columns}
    nulls = {c: rng.choice([0.0, 0.0, 0.2]) for c in columns}
    missing = rng.random() < 0.2
    records = []
    for _ in range(rng.randrange(1, 40)):
        record = {}
        for column in columns:
            if missing and rng.random() < 0.1:
                continue
            null = rng.random() < nulls[column]
            record[column] = None if null else awkward_value(rng, kinds[column])
        records.append(record)
    return records
