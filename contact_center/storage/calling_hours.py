"""A campaign's calling hours: when, in a record's local time, it may be called.

Pure: no database and no Prefect. :mod:`contact_center.storage.dialing` asks
:meth:`CallingHours.open_for` once per distinct stored ``timezone`` value, never
once per record.

A record is callable at a moment when, in **every** one of its zones (a record
whose area code or state spans two zones has both):

- the local time is inside the window (``start`` included, ``end`` excluded);
- the local day is one of the campaign's calling days;
- the local day is not a holiday of the campaign's holiday region, if it has one.

A record with no zone is callable only when the campaign says so:
``unknown_timezone: campaign_zone`` judges it in the campaign's own time zone;
``skip`` (the default) never calls it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time
from functools import cache
from typing import Any

import holidays as holidays_lib

from contact_center.exceptions import InvalidParameter
from contact_center.parsing.record_zones import canonical_zone, split_zones

__all__ = [
    "DAY_NAMES",
    "DEFAULT_CALLING_DAYS",
    "DEFAULT_WINDOW",
    "UNKNOWN_TIMEZONE_RULES",
    "CallingHours",
    "calling_days_text",
    "parse_calling_days",
    "parse_window",
]

#: The days of the week as written in ``calling_days``, Monday first.
DAY_NAMES = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
#: Weekdays.
DEFAULT_CALLING_DAYS = "mon,tue,wed,thu,fri"
#: 8 a.m. to 9 p.m. at the called party's location (the US telemarketing rule).
DEFAULT_WINDOW = "08:00-21:00"
#: What a campaign does with a record that has no zone.
UNKNOWN_TIMEZONE_RULES = ("skip", "campaign_zone")


def parse_window(text: str) -> tuple[time, time]:
    """``"08:00-21:00"`` as (start, end).

    Raises:
        InvalidParameter: not two ``HH:MM`` times with the start first.
    """
    start_text, _, end_text = str(text).partition("-")
    try:
        start, end = time.fromisoformat(start_text.strip()), time.fromisoformat(end_text.strip())
    except ValueError:
        raise InvalidParameter(
            f"calling_window {text!r} must be two local times, e.g. {DEFAULT_WINDOW!r}"
        ) from None
    if start >= end:
        raise InvalidParameter(f"calling_window {text!r} must start before it ends")
    return start, end


def parse_calling_days(text: str) -> frozenset[int]:
    """``"mon,tue,wed"`` or ``"mon-fri"`` (or both: ``"mon-wed,sat"``) as weekday numbers.

    Monday is 0. A range runs forward through the week, so ``"fri-mon"`` is Friday
    to Monday.

    Raises:
        InvalidParameter: an unknown day name, or none at all.
    """
    days: set[int] = set()
    for part in (p.strip() for p in str(text).split(",")):
        if not part:
            continue
        first, dash, last = part.partition("-")
        names = [n.strip().lower()[:3] for n in (first, last if dash else first)]
        if any(n not in DAY_NAMES for n in names):
            days.clear()
            break
        start, end = (DAY_NAMES.index(n) for n in names)
        days.update((start + i) % 7 for i in range((end - start) % 7 + 1))
    if not days:
        raise InvalidParameter(
            f"calling_days {text!r} must list days of the week, e.g. {DEFAULT_CALLING_DAYS!r} "
            "or 'mon-fri'"
        )
    return frozenset(days)


def calling_days_text(days: frozenset[int]) -> str:
    """Weekday numbers as stored and shown: ``"mon,tue,wed,thu,fri"``."""
    return ",".join(DAY_NAMES[d] for d in sorted(days))


@dataclass(frozen=True)
class CallingHours:
    """A campaign's calling hours.

    Attributes:
        start: the local time calls may start (included).
        end: the local time calls must end by (excluded).
        days: the weekdays it calls on (Monday is 0).
        holiday_region: ``(country, subdivision or None)`` whose holidays it does
            not call on (``campaigns.parse_holiday_region``), or ``None``.
        unknown_timezone: ``skip`` or ``campaign_zone``.
        campaign_zone: the campaign's own IANA zone.
    """

    start: time = time(8)
    end: time = time(21)
    days: frozenset[int] = field(default_factory=lambda: frozenset(range(5)))
    holiday_region: tuple[str, str | None] | None = None
    unknown_timezone: str = "skip"
    campaign_zone: str = "UTC"

    def __post_init__(self) -> None:
        if self.unknown_timezone not in UNKNOWN_TIMEZONE_RULES:
            raise InvalidParameter(
                f"unknown_timezone {self.unknown_timezone!r} is not one of "
                + ", ".join(UNKNOWN_TIMEZONE_RULES)
            )

    @property
    def window_text(self) -> str:
        """The window as written in ``calling_window``: ``"08:00-21:00"``."""
        return f"{self.start:%H:%M}-{self.end:%H:%M}"

    @property
    def holidays_text(self) -> str | None:
        """The holiday region as written in ``calling_holidays`` (``US-NY``), or ``None``."""
        if self.holiday_region is None:
            return None
        return "-".join(p for p in self.holiday_region if p)

    def open_for(self, zones: str | None, at: datetime) -> bool:
        """Whether a record whose stored ``timezone`` is ``zones`` may be called at ``at``.

        Args:
            zones: one IANA name or several separated by spaces; ``None`` or blank
                for a record with no zone.
            at: the moment (aware; naive means UTC).
        """
        names = split_zones(zones)
        if not names:
            if self.unknown_timezone == "skip":
                return False
            names = (self.campaign_zone,)
        return all(self.open_in(name, at) for name in names)

    def open_in(self, zone: str, at: datetime) -> bool:
        """Whether the window is open at ``at`` in the one zone ``zone``.

        An unknown zone name is never open: a record is not called on a guess.
        """
        name = canonical_zone(zone)
        if name is None:
            return False
        local = (at if at.tzinfo else at.replace(tzinfo=UTC)).astimezone(_zone(name))
        if local.weekday() not in self.days or not self.start <= local.time() < self.end:
            return False
        return not self._holiday(local.date())

    def _holiday(self, day: date) -> bool:
        if self.holiday_region is None:
            return False
        country, subdivision = self.holiday_region
        return day in _holidays(country, subdivision, day.year)


@cache
def _zone(name: str) -> Any:
    from zoneinfo import ZoneInfo

    return ZoneInfo(name)


@cache
def _holidays(country: str, subdivision: str | None, year: int) -> Any:
    return holidays_lib.country_holidays(country, subdiv=subdivision, years=year)
