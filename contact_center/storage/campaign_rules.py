"""Campaign trigger rules, pure: steps, sources, results, holidays and the dialler payload.

No database and no Prefect: the ``campaign-trigger`` flow validates its parameters and
decides whether a scheduled run is skipped (an explicit skip date or a public holiday,
judged on the date in the campaign's time zone) with these functions.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import holidays as holidays_lib

from contact_center.exceptions import InvalidParameter

__all__ = [
    "RESULT_ALREADY_RUNNING",
    "RESULT_ALREADY_STOPPED",
    "RESULT_SKIPPED_HOLIDAY",
    "RESULT_STARTED",
    "RESULT_STOPPED",
    "SOURCES",
    "STEPS",
    "TARGET_STATE",
    "StepResult",
    "notification_payload",
    "parse_holiday_region",
    "parse_skip_dates",
    "skip_reason",
    "validate_source",
    "validate_step",
    "validate_time_zone",
]

STEPS = ("start", "stop")
SOURCES = ("schedule", "manual", "api")
TARGET_STATE = {"start": "running", "stop": "stopped"}

RESULT_STARTED = "started"
RESULT_STOPPED = "stopped"
RESULT_ALREADY_RUNNING = "already running"
RESULT_ALREADY_STOPPED = "already stopped"
RESULT_SKIPPED_HOLIDAY = "skipped (holiday)"


@dataclass(frozen=True)
class StepResult:
    """What a start or stop did.

    Attributes:
        campaign: the campaign's name.
        step: ``start`` or ``stop``.
        previous_state: the state before the step.
        state: the state after it.
        result: started, stopped, already running, already stopped or skipped (holiday).
        event_id: the ``campaign_events`` row written.
        occurred_at: when the step was applied (UTC).
        notify: whether the dialler must be told (the state changed, or the last change
            was never delivered); only when a notification was asked for.
        message: why the step was skipped, if it was.
    """

    campaign: str
    step: str
    previous_state: str
    state: str
    result: str
    event_id: int
    occurred_at: datetime
    notify: bool
    message: str | None = None

    @property
    def changed(self) -> bool:
        """Whether the step changed the campaign's state."""
        return self.previous_state != self.state


# --- validation (pure) -------------------------------------------------------------------


def validate_step(step: str) -> str:
    """Return ``step`` if it is ``start`` or ``stop``.

    Raises:
        InvalidParameter: any other value.
    """
    if step not in STEPS:
        raise InvalidParameter(f"step must be 'start' or 'stop', not {step!r}")
    return step


def validate_source(source: str) -> str:
    """Return ``source`` if it is ``schedule``, ``manual`` or ``api``.

    Raises:
        InvalidParameter: any other value.
    """
    if source not in SOURCES:
        raise InvalidParameter(f"source must be one of {', '.join(SOURCES)}, not {source!r}")
    return source


def validate_time_zone(name: str) -> ZoneInfo:
    """The IANA time zone ``name``.

    Raises:
        InvalidParameter: not a known IANA time zone.
    """
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise InvalidParameter(
            f"time zone {name!r} is not an IANA time zone (e.g. 'America/New_York')"
        ) from exc


def parse_skip_dates(values: Iterable[str | date] | None) -> frozenset[date]:
    """Parse explicit skip dates written as ISO dates (``2026-12-24``).

    Raises:
        InvalidParameter: a value is not an ISO date; the message names it.
    """
    if values is None:
        return frozenset()
    if isinstance(values, str):
        raise InvalidParameter(
            f"skip_dates must be a list of ISO dates, e.g. ['2026-12-24'], not {values!r}"
        )
    parsed: set[date] = set()
    for value in values:
        if isinstance(value, datetime):
            raise InvalidParameter(f"skip_dates: {value.isoformat()!r} is a time, not a date")
        if isinstance(value, date):
            parsed.add(value)
            continue
        try:
            parsed.add(date.fromisoformat(str(value).strip()))
        except ValueError as exc:
            raise InvalidParameter(
                f"skip_dates: {value!r} is not an ISO date (YYYY-MM-DD)"
            ) from exc
    return frozenset(parsed)


def parse_holiday_region(code: str | None) -> tuple[str, str | None] | None:
    """Parse a holiday region: a country (``US``) or a country and subdivision (``US-NY``).

    Returns:
        ``(country, subdivision or None)``, or ``None`` when ``code`` is empty.

    Raises:
        InvalidParameter: the ``holidays`` package does not know the country or the
            subdivision; the message names the code.
    """
    if code is None or not code.strip():
        return None
    country, _, subdivision = code.strip().partition("-")
    country = country.upper()
    supported = holidays_lib.list_supported_countries()
    if country not in supported:
        raise InvalidParameter(
            f"holidays: unknown country {country!r} in {code!r}; use an ISO 3166 code "
            "such as 'US', or a country-subdivision code such as 'US-NY'"
        )
    if not subdivision:
        return country, None
    known = {str(s).upper(): str(s) for s in supported[country]}
    if subdivision.upper() not in known:
        raise InvalidParameter(
            f"holidays: {country} has no subdivision {subdivision!r} (in {code!r}); "
            f"known: {', '.join(sorted(known.values()))}"
        )
    return country, known[subdivision.upper()]


def skip_reason(
    when: datetime,
    time_zone: str,
    *,
    skip_dates: frozenset[date] = frozenset(),
    holiday_region: tuple[str, str | None] | None = None,
) -> str | None:
    """Why a trigger scheduled at ``when`` must be skipped, or ``None``.

    The date is the one in the campaign's time zone: a start scheduled at 08:00 in
    New York on 24 December is 13:00 UTC, and a stop at 20:00 is already the 25th in UTC,
    yet both belong to the 24th.

    Args:
        when: the run's scheduled time (aware; naive means UTC).
        time_zone: the campaign's IANA time zone.
        skip_dates: explicit dates to skip.
        holiday_region: from :func:`parse_holiday_region`.
    """
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    local_day = when.astimezone(validate_time_zone(time_zone)).date()
    if local_day in skip_dates:
        return f"{local_day.isoformat()} is in skip_dates"
    if holiday_region is not None:
        country, subdivision = holiday_region
        calendar = holidays_lib.country_holidays(country, subdiv=subdivision, years=local_day.year)
        name = calendar.get(local_day)
        if name is not None:
            region = f"{country}-{subdivision}" if subdivision else country
            return f"{local_day.isoformat()} is a holiday in {region}: {name}"
    return None


def notification_payload(result: StepResult) -> dict[str, Any]:
    """The JSON body that tells the dialler about a campaign's new state."""
    return {
        "campaign": result.campaign,
        "step": result.step,
        "time": result.occurred_at.astimezone(UTC).isoformat(),
        "state": result.state,
    }
