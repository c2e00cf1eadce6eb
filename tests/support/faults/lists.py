"""Generated list files, and the records each must leave in its calling list.

A file is a pure function of (rows, variant): the test writes it, and
:func:`expected_records` says, without the product's parser, what the list must hold
after importing it. A variant changes every first name and custom field and adds
new keys, so that a re-import updates every record (a real MERGE) and adds some.
"""

from __future__ import annotations

import csv
import hashlib
import json
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

__all__ = [
    "HEADER",
    "MAPPING",
    "content_digest",
    "expected_records",
    "list_rows",
    "write_list",
]

HEADER = ["Account No", "First Name", "Mobile", "Plan", "Note"]
MAPPING = {"Account No": "account", "First Name": "first_name", "Mobile": "phone1"}
# About 100 bytes a row: 150,000 rows make a 15 MB file.
_NOTE = "n" * 56


def list_rows(rows: int, variant: int = 0) -> Iterator[list[str]]:
    """The data rows of the file (rows, variant): ``rows`` keys from ``variant * 1000``."""
    first = variant * 1000
    for i in range(first, first + rows):
        yield [
            f"M{i:07d}",
            f"Name{variant}-{i % 997}",
            f"212736{i % 10000:04d}",
            f"plan-{(i + variant) % 7}",
            f"{_NOTE}{variant}",
        ]


def write_list(path: Path, rows: int, variant: int = 0) -> Path:
    """Write the CSV file (rows, variant) at ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(HEADER)
        writer.writerows(list_rows(rows, variant))
    return path


def expected_records(rows: int, variant: int = 0) -> dict[str, tuple[Any, ...]]:
    """Key -> (account, first_name, phone1, custom fields) after importing the file."""
    return {
        account: (account, name, f"+1{mobile}", {"Plan": plan, "Note": note})
        for account, name, mobile, plan, note in list_rows(rows, variant)
    }


def content_digest(records: Iterable[tuple[str, tuple[Any, ...]]]) -> str:
    """SHA-256 of (key, account, first name, phone1, custom fields) rows, in key order."""
    digest = hashlib.sha256()
    for key, (account, name, phone, custom) in sorted(records):
        line = [key, account, name, phone, json.dumps(custom, sort_keys=True)]
        digest.update(json.dumps(line).encode())
        digest.update(b"\n")
    return digest.hexdigest()
