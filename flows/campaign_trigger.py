"""The ``campaign-trigger`` flow: start or stop an outbound campaign (check -> apply).

One deployment per campaign carries two schedules, slugs ``start`` and ``stop``, each
with its own ``step`` parameter, as cron expressions in the campaign's time zone (see
``docs/campaign-trigger.md``). A run:

1. ``check_campaign``: the campaign exists; the run's *scheduled* date, in the
   campaign's time zone, is not a skip date or holiday; a ``start`` finds at least one
   enabled calling list with dialable records (unless ``allow_empty``).
2. ``apply_step``: sets the state and writes the audit event in one transaction
   (idempotent: "already running" / "already stopped"), or records "skipped (holiday)".
3. ``notify_dialler`` (optional, the only network step, retried with backoff): a JSON
   POST ``{campaign, step, time, state}`` to ``notify_url``. Its failure fails the run
   but keeps the state change; the event stays ``notified = false``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import httpx
from prefect import flow, get_run_logger, task
from prefect.runtime import flow_run as runtime_flow_run

from contact_center.exceptions import DeliveryFailed
from contact_center.outcome import Outcome
from contact_center.parsing.parameters import CampaignStep, StrictBool, TriggerSource
from contact_center.storage.campaign_rules import (
    StepResult,
    notification_payload,
    skip_reason,
)
from contact_center.storage.campaign_steps import apply_campaign_step, mark_notified, record_skip
from contact_center.storage.campaigns import CampaignInfo, ListReadiness, check_start, get_campaign
from contact_center.storage.db import mapped_database_errors
from flows.campaign_request import TriggerRequest, display_url, load_token, validate_request
from flows.common import RunProgress, contact_center_engine, final_state, recording_outcome
from flows.common.retries import NETWORK_TASK
from flows.common.slots import object_slot
from runlog.publish import publishes_task_log

__all__ = [
    "CampaignCheck",
    "apply_step",
    "campaign_trigger",
    "check_campaign",
    "notify_dialler",
    "record_notification",
]

NOTIFY_TIMEOUT_SECONDS = 10.0


@dataclass(frozen=True)
class CampaignCheck:
    """What ``check_campaign`` found.

    Attributes:
        campaign: the campaign as stored.
        skip: why the run must change nothing (a skip date or holiday), or ``None``.
        lists: the readiness of each linked list (checked for ``start`` only).
    """

    campaign: CampaignInfo
    skip: str | None
    lists: list[ListReadiness]


@task
def check_campaign(request: TriggerRequest, scheduled_at: datetime) -> CampaignCheck:
    """Find the campaign; decide whether the run is skipped; check that a start can dial.

    Raises:
        ObjectNotFound: no such campaign.
        CampaignStateError: a start with nothing to dial (and not ``allow_empty``).
    """
    with (
        mapped_database_errors(f"checking campaign {request.campaign!r}"),
        contact_center_engine().connect() as conn,
    ):
        info = get_campaign(conn, request.campaign)
        skip = skip_reason(
            scheduled_at,
            info.time_zone,
            skip_dates=request.skip_dates,
            holiday_region=request.holiday_region,
        )
        lists: list[ListReadiness] = []
        if skip is None and request.step == "start":
            lists = check_start(conn, request.campaign, allow_empty=request.allow_empty)
    return CampaignCheck(campaign=info, skip=skip, lists=lists)


@task
def apply_step(
    request: TriggerRequest, check: CampaignCheck, flow_run_id: str | None
) -> StepResult:
    """Set the campaign's state and write its audit event (or record the skip).

    Raises:
        DatabaseError: the database refused; the state is as it was.
    """
    with (
        mapped_database_errors(f"{request.step} of campaign {request.campaign!r}"),
        contact_center_engine().connect() as conn,
    ):
        if check.skip is not None:
            return record_skip(
                conn,
                request.campaign,
                request.step,
                reason=check.skip,
                source=request.source,
                flow_run_id=flow_run_id,
            )
        return apply_campaign_step(
            conn,
            request.campaign,
            request.step,
            source=request.source,
            flow_run_id=flow_run_id,
            notify=request.notify_url is not None,
        )


@task(**NETWORK_TASK)
def notify_dialler(
    url: str,
    payload: dict[str, Any],
    progress: RunProgress,
    token_block: str | None = None,
) -> int:
    """POST ``payload`` as JSON to the dialler's ``url``; return the HTTP status.

    The bearer token is read from its block here, so that it never becomes a task
    parameter, a log line or a message.

    Raises:
        DeliveryFailed: no answer, or an answer other than 2xx; names the URL (without
            user info or query) and the status.
    """
    headers = {"Authorization": f"Bearer {load_token(token_block)}"} if token_block else {}
    shown = display_url(url)
    with progress.attempt("notify"):
        try:
            response = httpx.post(
                url, json=payload, headers=headers, timeout=NOTIFY_TIMEOUT_SECONDS
            )
        except httpx.HTTPError as exc:
            raise DeliveryFailed(
                f"dialler notification to {shown} failed: {type(exc).__name__}"
            ) from exc
        if not response.is_success:
            raise DeliveryFailed(
                f"dialler notification to {shown} failed: HTTP {response.status_code}"
            )
    get_run_logger().info("dialler at %s acknowledged (HTTP %s)", shown, response.status_code)
    return response.status_code


@task
def record_notification(event_id: int, delivered: bool) -> None:
    """Mark the campaign event ``event_id`` as delivered to the dialler or not."""
    with (
        mapped_database_errors(f"recording the notification of campaign event {event_id}"),
        contact_center_engine().connect() as conn,
    ):
        mark_notified(conn, event_id, delivered)


def _scheduled_time() -> datetime:
    """When this run was scheduled (the time a late run still belongs to)."""
    return runtime_flow_run.scheduled_start_time  # type: ignore[no-any-return]


@publishes_task_log
@flow(name="campaign-trigger", flow_run_name="{campaign} · {step}")
def campaign_trigger(
    campaign: str,
    step: CampaignStep,
    allow_empty: StrictBool = False,
    skip_dates: list[str] | None = None,
    holidays: str | None = None,
    notify_url: str | None = None,
    notify_token_block: str | None = None,
    source: TriggerSource = "schedule",
) -> Outcome:
    """Start or stop an outbound campaign.

    Args:
        campaign: the campaign's name.
        step: ``start`` or ``stop``.
        allow_empty: start even when no enabled list has dialable records.
        skip_dates: ISO dates (in the campaign's time zone) on which to change nothing.
        holidays: a country (``US``) or country-subdivision (``US-NY``) code whose
            public holidays are skipped, from the ``holidays`` package.
        notify_url: the dialler's webhook; gets a JSON POST after the state changes.
        notify_token_block: the name of a Prefect ``Secret`` block holding the
            webhook's bearer token.
        source: who asked: ``schedule`` (default), ``manual`` (the CLI) or ``api``.

    Returns:
        The run's outcome (also recorded as an artifact). Its message, the result
        (started, stopped, already running, already stopped, skipped (holiday): <why>),
        is also the message of the run's Completed state, so Prefect's run view shows it.
    """
    with recording_outcome(Outcome(object_name=campaign, step=step)) as outcome:
        request = validate_request(
            campaign=campaign,
            step=step,
            source=source,
            allow_empty=allow_empty,
            skip_dates=skip_dates,
            holidays=holidays,
            notify_url=notify_url,
            notify_token_block=notify_token_block,
        )
        if request.notify_token_block:
            load_token(request.notify_token_block)  # a missing block fails before any change
        progress = RunProgress(
            {"check": 1, "apply": 1, "notify": 1 if request.notify_url else 0},
            description=f"{campaign} · {step}",
            outcome=outcome,
        )
        # A start and a stop of one campaign, from schedules or by hand, never overlap.
        with object_slot("campaign", request.campaign):
            check = check_campaign(request, _scheduled_time())
            progress.update("check", 1, 1)
            result = apply_step(request, check, runtime_flow_run.id)
            progress.update("apply", 1, 1, force=True)
            outcome.status = "skipped" if check.skip else "completed"
            outcome.message = f"{result.result}: {check.skip}" if check.skip else result.result
            outcome.extra = {
                "result": result.result,
                "source": request.source,
                "previous_state": result.previous_state,
                "state": result.state,
                "notified": None,
            }
            if check.lists:
                outcome.extra["dialable"] = {
                    item.list_name: item.dialable for item in check.lists if item.enabled
                }
            if result.notify and request.notify_url:
                outcome.extra["notified"] = False
                notify_dialler(
                    request.notify_url,
                    notification_payload(result),
                    progress,
                    request.notify_token_block,
                )
                record_notification(result.event_id, True)
                outcome.extra["notified"] = True
        progress.finish()
    # A returned State becomes the run's final state; callers still get its data.
    return final_state(outcome)  # type: ignore[return-value]
