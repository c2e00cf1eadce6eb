"""Outbound campaigns: lookup, linked lists, start/stop with an audit trail, holidays.

This is the domain half of the ``campaign-trigger`` flow, and what the demo seeding
calls to create campaigns (:func:`ensure_campaign`, :func:`link_list`,
:func:`link_exclusion_list`). No Prefect here: functions take a SQLAlchemy
``Connection`` (or an ``Engine``, for the seeding helpers) and plain values.

A start or stop is one transaction: a compare-and-set ``UPDATE`` of the campaign's
state (which takes the write lock first, so concurrent triggers serialise) and a
``campaign_events`` row. Repeating a step changes nothing and records
"already running" / "already stopped". A holiday records "skipped (holiday)".
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any, cast
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import holidays as holidays_lib
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from contact_center.exceptions import CampaignStateError, InvalidParameter, ObjectNotFound
from contact_center.parsing.names import check_name
from contact_center.storage.models import (
    CallingList,
    Campaign,
    CampaignEvent,
    CampaignExclusionList,
    CampaignList,
    ExclusionList,
    utcnow,
)

__all__ = [
    "CampaignInfo",
    "EventRow",
    "ListReadiness",
    "RESULT_ALREADY_RUNNING",
    "RESULT_ALREADY_STOPPED",
    "RESULT_SKIPPED_HOLIDAY",
    "RESULT_STARTED",
    "RESULT_STOPPED",
    "SOURCES",
    "STEPS",
    "StepResult",
    "apply_campaign_step",
    "campaign_events",
    "check_start",
    "ensure_campaign",
    "get_campaign",
    "link_exclusion_list",
    "link_list",
    "list_readiness",
    "mark_notified",
    "notification_payload",
    "parse_holiday_region",
    "parse_skip_dates",
    "record_skip",
    "set_list_enabled",
    "skip_reason",
    "transaction",
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

# Typed as Tables: the declarative ``__table__`` attribute is typed as a FromClause.
_campaigns = cast(sa.Table, Campaign.__table__)
_events = cast(sa.Table, CampaignEvent.__table__)
_calling_lists = cast(sa.Table, CallingList.__table__)
_campaign_lists = cast(sa.Table, CampaignList.__table__)
_exclusion_lists = cast(sa.Table, ExclusionList.__table__)
_campaign_exclusions = cast(sa.Table, CampaignExclusionList.__table__)

_OTHER_STATE = {"running": "stopped", "stopped": "running"}
_CHANGED = {"start": RESULT_STARTED, "stop": RESULT_STOPPED}
_UNCHANGED = {"start": RESULT_ALREADY_RUNNING, "stop": RESULT_ALREADY_STOPPED}


@dataclass(frozen=True)
class CampaignInfo:
    """A campaign as stored.

    Attributes:
        id: its database id.
        name: its unique name.
        state: ``running`` or ``stopped``.
        time_zone: its IANA time zone, in which holidays and schedules are read.
    """

    id: int
    name: str
    state: str
    time_zone: str


@dataclass(frozen=True)
class ListReadiness:
    """A calling list linked to a campaign, and how many of its records can be dialled.

    Attributes:
        list_name: the calling list.
        enabled: whether the list is enabled for the campaign.
        dialable: records that can be dialled now (0 for a disabled list).
    """

    list_name: str
    enabled: bool
    dialable: int


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


@dataclass(frozen=True)
class EventRow:
    """One audit row of a campaign (see ``campaign_events``)."""

    id: int
    campaign: str
    action: str
    source: str
    occurred_at: datetime
    flow_run_id: str | None
    result: str
    notified: bool | None
    message: str | None


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


# --- seeding and lookup --------------------------------------------------------------------


@contextmanager
def transaction(bind: Connection | Engine) -> Iterator[Connection]:
    """A connection in a transaction: a new one for an engine, the caller's otherwise.

    With a connection already in a transaction, the caller commits; otherwise the
    block's work is committed at its end, or rolled back if it raises.
    """
    if isinstance(bind, Engine):
        with bind.begin() as conn:
            yield conn
    elif bind.in_transaction():
        yield bind
    else:
        with bind.begin():
            yield bind


# The earlier private name, still imported elsewhere.
_transaction = transaction


def _row_to_info(row: Any) -> CampaignInfo:
    return CampaignInfo(id=row.id, name=row.name, state=row.state, time_zone=row.time_zone)


def _select_campaign(name: str) -> sa.Select[Any]:
    table = _campaigns
    return sa.select(table.c.id, table.c.name, table.c.state, table.c.time_zone).where(
        table.c.name == name
    )


def get_campaign(conn: Connection, name: str) -> CampaignInfo:
    """The campaign called ``name``.

    Raises:
        ObjectNotFound: there is no such campaign; the message names it.
    """
    row = conn.execute(_select_campaign(name)).first()
    if row is None:
        raise ObjectNotFound(f"campaign {name!r} does not exist")
    return _row_to_info(row)


def ensure_campaign(
    bind: Connection | Engine,
    name: str,
    *,
    time_zone: str = "UTC",
    state: str | None = None,
) -> CampaignInfo:
    """Create the campaign ``name`` if it is missing; set its time zone (and state).

    Seeding is idempotent: an existing campaign keeps its state unless ``state`` is
    given, and gets ``time_zone``. No event is written: seeding is not a trigger.

    Args:
        bind: an engine (a transaction of its own) or a connection.
        name: the campaign's name.
        time_zone: its IANA time zone, e.g. ``America/New_York``.
        state: ``running`` or ``stopped``; ``None`` keeps it (new: ``stopped``).

    Raises:
        InvalidParameter: empty name, unknown time zone or state.
    """
    check_name("campaign", name)
    validate_time_zone(time_zone)
    if state is not None and state not in TARGET_STATE.values():
        raise InvalidParameter(f"state must be 'running' or 'stopped', not {state!r}")
    table = _campaigns
    with transaction(bind) as conn:
        row = conn.execute(_select_campaign(name)).first()
        if row is None:
            conn.execute(
                sa.insert(table).values(
                    name=name,
                    time_zone=time_zone,
                    state=state or "stopped",
                    created_at=utcnow(),
                    updated_at=utcnow(),
                )
            )
        else:
            values: dict[str, Any] = {"time_zone": time_zone}
            if state is not None:
                values["state"] = state
            if any(getattr(row, key) != value for key, value in values.items()):
                conn.execute(
                    sa.update(table)
                    .where(table.c.id == row.id)
                    .values(**values, updated_at=utcnow())
                )
        return _row_to_info(conn.execute(_select_campaign(name)).one())


def _ensure_named(conn: Connection, table: sa.Table, name: str) -> int:
    found = conn.execute(sa.select(table.c.id).where(table.c.name == name)).scalar()
    if found is not None:
        return int(found)
    return int(conn.execute(sa.insert(table).values(name=name).returning(table.c.id)).scalar_one())


def link_list(
    bind: Connection | Engine, campaign: str, list_name: str, *, enabled: bool = True
) -> None:
    """Link the calling list ``list_name`` to ``campaign`` (creating an empty list if needed).

    Linking again only sets ``enabled``.

    Raises:
        ObjectNotFound: no such campaign.
    """
    with transaction(bind) as conn:
        campaign_id = get_campaign(conn, campaign).id
        list_id = _ensure_named(conn, _calling_lists, list_name)
        links = _campaign_lists
        key = (links.c.campaign_id == campaign_id) & (links.c.list_id == list_id)
        if conn.execute(sa.select(links.c.list_id).where(key)).first() is None:
            conn.execute(
                sa.insert(links).values(campaign_id=campaign_id, list_id=list_id, enabled=enabled)
            )
        else:
            conn.execute(sa.update(links).where(key).values(enabled=enabled))


def set_list_enabled(
    bind: Connection | Engine, campaign: str, list_name: str, enabled: bool
) -> None:
    """Enable or disable a calling list already linked to ``campaign``.

    Raises:
        ObjectNotFound: no such campaign, or the list is not linked to it.
    """
    with transaction(bind) as conn:
        campaign_id = get_campaign(conn, campaign).id
        links, lists = _campaign_lists, _calling_lists
        list_id = conn.execute(sa.select(lists.c.id).where(lists.c.name == list_name)).scalar()
        changed = conn.execute(
            sa.update(links)
            .where((links.c.campaign_id == campaign_id) & (links.c.list_id == list_id))
            .values(enabled=enabled)
        ).rowcount
        if not changed:
            raise ObjectNotFound(
                f"calling list {list_name!r} is not linked to campaign {campaign!r}"
            )


def link_exclusion_list(bind: Connection | Engine, campaign: str, exclusion_list: str) -> None:
    """Make the exclusion list ``exclusion_list`` apply to ``campaign`` (creating it if needed).

    Raises:
        ObjectNotFound: no such campaign.
    """
    with transaction(bind) as conn:
        campaign_id = get_campaign(conn, campaign).id
        list_id = _ensure_named(conn, _exclusion_lists, exclusion_list)
        links = _campaign_exclusions
        key = (links.c.campaign_id == campaign_id) & (links.c.exclusion_list_id == list_id)
        if conn.execute(sa.select(links.c.campaign_id).where(key)).first() is None:
            conn.execute(
                sa.insert(links).values(campaign_id=campaign_id, exclusion_list_id=list_id)
            )


# --- the check -----------------------------------------------------------------------------


def list_readiness(
    conn: Connection, campaign: str, *, now: datetime | None = None
) -> list[ListReadiness]:
    """Each calling list linked to ``campaign``, enabled or not, with its dialable records.

    Raises:
        ObjectNotFound: no such campaign.
    """
    from contact_center.storage.dialing import dialable_counts

    info = get_campaign(conn, campaign)
    links, lists = _campaign_lists, _calling_lists
    linked = conn.execute(
        sa.select(lists.c.name, links.c.enabled)
        .join(links, links.c.list_id == lists.c.id)
        .where(links.c.campaign_id == info.id)
        .order_by(lists.c.name)
    ).all()
    counts = dialable_counts(conn, campaign, now=now)
    return [
        ListReadiness(
            list_name=row.name,
            enabled=bool(row.enabled),
            dialable=counts.get(row.name, 0) if row.enabled else 0,
        )
        for row in linked
    ]


def _describe(lists: Sequence[ListReadiness]) -> str:
    if not lists:
        return "it has no calling lists"
    parts = [
        f"{item.list_name} ({item.dialable} dialable)"
        if item.enabled
        else f"{item.list_name} (disabled)"
        for item in lists
    ]
    return "lists: " + ", ".join(parts)


def check_start(
    conn: Connection, campaign: str, *, allow_empty: bool = False, now: datetime | None = None
) -> list[ListReadiness]:
    """Check that ``campaign`` can start: at least one enabled list with dialable records.

    Args:
        conn: a connection.
        campaign: the campaign's name.
        allow_empty: start anyway when there is nothing to dial.
        now: the time at which records and exclusions are judged (default: now).

    Returns:
        The readiness of each linked list.

    Raises:
        ObjectNotFound: no such campaign.
        CampaignStateError: nothing to dial and not ``allow_empty``; names the lists.
    """
    lists = list_readiness(conn, campaign, now=now)
    if not allow_empty and not any(item.enabled and item.dialable > 0 for item in lists):
        raise CampaignStateError(
            f"campaign {campaign!r} cannot start: no enabled calling list has dialable "
            f"records ({_describe(lists)}); set allow_empty to start it anyway"
        )
    return lists


# --- the apply ----------------------------------------------------------------------------


def _insert_event(
    conn: Connection,
    campaign_id: int,
    *,
    action: str,
    source: str,
    occurred_at: datetime,
    flow_run_id: str | None,
    result: str,
    notified: bool | None,
    message: str | None = None,
) -> int:
    table = _events
    return int(
        conn.execute(
            sa.insert(table)
            .values(
                campaign_id=campaign_id,
                action=action,
                source=source,
                occurred_at=occurred_at,
                flow_run_id=flow_run_id,
                result=result,
                notified=notified,
                message=message,
            )
            .returning(table.c.id)
        ).scalar_one()
    )


def _last_change_undelivered(conn: Connection, campaign_id: int) -> bool:
    """Whether the dialler missed the newest state change.

    The newest event that changed the state or carried a notification tells: a later
    repeat that delivered the (same) state makes up for a failed one.
    """
    events = _events
    notified = conn.execute(
        sa.select(events.c.notified)
        .where(
            (events.c.campaign_id == campaign_id)
            & (
                events.c.result.in_([RESULT_STARTED, RESULT_STOPPED])
                | events.c.notified.is_not(None)
            )
        )
        .order_by(events.c.id.desc())
        .limit(1)
    ).first()
    return notified is not None and notified[0] is False


def apply_campaign_step(
    conn: Connection,
    campaign: str,
    step: str,
    *,
    source: str = "schedule",
    flow_run_id: str | None = None,
    notify: bool = False,
    now: datetime | None = None,
) -> StepResult:
    """Start or stop ``campaign`` and write the audit event, in one transaction.

    Idempotent: a step that finds the campaign already in the target state changes
    nothing and records "already running" / "already stopped". A manual step touches
    only the campaign's state, never its schedules.

    Args:
        conn: a connection (a transaction is begun if none is open).
        campaign: the campaign's name.
        step: ``start`` or ``stop``.
        source: ``schedule``, ``manual`` or ``api``.
        flow_run_id: the Prefect flow run that applies the step, for the audit.
        notify: whether a dialler notification will follow; the event is then written
            with ``notified = false`` until :func:`mark_notified` says otherwise.
        now: the time of the step (default: now).

    Raises:
        ObjectNotFound: no such campaign.
        InvalidParameter: unknown step or source.
    """
    validate_step(step)
    validate_source(source)
    occurred_at = now or utcnow()
    target = TARGET_STATE[step]
    with transaction(conn) as tx:
        # Write first: the UPDATE takes the row lock (PostgreSQL) or the write lock
        # (SQLite) before anything is read, so two triggers at once serialise and the
        # second one finds the state already changed. On SQLite, reading first would
        # make the second writer fail with "database is locked" instead of waiting.
        changed = bool(
            tx.execute(
                sa.update(_campaigns)
                .where((_campaigns.c.name == campaign) & (_campaigns.c.state != target))
                .values(state=target, updated_at=occurred_at)
            ).rowcount
        )
        info = get_campaign(tx, campaign)
        # There are two states, so a change came from the other one.
        previous = _OTHER_STATE[target] if changed else target
        must_notify = notify and (changed or _last_change_undelivered(tx, info.id))
        result = _CHANGED[step] if changed else _UNCHANGED[step]
        event_id = _insert_event(
            tx,
            info.id,
            action=step,
            source=source,
            occurred_at=occurred_at,
            flow_run_id=flow_run_id,
            result=result,
            notified=False if must_notify else None,
        )
    return StepResult(
        campaign=campaign,
        step=step,
        previous_state=previous,
        state=target,
        result=result,
        event_id=event_id,
        occurred_at=occurred_at,
        notify=must_notify,
    )


def record_skip(
    conn: Connection,
    campaign: str,
    step: str,
    *,
    reason: str,
    source: str = "schedule",
    flow_run_id: str | None = None,
    now: datetime | None = None,
) -> StepResult:
    """Record that a step was skipped for a holiday; the campaign's state is unchanged.

    Raises:
        ObjectNotFound: no such campaign.
    """
    validate_step(step)
    validate_source(source)
    occurred_at = now or utcnow()
    with transaction(conn) as tx:
        info = get_campaign(tx, campaign)
        event_id = _insert_event(
            tx,
            info.id,
            action=step,
            source=source,
            occurred_at=occurred_at,
            flow_run_id=flow_run_id,
            result=RESULT_SKIPPED_HOLIDAY,
            notified=None,
            message=reason,
        )
    return StepResult(
        campaign=campaign,
        step=step,
        previous_state=info.state,
        state=info.state,
        result=RESULT_SKIPPED_HOLIDAY,
        event_id=event_id,
        occurred_at=occurred_at,
        notify=False,
        message=reason,
    )


def mark_notified(
    conn: Connection, event_id: int, delivered: bool, message: str | None = None
) -> None:
    """Record whether the dialler got the notification of event ``event_id``."""
    table = _events
    values: dict[str, Any] = {"notified": delivered}
    if message is not None:
        values["message"] = message
    with transaction(conn) as tx:
        tx.execute(sa.update(table).where(table.c.id == event_id).values(**values))


def campaign_events(conn: Connection, campaign: str) -> list[EventRow]:
    """The audit of ``campaign``, oldest first.

    Raises:
        ObjectNotFound: no such campaign.
    """
    info = get_campaign(conn, campaign)
    table = _events
    rows = conn.execute(
        sa.select(table).where(table.c.campaign_id == info.id).order_by(table.c.id)
    ).all()
    return [
        EventRow(
            id=row.id,
            campaign=info.name,
            action=row.action,
            source=row.source,
            occurred_at=row.occurred_at,
            flow_run_id=row.flow_run_id,
            result=row.result,
            notified=row.notified,
            message=row.message,
        )
        for row in rows
    ]
