"""Which records a campaign may dial now.

A record is dialable for a campaign when its calling list is linked to the
campaign and enabled there, the record has not expired, and its key is in no
active, unexpired exclusion list linked to the campaign (see
:func:`contact_center.storage.exclusions.key_is_excluded`; each exclusion list matches its
own ``match_field``, default ``account``).

Asked for a moment (``at``), a record is also inside the campaign's calling hours
in its own local time, in every one of its zones (:mod:`contact_center.storage.calling_hours`).
Which stored zones are open is decided in Python once per distinct ``timezone``
value of the campaign's records, and bound into the query as a list.

The functions take a connection only to resolve names to ids (and to count);
they return Core ``Select`` statements that the caller runs or wraps.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from contact_center.exceptions import ObjectNotFound
from contact_center.storage.calling_hours import (
    DEFAULT_CALLING_DAYS,
    DEFAULT_WINDOW,
    CallingHours,
    parse_calling_days,
    parse_window,
)
from contact_center.storage.exclusions import key_is_excluded, record_match_columns
from contact_center.storage.models import CallingList, Campaign, CampaignList, ListRecord, utcnow

__all__ = [
    "ZoneCount",
    "calling_hours_counts",
    "calling_hours_of",
    "dialable_counts",
    "dialable_records",
    "dialable_records_for_list",
    "has_dialable_records",
    "record_is_current",
    "set_calling_hours",
]

_records = ListRecord.__table__
_campaigns = Campaign.__table__
_calling_lists = CallingList.__table__
_campaign_lists = CampaignList.__table__


def _id_by_name(conn: Connection, table: sa.FromClause, name: str, kind: str) -> int:
    found = conn.execute(sa.select(table.c.id).where(table.c.name == name)).scalar_one_or_none()
    if found is None:
        raise ObjectNotFound(f"no {kind} named {name!r}")
    return int(found)


def _campaign_id(conn: Connection, campaign: str) -> int:
    return _id_by_name(conn, _campaigns, campaign, "campaign")


def _list_id(conn: Connection, list_name: str) -> int:
    return _id_by_name(conn, _calling_lists, list_name, "calling list")


def record_is_current(expires_at: sa.ColumnElement[Any], now: datetime) -> sa.ColumnElement[bool]:
    """``expires_at`` is empty (never expires) or still in the future at ``now``."""
    return sa.or_(expires_at.is_(None), expires_at > now)


def _campaign_select(campaign_id: int, now: datetime) -> sa.Select[Any]:
    return (
        sa.select(_records)
        .join(_campaign_lists, _campaign_lists.c.list_id == _records.c.list_id)
        .where(
            _campaign_lists.c.campaign_id == campaign_id,
            _campaign_lists.c.enabled.is_(True),
            record_is_current(_records.c.expires_at, now),
            ~key_is_excluded(record_match_columns(_records), campaign_id=campaign_id, now=now),
        )
    )


def dialable_records(
    conn: Connection,
    campaign: str,
    *,
    now: datetime | None = None,
    at: datetime | None = None,
) -> sa.Select[Any]:
    """The ``list_records`` rows that ``campaign`` may dial.

    Args:
        conn: a connection, to resolve the name (and, with ``at``, the zones).
        campaign: the campaign.
        now: the time to judge expiries and exclusions at (default: ``at``, else now).
        at: keep only the records inside the campaign's calling hours at this
            moment, in every one of their zones. Without it, calling hours do not
            apply: the campaign trigger's start check asks whether a list has
            records to dial at all, whatever the hour.

    Raises:
        ObjectNotFound: no campaign of that name.
    """
    campaign_id = _campaign_id(conn, campaign)
    stmt = _campaign_select(campaign_id, now or at or utcnow())
    if at is None:
        return stmt
    hours = _calling_hours(conn, campaign_id)
    zones = conn.scalars(
        sa.select(_records.c.timezone)
        .distinct()
        .join(_campaign_lists, _campaign_lists.c.list_id == _records.c.list_id)
        .where(_campaign_lists.c.campaign_id == campaign_id, _campaign_lists.c.enabled.is_(True))
    ).all()
    open_zones = [z for z in zones if z is not None and hours.open_for(z, at)]
    inside = [_records.c.timezone.in_(open_zones)] if open_zones else []
    if hours.open_for(None, at):
        inside.append(_records.c.timezone.is_(None))
    return stmt.where(sa.or_(*inside) if inside else sa.false())


@dataclass(frozen=True)
class ZoneCount:
    """A campaign's dialable records of one list and one stored zone, at a moment.

    Attributes:
        list_name: the calling list.
        zone: the stored ``timezone`` (several zones separated by a space), or
            ``None`` for records with no zone.
        dialable_now: records inside the calling hours at the moment.
        outside_hours: dialable records outside them.
    """

    list_name: str
    zone: str | None
    dialable_now: int
    outside_hours: int


def calling_hours_counts(conn: Connection, campaign: str, *, at: datetime) -> list[ZoneCount]:
    """The campaign's dialable records per list and zone, inside and outside calling hours.

    One grouped query; each (list, zone) group is judged once.

    Raises:
        ObjectNotFound: no campaign of that name.
    """
    campaign_id = _campaign_id(conn, campaign)
    hours = _calling_hours(conn, campaign_id)
    dialable = _campaign_select(campaign_id, at).subquery()
    groups = conn.execute(
        sa.select(_calling_lists.c.name, dialable.c.timezone, sa.func.count())
        .join(_calling_lists, _calling_lists.c.id == dialable.c.list_id)
        .group_by(_calling_lists.c.name, dialable.c.timezone)
    ).all()
    counts = []
    for list_name, zone, count in groups:
        open_now = hours.open_for(zone, at)
        counts.append(
            ZoneCount(list_name, zone, int(count) if open_now else 0, 0 if open_now else int(count))
        )
    return sorted(counts, key=lambda c: (c.list_name, c.zone or ""))


def calling_hours_of(conn: Connection, campaign: str) -> CallingHours:
    """The calling hours of ``campaign``, as stored.

    Raises:
        ObjectNotFound: no campaign of that name.
    """
    return _calling_hours(conn, _campaign_id(conn, campaign))


def set_calling_hours(
    bind: Connection | Engine,
    campaign: str,
    *,
    window: str = DEFAULT_WINDOW,
    days: str = DEFAULT_CALLING_DAYS,
    holidays: str | None = None,
    unknown_timezone: str = "skip",
) -> CallingHours:
    """Set a campaign's calling hours (each record's local time).

    Args:
        bind: an engine (a transaction of its own) or a connection.
        campaign: the campaign.
        window: the local times it may call between, e.g. ``08:00-21:00``.
        days: the days it may call on, e.g. ``mon,tue,wed,thu,fri``.
        holidays: a holiday region (``US``, ``US-NY``) whose holidays it does not
            call on, or ``None``.
        unknown_timezone: ``skip`` records with no zone, or judge them in the
            ``campaign_zone``.

    Raises:
        InvalidParameter: a value that is not valid; the message names it.
        ObjectNotFound: no campaign of that name.
    """
    from contact_center.storage.campaign_rules import parse_holiday_region
    from contact_center.storage.db import transaction

    parse_window(window)
    parse_calling_days(days)
    parse_holiday_region(holidays)
    CallingHours(unknown_timezone=unknown_timezone)  # checks the rule
    with transaction(bind) as conn:
        campaign_id = _campaign_id(conn, campaign)
        conn.execute(
            sa.update(Campaign)
            .where(Campaign.id == campaign_id)
            .values(
                calling_window=window,
                calling_days=days,
                calling_holidays=holidays or None,
                unknown_timezone=unknown_timezone,
            )
        )
        return _calling_hours(conn, campaign_id)


def _calling_hours(conn: Connection, campaign_id: int) -> CallingHours:
    from contact_center.storage.campaign_rules import parse_holiday_region

    row = conn.execute(
        sa.select(
            _campaigns.c.calling_window,
            _campaigns.c.calling_days,
            _campaigns.c.calling_holidays,
            _campaigns.c.unknown_timezone,
            _campaigns.c.time_zone,
        ).where(_campaigns.c.id == campaign_id)
    ).one()
    start, end = parse_window(row.calling_window)
    return CallingHours(
        start=start,
        end=end,
        days=parse_calling_days(row.calling_days),
        holiday_region=parse_holiday_region(row.calling_holidays),
        unknown_timezone=row.unknown_timezone,
        campaign_zone=row.time_zone,
    )


def dialable_records_for_list(
    conn: Connection,
    list_name: str,
    *,
    campaign: str | None = None,
    now: datetime | None = None,
) -> sa.Select[Any]:
    """The dialable records of one calling list.

    Args:
        conn: a connection, to resolve the names.
        list_name: the calling list.
        campaign: apply this campaign's exclusion lists (the list need not be
            enabled in it). Without it, the exclusion lists of every campaign the
            list is enabled in apply.
        now: the time to judge expiries at (default: now).

    Raises:
        ObjectNotFound: no calling list (or campaign) of that name.
    """
    list_id = _list_id(conn, list_name)
    now = now or utcnow()
    if campaign is not None:
        excluded = key_is_excluded(
            record_match_columns(_records), campaign_id=_campaign_id(conn, campaign), now=now
        )
    else:
        excluded = key_is_excluded(record_match_columns(_records), calling_list_id=list_id, now=now)
    return sa.select(_records).where(
        _records.c.list_id == list_id,
        record_is_current(_records.c.expires_at, now),
        ~excluded,
    )


def dialable_counts(
    conn: Connection, campaign: str, *, now: datetime | None = None
) -> dict[str, int]:
    """Dialable records per enabled list of ``campaign`` (lists with none count 0).

    Raises:
        ObjectNotFound: no campaign of that name.
    """
    campaign_id = _campaign_id(conn, campaign)
    dialable = _campaign_select(campaign_id, now or utcnow()).subquery()
    counts: dict[int, int] = dict(
        conn.execute(
            sa.select(dialable.c.list_id, sa.func.count()).group_by(dialable.c.list_id)
        ).all()
    )
    enabled = conn.execute(
        sa.select(_calling_lists.c.id, _calling_lists.c.name)
        .join(_campaign_lists, _campaign_lists.c.list_id == _calling_lists.c.id)
        .where(_campaign_lists.c.campaign_id == campaign_id, _campaign_lists.c.enabled.is_(True))
        .order_by(_calling_lists.c.name)
    ).all()
    return {name: int(counts.get(list_id, 0)) for list_id, name in enabled}


def has_dialable_records(conn: Connection, campaign: str, *, now: datetime | None = None) -> bool:
    """Whether at least one enabled list of ``campaign`` has a dialable record.

    Raises:
        ObjectNotFound: no campaign of that name.
    """
    stmt = dialable_records(conn, campaign, now=now).limit(1)
    return bool(conn.execute(sa.select(sa.exists(stmt))).scalar_one())
