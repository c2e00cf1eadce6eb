"""``cctasks campaign hours``: show, set, refuse bad values, count, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from cli.main import app
from contact_center.storage.calling_hours import CallingHours
from contact_center.storage.campaigns import ensure_campaign, link_list
from contact_center.storage.dialing import calling_hours_of, dialable_records
from contact_center.storage.models import CallingList, ListRecord

CAMPAIGN = "Spring Sale"
LIST = "Leads"
# Monday 9 March 2026: 08:30 in New York is 07:30 in Chicago.
AT_0830_EASTERN = datetime(2026, 3, 9, 12, 30, tzinfo=UTC)
SATURDAY_0930_EASTERN = datetime(2026, 3, 14, 13, 30, tzinfo=UTC)


@pytest.fixture
def campaign(engine: sa.Engine) -> str:
    """A campaign in New York with a list of one record in New York, one in Chicago, one
    with no zone."""
    ensure_campaign(engine, CAMPAIGN, time_zone="America/New_York")
    link_list(engine, CAMPAIGN, LIST)
    zones = {"ny": "America/New_York", "chicago": "America/Chicago", "nowhere": None}
    with engine.begin() as conn:
        list_id = conn.execute(
            sa.select(CallingList.id).where(CallingList.name == LIST)
        ).scalar_one()
        conn.execute(
            sa.insert(ListRecord),
            [
                {"list_id": list_id, "record_key": k, "account": k, "timezone": z}
                for k, z in zones.items()
            ],
        )
    return CAMPAIGN


def hours(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, ["campaign", "hours", CAMPAIGN, *args])
    return result.exit_code, result.output


def stored(engine: sa.Engine) -> CallingHours:
    with engine.connect() as conn:
        return calling_hours_of(conn, CAMPAIGN)


def dialable(engine: sa.Engine, at: datetime) -> list[str]:
    with engine.connect() as conn:
        return sorted(r.record_key for r in conn.execute(dialable_records(conn, CAMPAIGN, at=at)))


def test_shows_the_defaults_without_an_option(campaign: str, engine: sa.Engine) -> None:
    code, output = hours()
    assert code == 0, output
    assert "window            08:00-21:00" in output
    assert "days              mon,tue,wed,thu,fri" in output
    assert "holidays          none" in output
    assert "unknown timezone  skip (campaign zone America/New_York)" in output
    assert stored(engine) == CallingHours(campaign_zone="America/New_York")


def test_sets_the_hours_and_dialable_records_follow(campaign: str, engine: sa.Engine) -> None:
    assert dialable(engine, AT_0830_EASTERN) == ["ny"]
    assert dialable(engine, SATURDAY_0930_EASTERN) == []

    code, output = hours("--window", "07:00-20:00", "--days", "mon-wed,sat")
    assert code == 0, output
    assert "window            07:00-20:00" in output
    assert "days              mon,tue,wed,sat" in output
    assert dialable(engine, AT_0830_EASTERN) == ["chicago", "ny"]  # 07:30 in Chicago is open
    assert dialable(engine, SATURDAY_0930_EASTERN) == ["chicago", "ny"]

    # One option changes one setting; the others stay.
    code, output = hours("--unknown-timezone", "campaign_zone", "--holidays", "us-ny")
    assert code == 0, output
    assert stored(engine) == CallingHours(
        start=datetime(2026, 1, 1, 7).time(),
        end=datetime(2026, 1, 1, 20).time(),
        days=frozenset({0, 1, 2, 5}),
        holiday_region=("US", "NY"),
        unknown_timezone="campaign_zone",
        campaign_zone="America/New_York",
    )
    assert dialable(engine, AT_0830_EASTERN) == ["chicago", "nowhere", "ny"]
    christmas_noon_eastern = datetime(2026, 12, 25, 17, tzinfo=UTC)
    assert dialable(engine, christmas_noon_eastern) == []  # a Friday, and a holiday anyway

    code, output = hours("--holidays", "none", "--days", "mon-fri")
    assert code == 0, output
    assert "holidays          none" in output and stored(engine).holiday_region is None
    assert dialable(engine, christmas_noon_eastern) == ["chicago", "nowhere", "ny"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--window", "21:00-08:00"], "calling_window '21:00-08:00' must start before it ends"),
        (["--window", "8am-9pm"], "calling_window '8am-9pm' must be two local times"),
        (["--days", "mon-funday"], "calling_days 'mon-funday' must list days of the week"),
        (["--holidays", "XX"], "unknown country 'XX'"),
        (["--unknown-timezone", "guess"], "unknown_timezone 'guess' is not one of"),
        (["--dialable-now", "--at", "tomorrow"], "--at 'tomorrow' must be an ISO date"),
        (["--at", "2026-03-09T12:30"], "--at needs --dialable-now"),
    ],
)
def test_a_bad_value_is_refused_and_nothing_changes(
    campaign: str, engine: sa.Engine, args: list[str], message: str
) -> None:
    before = stored(engine)
    code, output = hours("--window", "09:00-17:00", *args)
    assert code == 2
    assert output.startswith("error: ") and message in output and output.count("\n") == 1
    assert stored(engine) == before


def test_an_unknown_campaign_is_an_error(campaign: str) -> None:
    result = CliRunner().invoke(app, ["campaign", "hours", "Nope", "--window", "09:00-17:00"])
    assert result.exit_code == 1 and "no campaign named 'Nope'" in result.output


def test_dialable_now_counts_per_zone(campaign: str, engine: sa.Engine) -> None:
    code, output = hours("--dialable-now", "--at", "2026-03-09T12:30:00")  # naive is UTC
    assert code == 0, output
    lines = [line.split() for line in output.splitlines()]
    assert [LIST, "(none)", "0", "1"] in lines
    assert [LIST, "America/Chicago", "0", "1"] in lines
    assert [LIST, "America/New_York", "1", "0"] in lines
    assert ["total", "1", "2"] in lines
    # The counts agree with the dialable view at the same moment.
    assert len(dialable(engine, AT_0830_EASTERN)) == 1
