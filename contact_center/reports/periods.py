"""Report periods: named spans of whole days in the contact centre's time zone.

A period is a half-open span ``[start, end)`` of aware datetimes. Named periods
are whole local days, so that "yesterday" on the day after a DST change is 23 or
25 hours long and starts at local midnight, as a supervisor expects::

    yesterday        the day before today
    today            today, midnight to midnight
    last_7_days      the 7 whole days before today (today is not included)
    last_<N>_days    the N whole days before today (1 <= N <= 366)
    month_to_date    the first of this month up to the end of today
    previous_month   the whole calendar month before this one
    FROM/TO          explicit: dates (``2026-03-01/2026-03-31``, TO inclusive) or
                     datetimes (``2026-03-01T06:00/2026-03-01T18:00``, TO exclusive);
                     naive values are in the centre's time zone

Everything here is pure: "now" is an argument, so tests pin it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from contact_center.exceptions import InvalidParameter
from contact_center.storage.campaign_rules import validate_time_zone

__all__ = ["NAMED_PERIODS", "Period", "day_starts", "local_midnight", "resolve_period"]

NAMED_PERIODS = ("yesterday", "today", "last_7_days", "month_to_date", "previous_month")
_LAST_N_DAYS = re.compile(r"^last_(\d{1,3})_days$")
_MAX_DAYS = 366


@dataclass(frozen=True)
class Period:
    """A half-open span of time ``[start, end)`` in a time zone.

    Attributes:
        spec: the period as the user wrote it (``yesterday``, ``2026-03-01/2026-03-31``).
        start: the first instant, aware, in ``time_zone``.
        end: the first instant after the period, aware, in ``time_zone``.
        time_zone: the IANA zone the period was computed in.
    """

    spec: str
    start: datetime
    end: datetime
    time_zone: str

    @property
    def start_utc(self) -> datetime:
        """``start`` in UTC, for database queries."""
        return self.start.astimezone(UTC)

    @property
    def end_utc(self) -> datetime:
        """``end`` in UTC, for database queries."""
        return self.end.astimezone(UTC)

    @property
    def first_day(self) -> date:
        """The local date of the first instant."""
        return self.start.date()

    @property
    def last_day(self) -> date:
        """The local date of the last instant inside the period."""
        return (self.end - timedelta(microseconds=1)).astimezone(self.start.tzinfo).date()

    @property
    def label(self) -> str:
        """A short label for titles and file names: ``2026-03-08`` or ``2026-03-01_2026-03-31``.

        Partial days (explicit datetimes) show their times as well.
        """
        if _is_midnight(self.start) and _is_midnight(self.end):
            if self.first_day == self.last_day:
                return self.first_day.isoformat()
            return f"{self.first_day.isoformat()}_{self.last_day.isoformat()}"
        fmt = "%Y-%m-%dT%H%M"
        return f"{self.start.strftime(fmt)}_{self.end.strftime(fmt)}"

    @property
    def description(self) -> str:
        """A readable sentence part: ``2026-03-01 to 2026-03-31 (America/New_York)``."""
        if _is_midnight(self.start) and _is_midnight(self.end):
            if self.first_day == self.last_day:
                return f"{self.first_day.isoformat()} ({self.time_zone})"
            return f"{self.first_day.isoformat()} to {self.last_day.isoformat()} ({self.time_zone})"
        fmt = "%Y-%m-%d %H:%M"
        return f"{self.start.strftime(fmt)} to {self.end.strftime(fmt)} ({self.time_zone})"


def _is_midnight(moment: datetime) -> bool:
    return moment.timetz().replace(tzinfo=None) == time(0)


def local_midnight(day: date, tz: ZoneInfo) -> datetime:
    """The first instant of ``day`` in ``tz``.

    Where midnight does not exist (a DST gap at 00:00, as in America/Santiago) the
    day starts at the transition; ``fold=0`` gives exactly that instant, so it is
    normalised through UTC to carry the right offset.
    """
    naive = datetime.combine(day, time(0))
    return naive.replace(tzinfo=tz).astimezone(UTC).astimezone(tz)


def day_starts(period: Period) -> list[datetime]:
    """The local midnights that split ``period`` into days, plus its end.

    The first element is ``period.start`` and the last is ``period.end``, so
    consecutive pairs are the (possibly partial) days of the period.
    """
    tz = validate_time_zone(period.time_zone)
    bounds = [period.start]
    day = period.start.astimezone(tz).date() + timedelta(days=1)
    while True:
        midnight = local_midnight(day, tz)
        if midnight >= period.end:
            break
        bounds.append(midnight)
        day += timedelta(days=1)
    bounds.append(period.end)
    return bounds


def _days(spec: str, first: date, after_last: date, tz: ZoneInfo, tz_name: str) -> Period:
    return Period(spec, local_midnight(first, tz), local_midnight(after_last, tz), tz_name)


def _previous_month(today: date) -> tuple[date, date]:
    this_month = today.replace(day=1)
    first = (this_month - timedelta(days=1)).replace(day=1)
    return first, this_month


def _parse_bound(text: str, tz: ZoneInfo, spec: str) -> tuple[datetime, bool]:
    """A bound of an explicit period and whether it was a bare date."""
    text = text.strip()
    try:
        if re.fullmatch(r"\d{4}-\d{2}-\d{2}", text):
            return local_midnight(date.fromisoformat(text), tz), True
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise InvalidParameter(
            f"period {spec!r}: {text!r} is not an ISO date (2026-03-01) or datetime "
            "(2026-03-01T06:00)"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=tz).astimezone(UTC)
    return moment.astimezone(tz), False


def _explicit(spec: str, tz: ZoneInfo, tz_name: str) -> Period:
    first, sep, last = spec.partition("/")
    if not sep or not first.strip() or not last.strip() or "/" in last:
        raise InvalidParameter(f"period {spec!r} must look like FROM/TO")
    start, _ = _parse_bound(first, tz, spec)
    end, end_is_date = _parse_bound(last, tz, spec)
    if end_is_date:
        # A TO date is inclusive: "2026-03-01/2026-03-31" is the whole of March.
        end = local_midnight(end.date() + timedelta(days=1), tz)
    if end <= start:
        raise InvalidParameter(f"period {spec!r} ends before it starts")
    if end - start > timedelta(days=_MAX_DAYS + 1):
        raise InvalidParameter(f"period {spec!r} is longer than {_MAX_DAYS} days")
    return Period(spec, start, end, tz_name)


def resolve_period(spec: str, time_zone: str, now: datetime) -> Period:
    """Turn a period name or ``FROM/TO`` into a :class:`Period`.

    Args:
        spec: ``yesterday``, ``today``, ``last_7_days`` (or ``last_<N>_days``),
            ``month_to_date``, ``previous_month``, or ``FROM/TO``.
        time_zone: the contact centre's IANA zone; days start at its midnight.
        now: the current instant, aware (a run passes its scheduled start time).

    Raises:
        InvalidParameter: an unknown name, a bad zone, or a malformed or reversed span.
    """
    if now.tzinfo is None:
        raise InvalidParameter("now must be an aware datetime")
    tz = validate_time_zone(time_zone)
    text = (spec or "").strip()
    today = now.astimezone(tz).date()
    one = timedelta(days=1)
    if text == "today":
        return _days(text, today, today + one, tz, time_zone)
    if text == "yesterday":
        return _days(text, today - one, today, tz, time_zone)
    if text == "month_to_date":
        return _days(text, today.replace(day=1), today + one, tz, time_zone)
    if text == "previous_month":
        first, after = _previous_month(today)
        return _days(text, first, after, tz, time_zone)
    match = _LAST_N_DAYS.match(text)
    if match:
        count = int(match.group(1))
        if not 1 <= count <= _MAX_DAYS:
            raise InvalidParameter(f"period {spec!r}: N must be between 1 and {_MAX_DAYS}")
        return _days(text, today - timedelta(days=count), today, tz, time_zone)
    if "/" in text:
        return _explicit(text, tz, time_zone)
    raise InvalidParameter(
        f"period {spec!r} is not one of {', '.join(NAMED_PERIODS)}, last_<N>_days or FROM/TO "
        "(e.g. 2026-03-01/2026-03-31)"
    )
