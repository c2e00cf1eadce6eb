"""The demo's drop folders: calling-list files and a Do-Not-Call file, generated.

The files are made from fixed seeds, so every machine gets the same content, and a
file that exists is left alone (the user may have edited it, and a changed file
would be imported again). They are small but realistic: named columns in a mapping,
two delimiters, UTF-8 names, phones in several formats, and a few rows that the
import rejects on purpose (a blank account, no valid phone, a repeated account).
"""

from __future__ import annotations

import csv
import io
import random
from pathlib import Path

from deployments.demo.centre import DNC_FILE, LISTS, RETENTION, SPRING_LEADS, DemoList

__all__ = [
    "RETENTION_COLUMNS",
    "SPRING_LEADS_COLUMNS",
    "dnc_folder",
    "list_folder",
    "write_demo_files",
]

SPRING_LEADS_COLUMNS = [
    "Account", "Phone", "Mobile", "First Name", "Last Name", "ZIP", "State", "Priority", "Segment",
]
RETENTION_COLUMNS = [
    "account", "phone1", "phone2", "first_name", "last_name", "zip", "state", "plan",
    "tenure_months",
]

_FIRST = ["Ana", "José", "Zoë", "Liam", "Maya", "Noah", "Chloé", "Omar", "Grace", "Ethan",
          "Sofía", "Lucas", "Aiko", "Ravi", "Emma", "Mateo", "Nadia", "Owen", "Priya", "Sam"]
_LAST = ["García", "Smith", "Nguyen", "O'Brien", "Müller", "Johnson", "Kowalski", "Brown",
         "Rossi", "Patel", "Lee", "Martin", "Dubois", "Wilson", "Kim", "Novak"]
# Area codes with their states; exchanges avoid N11 and 555.
_AREAS = [("212", "NY", "100"), ("646", "NY", "100"), ("718", "NY", "112"), ("617", "MA", "021"),
          ("312", "IL", "606"), ("305", "FL", "331"), ("404", "GA", "303"), ("512", "TX", "787"),
          ("415", "CA", "941"), ("213", "CA", "900"), ("206", "WA", "981"), ("503", "OR", "972")]
_SEGMENTS = ["web", "referral", "event", "partner"]
_PLANS = ["basic", "plus", "premium"]


def list_folder(home: Path) -> Path:
    """Where the demo's calling-list files are dropped: ``<home>/drop/lists``."""
    return home / "drop" / "lists"


def dnc_folder(home: Path) -> Path:
    """Where the demo's Do-Not-Call file is dropped: ``<home>/drop/dnc``."""
    return home / "drop" / "dnc"


def _phone(rng: random.Random, area: str) -> str:
    exchange = rng.randint(200, 999)
    while exchange % 100 == 11 or exchange == 555:
        exchange = rng.randint(200, 999)
    line = f"{rng.randint(0, 9999):04d}"
    digits = f"{area}{exchange}{line}"
    # The formats people actually send; all normalise to the same E.164 number.
    style = rng.randrange(5)
    if style == 0:
        return f"({area}) {exchange}-{line}"
    if style == 1:
        return f"{area}-{exchange}-{line}"
    if style == 2:
        return f"+1 {area} {exchange} {line}"
    if style == 3:
        return f"1{digits}"
    return digits


def _account(demo: DemoList, index: int) -> str:
    prefix = "SL" if demo is SPRING_LEADS else "RT"
    return f"{prefix}-{10001 + index}"


def _rows(demo: DemoList) -> list[list[str]]:
    rng = random.Random(demo.seed)
    rows: list[list[str]] = []
    for index in range(demo.rows):
        area, state, zip3 = rng.choice(_AREAS)
        first, last = rng.choice(_FIRST), rng.choice(_LAST)
        zip_code = f"{zip3}{rng.randint(0, 99):02d}"
        second = _phone(rng, area) if rng.random() < 0.6 else ""
        if demo is SPRING_LEADS:
            rows.append([
                _account(demo, index), _phone(rng, area), second, first, last, zip_code, state,
                str(rng.randint(1, 5)), rng.choice(_SEGMENTS),
            ])
        else:
            rows.append([
                _account(demo, index), _phone(rng, area), second, first, last, zip_code, state,
                rng.choice(_PLANS), str(rng.randint(1, 60)),
            ])
    # A few rows the import rejects, with reasons it counts: no key, no valid phone,
    # and an account already seen.
    rows[7][0] = ""
    rows[19][1], rows[19][2] = "12345", ""
    rows[31][0] = rows[30][0]
    return rows


def _csv_text(header: list[str], rows: list[list[str]], delimiter: str) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, delimiter=delimiter, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return buffer.getvalue()


def _dnc_rows() -> list[list[str]]:
    rng = random.Random(13)
    accounts = [_account(SPRING_LEADS, i) for i in rng.sample(range(40, SPRING_LEADS.rows), 12)]
    accounts += [_account(RETENTION, i) for i in rng.sample(range(40, RETENTION.rows), 8)]
    accounts += [f"XX-{90001 + i}" for i in range(10)]  # customers on no current list
    reasons = ["customer request", "legal", "complaint"]
    rows = [[account, rng.choice(reasons)] for account in accounts]
    rows.append([accounts[0], "customer request"])  # a duplicate the import counts
    rows.append(["", "no account given"])  # a blank key the import rejects
    return rows


def write_demo_files(home: Path) -> list[Path]:
    """Write the demo files that are missing under ``home``'s drop folders.

    Returns:
        The files written now (empty when all were there).
    """
    wanted: list[tuple[Path, str]] = []
    for demo, header in ((SPRING_LEADS, SPRING_LEADS_COLUMNS), (RETENTION, RETENTION_COLUMNS)):
        assert demo in LISTS
        wanted.append(
            (list_folder(home) / demo.file, _csv_text(header, _rows(demo), demo.delimiter))
        )
    wanted.append((dnc_folder(home) / DNC_FILE, _csv_text(["account", "reason"], _dnc_rows(), ",")))
    written = []
    for path, text in wanted:
        if path.exists():
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(f".{path.name}.part")
        partial.write_text(text, encoding="utf-8")
        partial.replace(path)  # a reader never sees half a file
        written.append(path)
    return written
