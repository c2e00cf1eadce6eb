"""Campaign results for the results tests (``tests/storage``, ``tests/flows``): a campaign
with a calling list and result rows seeded, and what an export left behind read back
(its files, its ``results_exports`` rows, the watermark). (This module holds no tests.)
"""

from __future__ import annotations

import csv
import gzip
import io
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from contact_center.storage.campaigns import ensure_campaign, get_campaign, link_list
from contact_center.storage.models import (
    CallAttempt,
    CallingList,
    ExportWatermark,
    ListRecord,
    ResultsExport,
)

CAMPAIGN = "Spring Sale"
#: The storage tests' fixed time: their result rows are written around it.
T0 = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)


def seed_list(
    engine: sa.Engine,
    records: Sequence[dict[str, Any]],
    *,
    campaign: str = CAMPAIGN,
    list_name: str = "Spring Leads",
) -> int:
    """A campaign linked to a calling list holding ``records``; returns the list's id."""
    ensure_campaign(engine, campaign)
    link_list(engine, campaign, list_name)
    with engine.begin() as conn:
        list_id = conn.execute(
            sa.select(CallingList.id).where(CallingList.name == list_name)
        ).scalar_one()
        for record in records:
            conn.execute(
                sa.insert(ListRecord).values(
                    list_id=list_id, record_key=record["account"], **record
                )
            )
    return int(list_id)


def add_attempts(
    engine: sa.Engine, list_id: int, rows: Sequence[dict[str, Any]], campaign: str = CAMPAIGN
) -> list[int]:
    """Insert result rows (``record_key`` and ``recorded_at`` at least); return their ids."""
    with engine.begin() as conn:
        campaign_id = get_campaign(conn, campaign).id
        ids = []
        for row in rows:
            values = {
                "campaign_id": campaign_id,
                "list_id": list_id,
                "attempted_at": row["recorded_at"] - timedelta(seconds=30),
                "is_call_attempt": True,
                **row,
            }
            ids.append(
                conn.execute(
                    sa.insert(CallAttempt).values(values).returning(CallAttempt.id)
                ).scalar_one()
            )
    return ids


def read_csv(data: bytes) -> list[list[str]]:
    """Rows of a CSV export (gzip or not), header included."""
    if data[:2] == b"\x1f\x8b":
        data = gzip.decompress(data)
    return list(csv.reader(io.StringIO(data.decode("utf-8"), newline="")))


RECORDS = [
    {
        "account": "A1",
        "phone1": "+12125550101",
        "phone2": "+12125550102",
        "first_name": "Ann",
        "last_name": "Lee",
        "zip": "10001",
        "state": "NY",
        "custom_fields": {"tier": "gold", "balance": "-12.50"},
    },
    {
        "account": "A2",
        "phone1": "+13125550199",
        "first_name": '=HYPERLINK("http://x")',
        "last_name": "O'Brien, Jr.",
        "custom_fields": {"tier": "silver", "note": "line1\nline2", "phone": "@evil"},
    },
    {"account": "A3", "phone1": "+14155550123", "first_name": "Cy", "custom_fields": None},
]


def final_files(folder: Path) -> dict[str, bytes]:
    """The complete-looking files of a folder (temporary ``.part`` names excluded)."""
    if not folder.exists():
        return {}
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if not p.name.startswith(".")}


def attempt_ids(files: dict[str, bytes]) -> list[int]:
    """Every ``attempt_id`` in the given detailed exports, duplicates kept."""
    ids: list[int] = []
    for data in files.values():
        table = read_csv(data)
        column = table[0].index("attempt_id")
        ids += [int(row[column]) for row in table[1:]]
    return ids


def watermark(engine: sa.Engine) -> datetime | None:
    with engine.connect() as conn:
        return conn.execute(sa.select(ExportWatermark.watermark)).scalar()


def exports(engine: sa.Engine) -> list[Any]:
    with engine.connect() as conn:
        return list(
            conn.execute(
                sa.select(
                    ResultsExport.status,
                    ResultsExport.file_name,
                    ResultsExport.rows,
                    ResultsExport.bytes,
                    ResultsExport.window_start,
                    ResultsExport.window_end,
                    ResultsExport.id,
                ).order_by(ResultsExport.id)
            )
        )
