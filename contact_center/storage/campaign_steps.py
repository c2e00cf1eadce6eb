"""Starting and stopping a campaign, with its audit trail (``campaign_events``).

A start or stop is one transaction: a compare-and-set ``UPDATE`` of the campaign's
state (which takes the write lock first, so concurrent triggers serialise) and a
``campaign_events`` row. Repeating a step changes nothing and records
"already running" / "already stopped". A holiday records "skipped (holiday)".
No Prefect here: functions take a SQLAlchemy ``Connection`` and plain values.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from contact_center.storage.campaign_rules import (
    RESULT_ALREADY_RUNNING,
    RESULT_ALREADY_STOPPED,
    RESULT_SKIPPED_HOLIDAY,
    RESULT_STARTED,
    RESULT_STOPPED,
    TARGET_STATE,
    StepResult,
    validate_source,
    validate_step,
)
from contact_center.storage.campaigns import get_campaign
from contact_center.storage.db import transaction
from contact_center.storage.models import Campaign, CampaignEvent, utcnow

__all__ = [
    "EventRow",
    "apply_campaign_step",
    "campaign_events",
    "mark_notified",
    "record_skip",
]

_campaigns = cast(sa.Table, Campaign.__table__)
_events = cast(sa.Table, CampaignEvent.__table__)

_OTHER_STATE = {"running": "stopped", "stopped": "running"}
_CHANGED = {"start": RESULT_STARTED, "stop": RESULT_STOPPED}
_UNCHANGED = {"start": RESULT_ALREADY_RUNNING, "stop": RESULT_ALREADY_STOPPED}


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
