"""The results domain on SQLite and PostgreSQL: the export formats and their columns,
neutralisation in SQL, windows and the watermark, on one seeded campaign.

The rules that need no database are in ``test_results_parsing.py``; large exports and the
demo's generator of results in ``test_results_streaming.py``.
"""

from __future__ import annotations

import io
from datetime import datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from support.results_support import CAMPAIGN, RECORDS, T0, add_attempts, read_csv, seed_list

from contact_center.exceptions import ObjectNotFound
from contact_center.storage.campaigns import get_campaign
from contact_center.storage.models import ExportWatermark, ListRecord, ResultsExport
from contact_center.storage.results import complete_export, plan_export
from contact_center.storage.results_format import (
    DETAILED_COLUMNS,
    SIMPLE_COLUMNS,
    Since,
    neutralise,
)
from contact_center.storage.results_query import (
    count_rows,
    custom_keys,
    export_query,
    header,
    write_export,
)


def export_rows(
    engine: sa.Engine,
    *,
    format: str,
    start: datetime,
    end: datetime,
    neutralise_formulas: bool = True,
    campaign: str = CAMPAIGN,
) -> list[dict[str, str]]:
    """Export a window in memory and read it back as dictionaries (by header name)."""
    with engine.connect() as conn:
        campaign_id = get_campaign(conn, campaign).id
        keys = custom_keys(conn, campaign_id=campaign_id, start=start, end=end)
        query = export_query(
            conn.dialect.name,
            format=format,
            campaign_id=campaign_id,
            start=start,
            end=end,
            custom_keys=keys,
            neutralise_formulas=neutralise_formulas,
        )
        buffer = io.BytesIO()
        columns = header(format, keys, neutralise_formulas=neutralise_formulas)
        rows = write_export(conn, query, columns, buffer)
    table = read_csv(buffer.getvalue())
    assert table[0] == columns and len(table) == rows + 1
    return [dict(zip(table[0], row, strict=True)) for row in table[1:]]


@pytest.fixture
def results(engine: sa.Engine) -> dict[str, Any]:
    """Three records and six result rows in an hour after T0 (and one long before)."""
    list_id = seed_list(engine, RECORDS)
    rows = [
        {
            "record_key": "A1",
            "phone": "+12125550101",
            "recorded_at": T0 + timedelta(minutes=1),
            "call_disposition": "No Answer",
            "call_disposition_code": "NA",
            "record_disposition": "No Answer",
            "record_disposition_code": "NA",
            "call_note": "SIP 480 Temporarily Unavailable",
            "global_interaction_id": "g-1",
        },
        {
            "record_key": "A1",
            "phone": "+12125550102",
            "recorded_at": T0 + timedelta(minutes=5),
            "call_disposition": "Connected",
            "call_disposition_code": "CON",
            "record_disposition": "Sale",
            "record_disposition_code": "SALE",
            "completed": True,
            "agent": "ana.lopez",
            "action_applied": "Complete",
            "global_interaction_id": "g-2",
        },
        {
            "record_key": "A2",
            "phone": "+13125550199",
            "recorded_at": T0 + timedelta(minutes=2),
            "call_disposition": "Busy",
            "call_disposition_code": "B",
            "record_disposition": "Busy",
            "record_disposition_code": "B",
            "call_note": "-SIP 486 Busy Here",
            "global_interaction_id": "g-3",
        },
        {
            "record_key": "A2",
            "phone": None,
            "recorded_at": T0 + timedelta(minutes=7),
            "is_call_attempt": False,
            "out_of_quota": True,
            "record_disposition": "Out of quota",
            "record_disposition_code": "QUOTA",
            "action_applied": "Not dialled (quota)",
        },
        {
            "record_key": "A3",
            "phone": None,
            "recorded_at": T0 + timedelta(minutes=3),
            "is_call_attempt": False,
            "completed": True,
            "record_disposition": "Excluded",
            "record_disposition_code": "EXCL",
            "call_note": "Matched an exclusion list",
            "action_applied": "Not dialled (excluded)",
        },
        # Attempted inside the hour but written after it: belongs to the next window.
        {
            "record_key": "A3",
            "phone": "+14155550123",
            "recorded_at": T0 + timedelta(minutes=70),
            "attempted_at": T0 + timedelta(minutes=50),
            "call_disposition": "No Answer",
            "record_disposition": "No Answer",
        },
        {
            "record_key": "A1",
            "phone": "+12125550101",
            "recorded_at": T0 - timedelta(days=3),
            "record_disposition": "No Answer",
        },
    ]
    ids = add_attempts(engine, list_id, rows)
    return {"list_id": list_id, "ids": ids}


# --- formats --------------------------------------------------------------------------------


def test_detailed_format_columns_and_values(engine: sa.Engine, results: dict[str, Any]) -> None:
    rows = export_rows(engine, format="detailed", start=T0, end=T0 + timedelta(hours=1))
    assert list(rows[0]) == [*DETAILED_COLUMNS, "balance", "note", "custom_phone", "tier"]
    # Oldest recorded first; the late write and the old row are outside the window.
    assert [r["attempt_id"] for r in rows] == [str(results["ids"][i]) for i in (0, 2, 4, 1, 3)]
    first, busy, excluded, sale, quota = rows
    assert first["campaign"] == CAMPAIGN and first["list"] == "Spring Leads"
    assert first["phone"] == "'+12125550101" and first["phone1"] == "'+12125550101"
    assert first["attempted_at"] == "2026-11-01T12:00:30Z"
    assert first["recorded_at"] == "2026-11-01T12:01:00Z"
    assert (first["is_call_attempt"], first["completed"], first["out_of_quota"]) == (
        "true",
        "false",
        "false",
    )
    assert first["balance"] == "'-12.50" and first["tier"] == "gold"
    assert first["global_interaction_id"] == "g-1" and first["agent"] == ""
    assert busy["first_name"] == '\'=HYPERLINK("http://x")'
    assert busy["last_name"] == "O'Brien, Jr." and busy["note"] == "line1\nline2"
    assert busy["custom_phone"] == "'@evil" and busy["call_note"] == "'-SIP 486 Busy Here"
    assert excluded["is_call_attempt"] == "false" and excluded["record_disposition"] == "Excluded"
    assert excluded["tier"] == "" and excluded["phone"] == ""
    assert sale["agent"] == "ana.lopez" and sale["completed"] == "true"
    assert quota["out_of_quota"] == "true" and quota["action_applied"] == "Not dialled (quota)"


def test_simple_format_one_row_per_record(engine: sa.Engine, results: dict[str, Any]) -> None:
    rows = export_rows(engine, format="simple", start=T0, end=T0 + timedelta(hours=1))
    assert list(rows[0]) == [*SIMPLE_COLUMNS, "balance", "note", "custom_phone", "tier"]
    by_key = {r["record_key"]: r for r in rows}
    assert [r["record_key"] for r in rows] == ["A1", "A2", "A3"]
    a1, a2, a3 = by_key["A1"], by_key["A2"], by_key["A3"]
    assert (a1["record_disposition"], a1["completed"], a1["attempts"]) == ("Sale", "true", "2")
    assert (a1["last_phone"], a1["last_agent"]) == ("'+12125550102", "ana.lopez")
    assert a1["last_attempt_at"] == "2026-11-01T12:04:30Z"
    # A2's last row was not dialled (quota): one dialled attempt, final disposition quota.
    assert (a2["record_disposition"], a2["attempts"], a2["last_phone"]) == ("Out of quota", "1", "")
    assert (a3["record_disposition"], a3["attempts"], a3["completed"]) == ("Excluded", "0", "true")
    with engine.connect() as conn:
        campaign_id = get_campaign(conn, CAMPAIGN).id
        window = {"campaign_id": campaign_id, "start": T0, "end": T0 + timedelta(hours=1)}
        assert count_rows(conn, format="simple", **window) == 3
        assert count_rows(conn, format="detailed", **window) == 5


def test_custom_columns_come_from_the_lists_of_the_window(
    engine: sa.Engine, results: dict[str, Any]
) -> None:
    # A record never attempted still brings its keys; a list with no results does not.
    with engine.begin() as conn:
        conn.execute(
            sa.insert(ListRecord).values(
                list_id=results["list_id"], record_key="A9", custom_fields={"zone": "east"}
            )
        )
    other = seed_list(
        engine, [{"account": "B1", "custom_fields": {"other": "x"}}], list_name="Other Leads"
    )
    assert other != results["list_id"]
    with engine.connect() as conn:
        campaign_id = get_campaign(conn, CAMPAIGN).id
        window = {"campaign_id": campaign_id, "start": T0, "end": T0 + timedelta(hours=1)}
        assert custom_keys(conn, **window) == ["balance", "note", "phone", "tier", "zone"]
        before = {"campaign_id": campaign_id, "start": T0 - timedelta(days=9), "end": T0}
        assert custom_keys(conn, **before) == ["balance", "note", "phone", "tier", "zone"]
        empty = {"campaign_id": campaign_id, "start": T0 - timedelta(days=1), "end": T0}
        assert custom_keys(conn, **empty) == []


def test_neutralisation_can_be_turned_off(engine: sa.Engine, results: dict[str, Any]) -> None:
    rows = export_rows(
        engine, format="detailed", start=T0, end=T0 + timedelta(hours=1), neutralise_formulas=False
    )
    assert rows[0]["phone"] == "+12125550101" and rows[0]["balance"] == "-12.50"
    assert rows[1]["first_name"] == '=HYPERLINK("http://x")'


@pytest.mark.parametrize(
    "value",
    ["=1+1", "+1", "-", "@x", "\tx", "\rx", "'already", "plain", "x=1", "", "é=", 'a,"b"\r\nc'],
)
def test_sql_neutralisation_matches_the_python_rule(engine: sa.Engine, value: str) -> None:
    list_id = seed_list(engine, [{"account": "K", "first_name": value}])
    add_attempts(engine, list_id, [{"record_key": "K", "recorded_at": T0, "call_note": value}])
    (row,) = export_rows(engine, format="detailed", start=T0, end=T0 + timedelta(seconds=1))
    assert row["first_name"] == row["call_note"] == (neutralise(value) or "")


# --- windows and bookkeeping --------------------------------------------------------------


def test_plan_and_complete_move_the_watermark_once(
    engine: sa.Engine, results: dict[str, Any]
) -> None:
    run1 = T0 + timedelta(hours=1)
    campaign, first = plan_export(
        engine, campaign=CAMPAIGN, destination="sftp://x/out/", since=Since("last"), run_time=run1
    )
    # No watermark: from the oldest row of the campaign.
    assert (first.start, first.end) == (T0 - timedelta(days=3), run1) and first.export_id
    # Not delivered yet: the next run resumes the same window, whatever its own time.
    _, again = plan_export(
        engine,
        campaign=CAMPAIGN,
        destination="sftp://x/out",
        since=Since("last"),
        run_time=run1 + timedelta(hours=5),
    )
    assert (again.start, again.end, again.export_id, again.resumed) == (
        first.start,
        first.end,
        first.export_id,
        True,
    )
    complete_export(
        engine,
        campaign_id=campaign.id,
        destination="sftp://x/out",
        window=again,
        format="detailed",
        file_name="f.csv",
        rows=6,
        bytes=100,
    )
    with engine.connect() as conn:
        assert conn.execute(sa.select(ExportWatermark.watermark)).scalar_one() == run1
        status = conn.execute(sa.select(ResultsExport.status, ResultsExport.rows)).one()
        assert tuple(status) == ("delivered", 6)
    _, second = plan_export(
        engine,
        campaign=CAMPAIGN,
        destination="sftp://x/out",
        since=Since("last"),
        run_time=run1 + timedelta(hours=1),
    )
    assert (second.start, second.end, second.resumed) == (run1, run1 + timedelta(hours=1), False)
    # An older run time than the watermark: nothing to do.
    _, late = plan_export(
        engine,
        campaign=CAMPAIGN,
        destination="sftp://x/other",
        since=Since("last"),
        run_time=T0,
        first_since=T0 + timedelta(minutes=2),
    )
    assert (late.start, late.end) == (T0, T0)  # first_since after the run time is clamped
    backfill = Since("window", T0, T0 + timedelta(hours=1))
    _, window = plan_export(
        engine, campaign=CAMPAIGN, destination="sftp://x/out", since=backfill, run_time=run1
    )
    # A backfill reserves a row of its own (for its id), which is never resumed.
    assert not window.advances_watermark and window.export_id is not None
    assert window.export_id not in (first.export_id, second.export_id)
    _, again = plan_export(
        engine,
        campaign=CAMPAIGN,
        destination="sftp://x/out",
        since=Since("last"),
        run_time=run1 + timedelta(hours=2),
    )
    assert (again.export_id, again.resumed) == (second.export_id, True)
    complete_export(
        engine,
        campaign_id=campaign.id,
        destination="sftp://x/out",
        window=window,
        format="simple",
        file_name="b.csv",
        rows=3,
        bytes=10,
    )
    with engine.connect() as conn:
        assert (
            conn.execute(
                sa.select(ExportWatermark.watermark).where(
                    ExportWatermark.destination == "sftp://x/out"
                )
            ).scalar_one()
            == run1
        )


def test_unknown_campaign_is_refused(engine: sa.Engine) -> None:
    with pytest.raises(ObjectNotFound, match="campaign 'Nope' does not exist"):
        plan_export(engine, campaign="Nope", destination="out", since=Since("last"), run_time=T0)
