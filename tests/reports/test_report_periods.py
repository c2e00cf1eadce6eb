"""Report periods: local days, month ends and DST (2026-03-08, 2026-11-01), pure functions."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from contact_center.exceptions import InvalidParameter
from contact_center.reports.periods import day_starts, local_midnight, resolve_period

NY = "America/New_York"


def at(text: str, tz: str = NY) -> datetime:
    """A local wall time in ``tz`` as an aware datetime."""
    return datetime.fromisoformat(text).replace(tzinfo=ZoneInfo(tz))


def day_lengths(days: list[datetime]) -> list[float]:
    utc = [d.astimezone(UTC) for d in days]
    return [(b - a) / timedelta(hours=1) for a, b in zip(utc, utc[1:], strict=False)]


def hours(period) -> float:  # type: ignore[no-untyped-def]
    return (period.end_utc - period.start_utc) / timedelta(hours=1)


def test_yesterday_on_the_day_after_spring_forward_is_23_hours() -> None:
    period = resolve_period("yesterday", NY, now=at("2026-03-09T07:00"))
    assert period.start_utc == datetime(2026, 3, 8, 5, 0, tzinfo=UTC)  # midnight EST
    assert period.end_utc == datetime(2026, 3, 9, 4, 0, tzinfo=UTC)  # midnight EDT
    assert hours(period) == 23
    assert period.label == "2026-03-08"


def test_yesterday_on_the_day_after_fall_back_is_25_hours() -> None:
    period = resolve_period("yesterday", NY, now=at("2026-11-02T07:00"))
    assert period.start_utc == datetime(2026, 11, 1, 4, 0, tzinfo=UTC)  # midnight EDT
    assert period.end_utc == datetime(2026, 11, 2, 5, 0, tzinfo=UTC)  # midnight EST
    assert hours(period) == 25


def test_today_in_the_zone_not_in_utc() -> None:
    # 2026-03-01 03:00 UTC is still 2026-02-28 in New York.
    period = resolve_period("today", NY, now=datetime(2026, 3, 1, 3, 0, tzinfo=UTC))
    assert period.label == "2026-02-28"
    assert period.start_utc == datetime(2026, 2, 28, 5, 0, tzinfo=UTC)
    assert hours(period) == 24


def test_last_7_days_across_spring_forward() -> None:
    period = resolve_period("last_7_days", NY, now=at("2026-03-10T07:00"))
    assert (period.first_day.isoformat(), period.last_day.isoformat()) == (
        "2026-03-03",
        "2026-03-09",
    )
    assert hours(period) == 7 * 24 - 1
    days = day_starts(period)
    assert len(days) == 8
    lengths = day_lengths(days)
    assert lengths == [24, 24, 24, 24, 24, 23, 24]
    assert [d.hour for d in days] == [0] * 8


def test_last_n_days() -> None:
    period = resolve_period("last_30_days", NY, now=at("2026-03-31T10:00"))
    assert (str(period.first_day), str(period.last_day)) == ("2026-03-01", "2026-03-30")
    with pytest.raises(InvalidParameter, match="between 1 and 366"):
        resolve_period("last_0_days", NY, now=at("2026-03-31T10:00"))


def test_month_to_date_on_the_first_and_last_day() -> None:
    first = resolve_period("month_to_date", NY, now=at("2026-03-01T07:00"))
    assert (str(first.first_day), str(first.last_day)) == ("2026-03-01", "2026-03-01")
    last = resolve_period("month_to_date", NY, now=at("2026-03-31T23:59"))
    assert (str(last.first_day), str(last.last_day)) == ("2026-03-01", "2026-03-31")
    assert hours(last) == 31 * 24 - 1  # March holds the spring-forward day


@pytest.mark.parametrize(
    "now, first, last, days",
    [
        ("2026-03-01T00:30", "2026-02-01", "2026-02-28", 28),
        ("2026-03-31T23:30", "2026-02-01", "2026-02-28", 28),
        ("2028-03-15T12:00", "2028-02-01", "2028-02-29", 29),  # leap year
        ("2027-01-01T00:00", "2026-12-01", "2026-12-31", 31),  # year end
        ("2026-11-15T12:00", "2026-10-01", "2026-10-31", 31),
        ("2026-12-01T06:00", "2026-11-01", "2026-11-30", 30),  # holds the fall-back day
    ],
)
def test_previous_month_at_month_and_year_ends(now: str, first: str, last: str, days: int) -> None:
    period = resolve_period("previous_month", NY, now=at(now))
    assert (str(period.first_day), str(period.last_day)) == (first, last)
    extra = {"2026-11-01": 1}.get(first, 0)
    assert hours(period) == days * 24 + extra


def test_previous_month_just_after_midnight_utc_uses_local_date() -> None:
    # 2026-04-01 02:00 UTC is still 2026-03-31 in New York: previous month is February.
    period = resolve_period("previous_month", NY, now=datetime(2026, 4, 1, 2, 0, tzinfo=UTC))
    assert str(period.first_day) == "2026-02-01"


def test_explicit_dates_are_inclusive_and_datetimes_exclusive() -> None:
    march = resolve_period("2026-03-01/2026-03-31", NY, now=at("2026-06-01T00:00"))
    assert march.start_utc == datetime(2026, 3, 1, 5, 0, tzinfo=UTC)
    assert march.end_utc == datetime(2026, 4, 1, 4, 0, tzinfo=UTC)
    assert march.label == "2026-03-01_2026-03-31"
    shift = resolve_period("2026-11-01T00:00/2026-11-01T03:00", NY, now=at("2026-12-01T00:00"))
    assert hours(shift) == 4  # the repeated 01:00 hour is inside
    aware = resolve_period("2026-03-08T00:00Z/2026-03-09T00:00Z", NY, now=at("2026-12-01T00:00"))
    assert aware.start_utc == datetime(2026, 3, 8, 0, 0, tzinfo=UTC)
    assert hours(aware) == 24


def test_day_starts_of_the_fall_back_day() -> None:
    period = resolve_period("2026-10-31/2026-11-02", NY, now=at("2026-12-01T00:00"))
    days = day_starts(period)
    lengths = day_lengths(days)
    assert lengths == [24, 25, 24]


def test_other_zones_and_a_midnight_dst_gap() -> None:
    paris = resolve_period("yesterday", "Europe/Paris", now=at("2026-03-30T08:00", "Europe/Paris"))
    assert hours(paris) == 23  # Europe moves its clocks on 2026-03-29
    # Santiago skips from 00:00 to 01:00 on 2026-09-06: the day starts at the transition.
    start = local_midnight(datetime(2026, 9, 6).date(), ZoneInfo("America/Santiago"))
    assert start.astimezone(UTC) == datetime(2026, 9, 6, 4, 0, tzinfo=UTC)
    day = resolve_period("2026-09-06/2026-09-06", "America/Santiago", now=at("2026-10-01T00:00"))
    assert hours(day) == 23


@pytest.mark.parametrize(
    "spec, zone, match",
    [
        ("last_week", NY, "is not one of yesterday, today"),
        ("2026-03-31/2026-03-01", NY, "ends before it starts"),
        ("2026-03-01", NY, "is not one of"),
        ("2026-03-01/", NY, "FROM/TO"),
        ("2026-02-30/2026-03-01", NY, "not an ISO date"),
        ("yesterday", "Mars/Olympus", "not an IANA time zone"),
        ("2024-01-01/2026-01-01", NY, "longer than 366 days"),
    ],
)
def test_bad_periods(spec: str, zone: str, match: str) -> None:
    with pytest.raises(InvalidParameter, match=match):
        resolve_period(spec, zone, now=at("2026-03-09T07:00"))
