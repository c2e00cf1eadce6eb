"""The server's automations that end dead runs, so that no run stays in progress for good.

A flow run whose process dies with its machine (or is killed together with its worker)
cannot report its end. Prefect's answer ("How to detect and respond to zombie flows")
is a flow-run heartbeat, sent every ``heartbeat_seconds`` by every run of the cctasks
work pool (:func:`deployments.bootstrap.ensure_work_pool` puts
``PREFECT_FLOWS_HEARTBEAT_FREQUENCY`` into the pool's environment), and a proactive
automation on the server that notices the silence:

- :data:`CRASH_SILENT_RUNS`: after a run's heartbeat, the server expects another event
  of that run (a heartbeat or a state change) within the window,
  ``HEARTBEAT_WINDOW_BEATS`` heartbeats; when none comes, it changes the run's state to
  Crashed. Prefect's own rule then releases the run's deployment concurrency slot.
- :data:`FINISH_ORPHANED_CANCELS`: a cancel asks the run's process to stop; when the
  process is gone, nothing would ever confirm it, and the run would stay Cancelling
  (Prefect lets a Cancelling run only become Cancelled). After a run turns Cancelling,
  the server expects its end within the same window; when none comes, it changes the
  run's state to Cancelled.

Both match only runs of deployments: an ad-hoc run in a process of its own (such as
``cctasks campaign start``) sends Prefect's default heartbeat, every 180 s, which a
shorter window would take for silence. :func:`ensure_automations` creates or updates
them idempotently on every ``cctasks up``; an admin who disabled one in the UI keeps it
disabled.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from prefect import get_client
from prefect.automations import Automation
from prefect.client.schemas.objects import StateType
from prefect.events.actions import ChangeFlowRunState
from prefect.events.schemas.automations import AutomationCore, EventTrigger, Posture
from prefect.events.schemas.events import ResourceSpecification

from contact_center.settings import HEARTBEAT_WINDOW_BEATS

__all__ = [
    "CRASH_SILENT_RUNS",
    "FINISH_ORPHANED_CANCELS",
    "crash_silent_runs",
    "ensure_automations",
    "finish_orphaned_cancels",
    "heartbeat_window",
]

CRASH_SILENT_RUNS = "cctasks: crash runs that stopped sending heartbeats"
FINISH_ORPHANED_CANCELS = "cctasks: cancel runs whose process is gone"

_ANY_FLOW_RUN = ResourceSpecification({"prefect.resource.id": ["prefect.flow-run.*"]})
# Heartbeats and state changes of a deployment's run name the deployment as related.
_A_DEPLOYMENT_RUN = ResourceSpecification({"prefect.resource.role": "deployment"})
_RUN_ENDED = {
    "prefect.flow-run.Cancelled",
    "prefect.flow-run.Completed",
    "prefect.flow-run.Crashed",
    "prefect.flow-run.Failed",
}


def heartbeat_window(heartbeat_seconds: int) -> timedelta:
    """How long a run may stay silent before the server ends it."""
    return timedelta(seconds=heartbeat_seconds * HEARTBEAT_WINDOW_BEATS)


def crash_silent_runs(heartbeat_seconds: int) -> Automation:
    """Prefect's zombie-flow automation for runs that send a heartbeat every ``heartbeat_seconds``.

    Any event of the run counts as a sign of life, not only the heartbeat and the four
    terminal states of Prefect's example: a state keeps the name the flow gives it
    (``prefect.flow-run.Skipped``), and a cancel hands the run over to
    :func:`finish_orphaned_cancels`.
    """
    window = heartbeat_window(heartbeat_seconds)
    return Automation(
        name=CRASH_SILENT_RUNS,
        description=(
            f"A run of a deployment sends a heartbeat every {heartbeat_seconds} s. When one "
            f"has sent nothing for {window.total_seconds():.0f} s, its process is gone (the "
            "machine or its worker died): mark it Crashed, which frees its concurrency slot."
        ),
        trigger=EventTrigger(
            after={"prefect.flow-run.heartbeat"},
            expect={"prefect.flow-run.*"},
            match=_ANY_FLOW_RUN,
            match_related=_A_DEPLOYMENT_RUN,
            for_each={"prefect.resource.id"},
            posture=Posture.Proactive,
            threshold=1,
            within=window,
        ),
        actions=[
            ChangeFlowRunState(
                name="Crashed",
                state=StateType.CRASHED,
                force=False,
                message=(
                    f"The run sent no heartbeat for {window.total_seconds():.0f} s: its "
                    "process is gone (its machine or its worker stopped without it reporting "
                    "its end)."
                ),
            )
        ],
    )


def finish_orphaned_cancels(heartbeat_seconds: int) -> Automation:
    """End as Cancelled a run that did not confirm its cancel within the heartbeat window."""
    window = heartbeat_window(heartbeat_seconds)
    return Automation(
        name=FINISH_ORPHANED_CANCELS,
        description=(
            "A cancel waits for the run's process to stop. When a Cancelling run has not "
            f"ended {window.total_seconds():.0f} s later, its process is gone: mark it "
            "Cancelled, which frees its concurrency slot."
        ),
        trigger=EventTrigger(
            after={"prefect.flow-run.Cancelling"},
            expect=set(_RUN_ENDED),
            match=_ANY_FLOW_RUN,
            match_related=_A_DEPLOYMENT_RUN,
            for_each={"prefect.resource.id"},
            posture=Posture.Proactive,
            threshold=1,
            within=window,
        ),
        actions=[
            ChangeFlowRunState(
                name="Cancelled",
                state=StateType.CANCELLED,
                force=False,
                message=(
                    f"The run's process did not confirm the cancel within "
                    f"{window.total_seconds():.0f} s: it was gone."
                ),
            )
        ],
    )


def _definition(automation: AutomationCore) -> dict[str, Any]:
    """What makes two automations the same, whatever their ids (and whether enabled)."""
    dumped = automation.model_dump(mode="json", include={"description", "trigger", "actions"})
    trigger = dumped["trigger"]
    trigger.pop("id", None)
    for key in ("after", "expect", "for_each"):  # sets, listed in any order
        trigger[key] = sorted(trigger.get(key) or [])
    return dumped


def ensure_automations(heartbeat_seconds: int) -> dict[str, str]:
    """Create the automations, or update them to ``heartbeat_seconds`` (idempotent).

    Returns:
        Automation name -> ``created``, ``updated`` or ``kept``.
    """
    actions: dict[str, str] = {}
    with get_client(sync_client=True) as client:
        for wanted in (
            crash_silent_runs(heartbeat_seconds),
            finish_orphaned_cancels(heartbeat_seconds),
        ):
            core = AutomationCore(**wanted.model_dump(exclude={"id"}))
            existing = client.read_automations_by_name(wanted.name)
            if not existing:
                client.create_automation(core)
                actions[wanted.name] = "created"
                continue
            first, *duplicates = existing
            for duplicate in duplicates:  # copies made by hand would act twice
                client.delete_automation(duplicate.id)
            if _definition(first) == _definition(core):
                actions[wanted.name] = "kept"
            else:
                wanted.id, wanted.enabled = first.id, first.enabled
                wanted.update()
                actions[wanted.name] = "updated"
    return actions
