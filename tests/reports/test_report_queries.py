"""The built-in reports' numbers on a seeded database, on SQLite and PostgreSQL.

The seed straddles the spring-forward night (2026-03-08 in New York) so that an
attempt at 23:30 local time counts on its local day, not its UTC day.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import pandas as pd
import pytest
import sqlalchemy as sa

from contact_center.exceptions import InvalidParameter, ObjectNotFound
from contact_center.reports import ReportQuery, build_report, get_report, resolve_period
from contact_center.storage.campaigns import ensure_campaign, link_exclusion_list, link_list
from contact_center.storage.models import (
    CallAttempt,
    CallingList,
    Campaign,
    Exclusion,
    ExclusionImport,
    ExclusionList,
    ListImport,
    ListRecord,
)

NY = ZoneInfo("America/New_York")
#: The run time of the seeded reports: the morning after the seeded period.
NOW = datetime(2026, 3, 9, 12, 0, tzinfo=NY)
PERIOD = "2026-03-07/2026-03-08"
CAMPAIGNS = Campaign.__table__


def local(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=NY)


def _id(conn: sa.Connection, table: sa.Table, name: str) -> int:
    return int(conn.execute(sa.select(table.c.id).where(table.c.name == name)).scalar_one())


def _record(conn: sa.Connection, list_id: int, key: str, expires: str | None = None) -> int:
    table = ListRecord.__table__
    return int(
        conn.execute(
            sa.insert(table)
            .values(
                list_id=list_id,
                record_key=key,
                account=key,
                phone1="+12125550100",
                expires_at=local(expires) if expires else None,
            )
            .returning(table.c.id)
        ).scalar_one()
    )


def seed(engine: sa.Engine) -> dict[str, Any]:
    """A small contact centre whose report numbers are known (see each test)."""
    ensure_campaign(engine, "Spring Sale", time_zone="America/New_York")
    ensure_campaign(engine, "Renewals", time_zone="America/New_York")
    link_list(engine, "Spring Sale", "Leads A")
    link_list(engine, "Spring Sale", "Leads B", enabled=False)
    link_list(engine, "Renewals", "Leads C")
    link_exclusion_list(engine, "Spring Sale", "DNC")
    link_exclusion_list(engine, "Spring Sale", "Old DNC")
    lists, xlists = CallingList.__table__, ExclusionList.__table__
    with engine.begin() as conn:
        conn.execute(sa.insert(lists).values(name="Empty"))
        conn.execute(sa.update(xlists).where(xlists.c.name == "Old DNC").values(active=False))
        a, b, c = (_id(conn, lists, n) for n in ("Leads A", "Leads B", "Leads C"))
        dnc, old = _id(conn, xlists, "DNC"), _id(conn, xlists, "Old DNC")
        records = {
            "A001": _record(conn, a, "A001"),
            "A002": _record(conn, a, "A002"),  # excluded by DNC
            "A003": _record(conn, a, "A003"),  # its exclusion expired on 03-08
            "A004": _record(conn, a, "A004"),  # only in the inactive list
            "A005": _record(conn, a, "A005", expires="2026-03-01T00:00"),
            "A006": _record(conn, a, "A006", expires="2026-03-09T00:00"),  # and in DNC
            "B001": _record(conn, b, "A002"),  # list disabled: DNC does not apply
            "C001": _record(conn, c, "C001"),
            "C002": _record(conn, c, "C002"),
        }
        exclusions = [
            (dnc, "A002", "2099-01-01T00:00"),
            (dnc, "A003", "2026-03-08T12:00"),  # expires inside the period
            (dnc, "A006", None),
            (dnc, "Z999", "2026-03-09T00:00"),  # the first instant after the period
            (old, "A004", None),
        ]
        conn.execute(
            sa.insert(Exclusion.__table__),
            [
                {
                    "exclusion_list_id": list_id,
                    "key_value": key,
                    "added_at": local("2026-03-01T00:00"),
                    "expires_at": local(expires) if expires else None,
                }
                for list_id, key, expires in exclusions
            ],
        )
        conn.execute(
            sa.insert(ExclusionImport.__table__),
            [
                {"exclusion_list_id": dnc, "step": "import", "added": 5, "renewed": 2,
                 "removed": 0, "rejected": 1, "started_at": local("2026-03-07T10:00")},
                {"exclusion_list_id": dnc, "step": "reset", "added": 0, "renewed": 0,
                 "removed": 3, "rejected": 0, "started_at": local("2026-03-08T02:00")},
                {"exclusion_list_id": dnc, "step": "import", "added": 100, "renewed": 0,
                 "removed": 0, "rejected": 0, "started_at": local("2026-03-05T10:00")},
            ],
        )  # fmt: skip
        conn.execute(
            sa.insert(ListImport.__table__),
            [
                {"list_id": a, "file_name": "a.csv", "sha256": "1" * 64, "status": "completed",
                 "loaded": 6, "started_at": local("2026-03-07T06:00")},
                {"list_id": a, "file_name": "a.csv", "sha256": "1" * 64, "status": "skipped",
                 "loaded": 0, "started_at": local("2026-03-08T06:00")},
                {"list_id": a, "file_name": "old.csv", "sha256": "2" * 64, "status": "completed",
                 "loaded": 50, "started_at": local("2026-03-01T06:00")},
            ],
        )  # fmt: skip
        spring = _id(conn, CAMPAIGNS, "Spring Sale")
        renewals = _id(conn, CAMPAIGNS, "Renewals")

        def attempt(campaign: int, when: str, key: str, **values: Any) -> dict[str, Any]:
            row = {
                "campaign_id": campaign, "list_id": a, "record_id": records[key],
                "record_key": key, "phone": "+12125550100", "attempted_at": local(when),
                "is_call_attempt": True, "completed": False, "agent": None,
                "call_disposition": None, "record_disposition": None,
            }  # fmt: skip
            row.update(values)
            return row

        conn.execute(
            sa.insert(CallAttempt.__table__),
            [
                attempt(spring, "2026-03-07T10:00", "A001", agent="ann",
                        call_disposition="Connected", record_disposition="Sale", completed=True),
                # 23:30 local on 03-07 is 04:30 UTC on 03-08: it counts on 03-07.
                attempt(spring, "2026-03-07T23:30", "A003", call_disposition="No Answer"),
                attempt(spring, "2026-03-08T00:30", "A004", call_disposition="Busy"),
                attempt(spring, "2026-03-08T23:30", "A004", agent="bob",
                        call_disposition="Not Interested", completed=True),
                attempt(spring, "2026-03-08T12:00", "A002", is_call_attempt=False,
                        record_disposition="Excluded"),
                attempt(spring, "2026-03-06T23:59", "A001", call_disposition="Busy"),
                attempt(spring, "2026-03-09T00:00", "A001", call_disposition="Busy"),
                attempt(renewals, "2026-03-08T09:00", "C001", agent="cy"),
            ],
        )  # fmt: skip
    return records


def run(engine: sa.Engine, name: str, period: str = PERIOD, **options: Any):  # type: ignore[no-untyped-def]
    query = ReportQuery(resolve_period(period, "America/New_York", NOW), NOW, engine, options)
    return build_report(get_report(name), query)


def rows(frame: pd.DataFrame) -> list[dict[str, Any]]:
    return frame.to_dict(orient="records")


def test_campaign_summary_numbers(engine: sa.Engine) -> None:
    seed(engine)
    data = run(engine, "campaign-summary")
    daily = data.tables["Daily"]
    assert list(daily.columns) == [
        "Campaign", "Day", "Attempts", "Connects", "Completed", "Completion rate (%)",
        "Not dialled", "(none)", "Busy", "No Answer", "Not Interested", "Sale",
    ]  # fmt: skip
    assert rows(daily) == [
        {"Campaign": "Renewals", "Day": "2026-03-08", "Attempts": 1, "Connects": 1,
         "Completed": 0, "Completion rate (%)": 0.0, "Not dialled": 0, "Busy": 0, "(none)": 1,
         "No Answer": 0, "Not Interested": 0, "Sale": 0},
        {"Campaign": "Spring Sale", "Day": "2026-03-07", "Attempts": 2, "Connects": 1,
         "Completed": 1, "Completion rate (%)": 50.0, "Not dialled": 0, "Busy": 0, "(none)": 0,
         "No Answer": 1, "Not Interested": 0, "Sale": 1},
        {"Campaign": "Spring Sale", "Day": "2026-03-08", "Attempts": 2, "Connects": 1,
         "Completed": 1, "Completion rate (%)": 50.0, "Not dialled": 1, "Busy": 1, "(none)": 0,
         "No Answer": 0, "Not Interested": 1, "Sale": 0},
    ]  # fmt: skip
    totals = data.tables["Campaign totals"]
    spring = totals[totals["Campaign"] == "Spring Sale"].iloc[0]
    assert (spring["Attempts"], spring["Connects"], spring["Completed"]) == (4, 2, 2)
    assert spring["Completion rate (%)"] == 50.0 and spring["Not dialled"] == 1
    assert data.highlights == {
        "Campaigns": 2, "Attempts": 5, "Connects": 3, "Completed": 2, "Completion rate (%)": 40.0,
    }  # fmt: skip
    assert data.chart is not None and data.chart.startswith(b"\x89PNG")


def test_campaign_summary_filter_and_empty_period(engine: sa.Engine) -> None:
    seed(engine)
    only = run(engine, "campaign-summary", campaigns=["Renewals"])
    assert list(only.tables["Daily"]["Campaign"]) == ["Renewals"]
    empty = run(engine, "campaign-summary", period="2026-01-01/2026-01-31")
    assert empty.tables["Daily"].empty and empty.highlights["Attempts"] == 0
    assert empty.chart is not None  # an empty chart that says so
    with pytest.raises(ObjectNotFound, match="'Nope'"):
        run(engine, "campaign-summary", campaigns=["Nope"])


def test_list_status_numbers(engine: sa.Engine) -> None:
    seed(engine)
    data = run(engine, "list-status")
    assert rows(data.tables["List status"]) == [
        {"Calling list": "Empty", "Campaigns": "", "Records": 0, "Dialable": 0, "Excluded": 0,
         "Expired": 0, "Completed": 0, "Imports in period": 0, "Rows loaded in period": 0},
        {"Calling list": "Leads A", "Campaigns": "Spring Sale", "Records": 6, "Dialable": 3,
         "Excluded": 1, "Expired": 2, "Completed": 2, "Imports in period": 1,
         "Rows loaded in period": 6},
        {"Calling list": "Leads B", "Campaigns": "", "Records": 1, "Dialable": 1, "Excluded": 0,
         "Expired": 0, "Completed": 0, "Imports in period": 0, "Rows loaded in period": 0},
        {"Calling list": "Leads C", "Campaigns": "Renewals", "Records": 2, "Dialable": 2,
         "Excluded": 0, "Expired": 0, "Completed": 0, "Imports in period": 0,
         "Rows loaded in period": 0},
    ]  # fmt: skip
    assert data.highlights["Records"] == 9 and data.highlights["Excluded"] == 1


def test_list_status_agrees_with_the_dialing_rule(engine: sa.Engine) -> None:
    from contact_center.storage.dialing import dialable_records_for_list

    seed(engine)
    data = run(engine, "list-status", lists="Leads A")
    with engine.connect() as conn:
        stmt = dialable_records_for_list(conn, "Leads A", now=NOW)
        dialable = conn.execute(sa.select(sa.func.count()).select_from(stmt.subquery())).scalar()
    assert data.tables["List status"]["Dialable"].tolist() == [dialable] == [3]


def test_exclusion_activity_numbers(engine: sa.Engine) -> None:
    seed(engine)
    data = run(engine, "exclusion-activity")
    assert rows(data.tables["Exclusion activity"]) == [
        {"Exclusion list": "DNC", "List active": "yes", "Imports": 1, "Resets": 1, "Added": 5,
         "Renewed": 2, "Removed": 3, "Expired": 1, "Rejected": 1, "Active keys": 2},
        {"Exclusion list": "Old DNC", "List active": "no", "Imports": 0, "Resets": 0,
         "Added": 0, "Renewed": 0, "Removed": 0, "Expired": 0, "Rejected": 0, "Active keys": 1},
    ]  # fmt: skip
    assert data.highlights == {
        "Exclusion lists": 2, "Added": 5, "Renewed": 2, "Removed": 3, "Expired": 1,
    }  # fmt: skip
    wider = run(engine, "exclusion-activity", period="2026-03-01/2026-03-09")
    assert wider.tables["Exclusion activity"]["Added"].tolist() == [105, 0]
    assert wider.tables["Exclusion activity"]["Expired"].tolist() == [2, 0]


def test_unknown_report_and_option() -> None:
    with pytest.raises(ObjectNotFound, match="available reports: campaign-summary, "):
        get_report("campaign-sumary")
    with pytest.raises(InvalidParameter, match="has no option 'colour'; its options: campaigns"):
        get_report("campaign-summary").check_options({"colour": "red"})


def test_campaign_summary_agrees_with_generated_attempts(engine: sa.Engine) -> None:
    """On the demo generator's data, the SQL matches a count over the raw rows in pandas."""
    from deployments.demo.attempts import generate_call_attempts

    seed(engine)
    start, end = local("2026-03-06T00:00"), local("2026-03-10T00:00")
    generate_call_attempts(engine, "Spring Sale", count=3000, seed=7, start=start, end=end)
    data = run(engine, "campaign-summary", period="2026-03-07/2026-03-09", campaigns="Spring Sale")
    table = CallAttempt.__table__
    with engine.connect() as conn:
        spring = _id(conn, CAMPAIGNS, "Spring Sale")
        raw = pd.DataFrame(
            conn.execute(sa.select(table).where(table.c.campaign_id == spring)).mappings().all()
        )
    raw["day"] = [t.astimezone(NY).date().isoformat() for t in raw["attempted_at"]]
    raw = raw[raw["day"].isin(["2026-03-07", "2026-03-08", "2026-03-09"])]
    dialled = raw[raw["is_call_attempt"].astype(bool)]
    expected = (
        pd.DataFrame(
            {
                "Attempts": dialled.groupby("day").size(),
                "Connects": dialled[dialled["agent"].notna()].groupby("day").size(),
                "Completed": dialled[dialled["completed"].astype(bool)].groupby("day").size(),
                "Not dialled": raw[~raw["is_call_attempt"].astype(bool)].groupby("day").size(),
            }
        )
        .fillna(0)
        .astype(int)
    )
    daily = data.tables["Daily"].set_index("Day")
    assert daily[expected.columns].to_dict() == expected.to_dict()
    assert int(daily["Attempts"].sum()) > 1500
    disposition = dialled["record_disposition"].fillna(dialled["call_disposition"])
    assert int(daily["Sale"].sum()) == int((disposition == "Sale").sum()) > 0
    assert "Connected" not in daily.columns  # connected calls show their outcome
