"""Zones through the real import flow, and calling hours in the dialable view and the
list-status report, on SQLite and PostgreSQL."""

from __future__ import annotations

import csv
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

import pytest
import sqlalchemy as sa
from prefect.client.schemas.objects import State
from prefect.settings import PREFECT_FLOWS_HEARTBEAT_FREQUENCY, temporary_settings

from contact_center.exceptions import InvalidParameter
from contact_center.reports import ReportQuery, build_report, get_report, resolve_period
from contact_center.storage.campaigns import ensure_campaign, link_list
from contact_center.storage.dialing import (
    ZoneCount,
    calling_hours_counts,
    calling_hours_of,
    dialable_records,
    set_calling_hours,
)
from contact_center.storage.models import CallingList, ListRecord
from flows.calling_list_import import import_calling_list

LIST = "Zoned Leads"
TOLL_FREE = "800-234-5678"  # valid, and tells no place
HEADER = ["Account", "Phone", "ZIP", "State", "TZ"]
ROWS = [
    ["ny-zip", TOLL_FREE, "02134", "", ""],  # a leading zero
    ["ny-phone", "212-736-5000", "", "", ""],
    ["chicago-state", TOLL_FREE, "", "IL", ""],
    ["tennessee", TOLL_FREE, "", "TN", ""],  # Eastern and Central
    ["denver-zip", "212-736-5000", "80202", "", ""],
    ["phoenix-phone", "602-736-5000", "", "", ""],
    ["pr-zip", TOLL_FREE, "00901", "", ""],
    ["column", TOLL_FREE, "10001", "", "America/Los_Angeles"],
    ["unknown", TOLL_FREE, "", "", ""],
    ["bad-zone", "212-736-5000", "", "", "Eastern Time"],
]
MAPPING = {
    "Account": "account",
    "Phone": "phone1",
    "ZIP": "zip",
    "State": "state",
    "TZ": "timezone",
}

# Monday 9 March 2026, after the change to daylight time.
AT_0830_EASTERN = datetime(2026, 3, 9, 12, 30, tzinfo=UTC)
AT_0930_EASTERN = datetime(2026, 3, 9, 13, 30, tzinfo=UTC)


@pytest.fixture(autouse=True)
def _quick_runs() -> Iterator[None]:
    with temporary_settings(updates={PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None}):
        yield


@pytest.fixture
def loaded(tmp_path: Path, engine: sa.Engine) -> State:
    """The list file imported by the real flow, into a campaign's enabled list."""
    path = tmp_path / "zoned.csv"
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(HEADER)
        writer.writerows(ROWS)
    state = cast(
        State,
        import_calling_list(list_name=LIST, source=str(path), mapping=MAPPING, return_state=True),
    )
    assert state.is_completed(), state.message
    ensure_campaign(engine, "Spring", time_zone="America/New_York")
    link_list(engine, "Spring", LIST)
    return state


def stored_zones(engine: sa.Engine) -> dict[str, tuple[str | None, str | None]]:
    with engine.connect() as conn:
        rows = conn.execute(
            sa.select(ListRecord.record_key, ListRecord.timezone, ListRecord.timezone_source)
            .join(CallingList, CallingList.id == ListRecord.list_id)
            .where(CallingList.name == LIST)
        ).all()
    return {key: (zone, source) for key, zone, source in rows}


def dialable(engine: sa.Engine, at: datetime | None) -> list[str]:
    with engine.connect() as conn:
        return sorted(r.record_key for r in conn.execute(dialable_records(conn, "Spring", at=at)))


def test_the_import_stores_each_zone_and_its_source(loaded: State, engine: sa.Engine) -> None:
    outcome: Any = loaded.result()
    assert (outcome.loaded, outcome.rejected) == (9, 1)
    assert outcome.rejects_by_reason == {"invalid_timezone": 1}
    assert stored_zones(engine) == {
        "ny-zip": ("America/New_York", "zip"),
        "ny-phone": ("America/New_York", "phone"),
        "chicago-state": ("America/Chicago", "state"),
        "tennessee": ("America/Chicago America/New_York", "state"),
        "denver-zip": ("America/Denver", "zip"),
        "phoenix-phone": ("America/Phoenix", "phone"),
        "pr-zip": ("America/Puerto_Rico", "zip"),
        "column": ("America/Los_Angeles", "column"),
        "unknown": (None, None),
    }


def test_dialable_records_keep_calling_hours_in_every_zone(
    loaded: State, engine: sa.Engine
) -> None:
    # 08:30 in New York and San Juan; 07:30 in Chicago, 06:30 in Denver, 05:30 in
    # Phoenix and Los Angeles.
    assert dialable(engine, AT_0830_EASTERN) == ["ny-phone", "ny-zip", "pr-zip"]
    # 09:30 in New York: Chicago opens, and so does Tennessee (in both its zones).
    assert dialable(engine, AT_0930_EASTERN) == [
        "chicago-state",
        "ny-phone",
        "ny-zip",
        "pr-zip",
        "tennessee",
    ]
    # Without a moment, calling hours do not apply (the start check's question).
    assert len(dialable(engine, None)) == 9
    # A record with no zone, judged in the campaign's zone (New York) if it says so.
    set_calling_hours(engine, "Spring", unknown_timezone="campaign_zone")
    assert "unknown" in dialable(engine, AT_0830_EASTERN)
    # A narrower window, and weekends.
    set_calling_hours(engine, "Spring", window="09:00-17:00", days="sat,sun")
    assert dialable(engine, AT_0930_EASTERN) == []
    saturday_0930_eastern = datetime(2026, 3, 14, 13, 30, tzinfo=UTC)
    assert dialable(engine, saturday_0930_eastern) == ["ny-phone", "ny-zip", "pr-zip"]


def test_holidays_and_the_stored_settings(loaded: State, engine: sa.Engine) -> None:
    christmas_noon_eastern = datetime(2026, 12, 25, 17, 0, tzinfo=UTC)  # a Friday
    assert "ny-zip" in dialable(engine, christmas_noon_eastern)
    hours = set_calling_hours(engine, "Spring", holidays="US")
    assert dialable(engine, christmas_noon_eastern) == []
    with engine.connect() as conn:
        assert calling_hours_of(conn, "Spring") == hours
    assert hours.holiday_region == ("US", None) and hours.campaign_zone == "America/New_York"
    with pytest.raises(InvalidParameter, match="unknown country 'XX'"):
        set_calling_hours(engine, "Spring", holidays="XX")


def test_counts_per_zone_and_the_list_status_report(loaded: State, engine: sa.Engine) -> None:
    with engine.connect() as conn:
        counts = calling_hours_counts(conn, "Spring", at=AT_0830_EASTERN)
    assert counts == [
        ZoneCount(LIST, None, 0, 1),
        ZoneCount(LIST, "America/Chicago", 0, 1),
        ZoneCount(LIST, "America/Chicago America/New_York", 0, 1),
        ZoneCount(LIST, "America/Denver", 0, 1),
        ZoneCount(LIST, "America/Los_Angeles", 0, 1),
        ZoneCount(LIST, "America/New_York", 2, 0),
        ZoneCount(LIST, "America/Phoenix", 0, 1),
        ZoneCount(LIST, "America/Puerto_Rico", 1, 0),
    ]
    query = ReportQuery(
        resolve_period("yesterday", "America/New_York", AT_0830_EASTERN),
        AT_0830_EASTERN,
        engine,
        {},
    )
    report = build_report(get_report("list-status"), query)
    table = report.tables["Calling hours"]
    assert table.to_dict(orient="records") == [
        {
            "Campaign": "Spring",
            "Calling list": LIST,
            "Time zone": count.zone or "(none)",
            "Dialable now": count.dialable_now,
            "Outside calling hours": count.outside_hours,
        }
        for count in counts
    ]
    assert (report.highlights["Dialable now"], report.highlights["Outside calling hours"]) == (3, 6)
    assert report.tables["List status"]["Dialable"].tolist() == [9]


def test_an_import_without_zone_sources_stores_no_zone(
    loaded: State, engine: sa.Engine, tmp_path: Path
) -> None:
    """No source and no default: every record's zone is NULL, both on a fresh list's
    straight load (whose writer leaves the columns out) and on a re-import that
    updates records that had zones."""
    source = str(tmp_path / "zoned.csv")
    state = cast(
        State,
        import_calling_list(
            list_name=LIST,
            source=source,
            mapping=MAPPING,
            timezone_precedence=[],
            force=True,  # the same file again, not skipped
            return_state=True,
        ),
    )
    assert state.is_completed(), state.message
    assert set(stored_zones(engine).values()) == {(None, None)}
    assert len(stored_zones(engine)) == 9

    fresh = cast(
        State,
        import_calling_list(
            list_name="Unzoned",
            source=source,
            mapping=MAPPING,
            timezone_precedence=[],
            return_state=True,
        ),
    )
    assert fresh.is_completed(), fresh.message
    with engine.connect() as conn:
        zones = conn.execute(
            sa.select(ListRecord.timezone, ListRecord.timezone_source)
            .join(CallingList, CallingList.id == ListRecord.list_id)
            .where(CallingList.name == "Unzoned")
        ).all()
    assert len(zones) == 9
    assert {tuple(z) for z in zones} == {(None, None)}
