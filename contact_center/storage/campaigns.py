"""Outbound campaigns: lookup, linked lists and the readiness check before a start.

This is the lookup and readiness half of the ``campaign-trigger`` flow, and what the
demo seeding calls to create campaigns (:func:`ensure_campaign`, :func:`link_list`,
:func:`link_exclusion_list`). No Prefect here: functions take a SQLAlchemy
``Connection`` (or an ``Engine``, for the seeding helpers) and plain values.

Starting and stopping, with the audit trail, is in
:mod:`contact_center.storage.campaign_steps`; the pure rules (steps, holidays) in
:mod:`contact_center.storage.campaign_rules`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from contact_center.exceptions import CampaignStateError, InvalidParameter, ObjectNotFound
from contact_center.parsing.names import check_name
from contact_center.storage.campaign_rules import TARGET_STATE, validate_time_zone
from contact_center.storage.db import transaction
from contact_center.storage.models import (
    CallingList,
    Campaign,
    CampaignExclusionList,
    CampaignList,
    ExclusionList,
    utcnow,
)

__all__ = [
    "CampaignInfo",
    "ListReadiness",
    "check_start",
    "ensure_campaign",
    "get_campaign",
    "link_exclusion_list",
    "link_list",
    "list_readiness",
    "set_list_enabled",
]

# Typed as Tables: the declarative ``__table__`` attribute is typed as a FromClause.
_campaigns = cast(sa.Table, Campaign.__table__)
_calling_lists = cast(sa.Table, CallingList.__table__)
_campaign_lists = cast(sa.Table, CampaignList.__table__)
_exclusion_lists = cast(sa.Table, ExclusionList.__table__)
_campaign_exclusions = cast(sa.Table, CampaignExclusionList.__table__)


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


# --- seeding and lookup --------------------------------------------------------------------


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
