"""``cctasks campaign hours NAME``: show or set a campaign's calling hours.

With no option it shows them; each option given replaces that one setting and keeps
the others. ``--dialable-now`` prints, per list and zone, the records inside and
outside the calling hours (``calling_hours_counts``). The database is the one the
campaign flows use (the saved ``ContactCenterDatabase`` block, else
``CCTASKS_DATABASE_URL``, else the local SQLite file).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING

import typer

from cli.main import fail

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

    from contact_center.storage.calling_hours import CallingHours


def hours_command(
    name: str = typer.Argument(..., help="The campaign's name."),
    window: str | None = typer.Option(
        None, "--window", help="Local times it may call between, e.g. 08:00-21:00."
    ),
    days: str | None = typer.Option(
        None, "--days", help="Local days it may call on: mon-fri, or mon,tue,wed,…"
    ),
    holidays: str | None = typer.Option(
        None, "--holidays", help="Holiday region whose holidays it skips (US, US-NY), or none."
    ),
    unknown_timezone: str | None = typer.Option(
        None,
        "--unknown-timezone",
        help="A record with no zone: skip it, or judge it in the campaign_zone.",
    ),
    dialable_now: bool = typer.Option(
        False, "--dialable-now", help="Count the records inside and outside the hours."
    ),
    at: str | None = typer.Option(
        None, "--at", help="With --dialable-now: the moment to count at (ISO; naive is UTC)."
    ),
) -> None:
    """Show a campaign's calling hours, or set those given (each record's local time)."""
    from contact_center.exceptions import CCTasksError, InvalidParameter
    from contact_center.storage.calling_hours import calling_days_text, parse_calling_days
    from contact_center.storage.dialing import calling_hours_of, set_calling_hours
    from flows.common.database import contact_center_engine

    try:
        moment = _moment(at, dialable_now)
        if days is not None:
            days = calling_days_text(parse_calling_days(days))
        if holidays is not None and holidays.strip().lower() == "none":
            holidays = ""
        engine = contact_center_engine()
        with engine.begin() as conn:
            hours = calling_hours_of(conn, name)
            if any(v is not None for v in (window, days, holidays, unknown_timezone)):
                hours = set_calling_hours(
                    conn,
                    name,
                    window=hours.window_text if window is None else window,
                    days=calling_days_text(hours.days) if days is None else days,
                    holidays=hours.holidays_text if holidays is None else holidays or None,
                    unknown_timezone=(
                        hours.unknown_timezone if unknown_timezone is None else unknown_timezone
                    ),
                )
        _show(name, hours)
        if moment is not None:
            _show_counts(engine, name, moment)
    except InvalidParameter as exc:
        raise fail(str(exc)) from None
    except CCTasksError as exc:
        raise fail(str(exc), code=1) from None


def _moment(at: str | None, dialable_now: bool) -> datetime | None:
    """The moment to count at, or ``None`` without ``--dialable-now``."""
    from contact_center.exceptions import InvalidParameter

    if at is not None and not dialable_now:
        raise InvalidParameter("--at needs --dialable-now")
    if not dialable_now:
        return None
    if at is None:
        return datetime.now(UTC)
    try:
        moment = datetime.fromisoformat(at)
    except ValueError:
        raise InvalidParameter(
            f"--at {at!r} must be an ISO date and time, e.g. 2026-03-09T13:30:00+00:00"
        ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _show(name: str, hours: CallingHours) -> None:
    from contact_center.storage.calling_hours import calling_days_text

    typer.echo(f"campaign {name}: calling hours in each record's local time")
    typer.echo(f"  window            {hours.window_text}")
    typer.echo(f"  days              {calling_days_text(hours.days)}")
    typer.echo(f"  holidays          {hours.holidays_text or 'none'}")
    typer.echo(
        f"  unknown timezone  {hours.unknown_timezone} (campaign zone {hours.campaign_zone})"
    )


def _show_counts(engine: Engine, name: str, moment: datetime) -> None:
    from contact_center.storage.dialing import calling_hours_counts

    with engine.connect() as conn:
        counts = calling_hours_counts(conn, name, at=moment)
    typer.echo(f"dialable at {moment.isoformat()}:")
    typer.echo(f"  {'list':<24} {'zone':<36} {'dialable now':>12} {'outside hours':>13}")
    for c in counts:
        typer.echo(
            f"  {c.list_name:<24} {c.zone or '(none)':<36} {c.dialable_now:>12} "
            f"{c.outside_hours:>13}"
        )
    typer.echo(
        f"  {'total':<24} {'':<36} {sum(c.dialable_now for c in counts):>12} "
        f"{sum(c.outside_hours for c in counts):>13}"
    )
