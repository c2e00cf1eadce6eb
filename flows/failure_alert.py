"""The ``send-failure-alert`` flow: tell people that a task failed (describe -> send -> mark).

An automation of :mod:`deployments.alerts` runs the ``failure-alert`` deployment when a
run of a cctasks deployment ends Failed or Crashed, passing the run's id and the
channels declared in ``alerts.yaml``. A run:

1. ``describe_failed_run``: reads the failed run from the Prefect API and names the
   task (its deployment), the object, the step, the task log's error line and the run's
   page in the Prefect UI;
2. ``email_alert`` through the email block the reports use (prefect-email's
   ``EmailServerCredentials``) and/or ``post_alert`` through a Prefect webhook
   notification block (``CustomWebhookNotificationBlock``, ``SlackWebhook``...);
3. ``mark_alerted``: tags the failed run ``alert-sent``.

A run that finds the tag already there sends nothing and ends Skipped, so a run is
never announced twice (the deployment takes one alert at a time, so two alerts for one
run cannot cross).
"""

from __future__ import annotations

from dataclasses import dataclass
from email.message import EmailMessage
from typing import Any, cast
from uuid import UUID

from prefect import flow, get_client, get_run_logger, task
from prefect.blocks import notifications  # noqa: F401 (registers Prefect's notification blocks)
from prefect.blocks.abstract import NotificationBlock
from prefect.blocks.core import Block
from prefect.client.schemas.objects import State
from prefect.exceptions import ObjectNotFound as PrefectObjectNotFound
from prefect.states import Completed
from prefect_email import EmailServerCredentials

from contact_center.exceptions import InvalidParameter, ObjectNotFound
from contact_center.reports.mail import validate_addresses
from flows.common.outcome import SKIPPED_STATE_NAME
from flows.common.retries import NETWORK_TASK
from flows.report_execution import send_email
from runlog.mapping import error_of, flow_type
from runlog.runs import run_url

__all__ = [
    "ALERTED_TAG",
    "FailedRun",
    "describe_failed_run",
    "email_alert",
    "mark_alerted",
    "post_alert",
    "send_failure_alert",
]

#: The tag a failed run gets once its alert went out.
ALERTED_TAG = "alert-sent"
#: The block type of a webhook named without its type (Prefect's Custom Webhook).
WEBHOOK_BLOCK_TYPE = "custom-webhook"


@dataclass(frozen=True)
class FailedRun:
    """What an alert says about a failed run.

    Attributes:
        run_id: the flow run.
        task: the task's name (its deployment; the run's name without one).
        object_name: the list, exclusion list, campaign or report.
        step: the ``step`` parameter, or the task type's own step.
        state: Failed or Crashed.
        error: the task log's error line.
        url: the run's page in the Prefect UI.
        alerted: the run already carries :data:`ALERTED_TAG`.
    """

    run_id: UUID
    task: str
    object_name: str
    step: str
    state: str
    error: str
    url: str
    alerted: bool

    @property
    def subject(self) -> str:
        """The alert's one-line title."""
        return f"cctasks: {self.task} ({self.object_name or '-'}, {self.step or '-'}) {self.state}"

    @property
    def body(self) -> str:
        """The alert's text: one fact per line."""
        return "\n".join(
            (
                f"Task: {self.task}",
                f"Object: {self.object_name}",
                f"Step: {self.step}",
                f"State: {self.state}",
                f"Error: {self.error}",
                f"Run: {self.url}",
            )
        )


@task(**NETWORK_TASK)
def describe_failed_run(flow_run_id: UUID) -> FailedRun:
    """Read the failed run and say what the alert names."""
    with get_client(sync_client=True) as client:
        try:
            run = client.read_flow_run(flow_run_id)
        except PrefectObjectNotFound:
            raise ObjectNotFound(f"no flow run {flow_run_id} on the Prefect server") from None
        flow_name = client.read_flow(run.flow_id).name
        task_name = run.name
        if run.deployment_id is not None:
            task_name = client.read_deployment(run.deployment_id).name
    kind = flow_type(flow_name)
    params = run.parameters or {}
    state_type = run.state.type.value if run.state else ""
    state_name = (run.state.name if run.state else None) or "?"
    return FailedRun(
        run_id=run.id,
        task=task_name,
        object_name=str(params.get(kind.object_param, "")) if kind else "",
        step=str(params.get("step") or (kind.default_step if kind else "")),
        state=state_name,
        error=error_of(state_type, state_name, run.state.message if run.state else None),
        url=run_url(run.id),
        alerted=ALERTED_TAG in (run.tags or []),
    )


def _email_block(name: str) -> EmailServerCredentials:
    try:
        return cast(EmailServerCredentials, EmailServerCredentials.load(name))
    except (ValueError, PrefectObjectNotFound):
        raise ObjectNotFound(f"no Email Server Credentials block named {name!r}") from None


@task(**NETWORK_TASK)
def email_alert(failed: FailedRun, email_block: str, email_to: list[str]) -> None:
    """Send the alert by email through the named block."""
    credentials = _email_block(email_block)
    message = EmailMessage()
    message["Subject"] = failed.subject
    message["From"] = credentials.username or "cctasks"
    message["To"] = ", ".join(email_to)
    message.set_content(failed.body)
    send_email(credentials, message)


def _notification_block(reference: str) -> Any:
    """The notification block ``<type-slug>/<name>``; a bare name is a Custom Webhook."""
    slug_name = reference if "/" in reference else f"{WEBHOOK_BLOCK_TYPE}/{reference}"
    try:
        block = Block.load(slug_name)
    except (ValueError, KeyError, PrefectObjectNotFound):
        raise ObjectNotFound(f"no notification block {slug_name!r}") from None
    if not isinstance(block, NotificationBlock):
        raise InvalidParameter(f"block {slug_name!r} is not a notification block")
    return block


@task(**NETWORK_TASK)
def post_alert(failed: FailedRun, webhook_block: str) -> None:
    """Send the alert through a Prefect notification block (a webhook)."""
    # Prefect's concrete blocks send synchronously when called from sync code.
    _notification_block(webhook_block).notify(failed.body, failed.subject)


@task(**NETWORK_TASK)
def mark_alerted(flow_run_id: UUID) -> None:
    """Tag the failed run, so that no later alert repeats this one."""
    with get_client(sync_client=True) as client:
        tags = client.read_flow_run(flow_run_id).tags or []
        client.update_flow_run(flow_run_id, tags=[*tags, ALERTED_TAG])


@flow(name="send-failure-alert")
def send_failure_alert(
    flow_run_id: UUID,
    email_block: str | None = None,
    email_to: list[str] | None = None,
    webhook_block: str | None = None,
) -> State[None]:
    """Alert by email and/or webhook that the run ``flow_run_id`` failed, once.

    Args:
        flow_run_id: the failed (or crashed) flow run.
        email_block: the ``EmailServerCredentials`` block to send through.
        email_to: the recipients (with ``email_block``).
        webhook_block: a Prefect notification block, ``<type-slug>/<name>``
            (``slack-webhook/ops``); a bare name is a Custom Webhook block.
    """
    recipients = validate_addresses(email_to) if email_to else []
    if bool(recipients) != bool(email_block):
        raise InvalidParameter("email_block and email_to go together")
    if not recipients and not webhook_block:
        raise InvalidParameter("give email_to or webhook_block: the alert must go somewhere")
    failed = describe_failed_run(flow_run_id)
    if failed.alerted:
        message = f"the run {flow_run_id} was alerted before"
        get_run_logger().info("%s; nothing sent", message)
        return Completed(name=SKIPPED_STATE_NAME, message=message)
    if email_block:
        email_alert(failed, email_block, recipients)
    if webhook_block:
        post_alert(failed, webhook_block)
    mark_alerted(flow_run_id)
    return Completed(message=f"alerted: {failed.subject}")
