"""Which records a campaign may dial now.

A record is dialable for a campaign when its calling list is linked to the
campaign and enabled there, the record has not expired, and its key is in no
active, unexpired exclusion list linked to the campaign (see
:func:`contact_center.storage.exclusions.key_is_excluded`; each exclusion list matches its
own ``match_field``, default ``account``).

The functions take a connection only to resolve names to ids (and to count);
they return Core ``Select`` statements that the caller runs or wraps.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from contact_center.exceptions import ObjectNotFound
from contact_center.storage.exclusions import key_is_excluded, record_match_columns
from contact_center.storage.models import CallingList, Campaign, CampaignList, ListRecord, utcnow

__all__ = [
    "dialable_counts",
    "dialable_records",
    "dialable_records_for_list",
    "has_dialable_records",
    "record_is_current",
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
    conn: Connection, campaign: str, *, now: datetime | None = None
) -> sa.Select[Any]:
    """The ``list_records`` rows that ``campaign`` may dial at ``now`` (default: now).

    Raises:
        ObjectNotFound: no campaign of that name.
    """
    return _campaign_select(_campaign_id(conn, campaign), now or utcnow())


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
