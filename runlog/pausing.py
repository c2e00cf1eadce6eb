"""``cctasks pause TASK`` and ``cctasks resume TASK``: hold a task's schedules.

This is Prefect's own deployment pause, the switch in the UI's deployment page: a
paused deployment's schedules create no runs, and the runs they had already created
(still waiting in Scheduled) are removed. A run requested by hand (``cctasks run``)
still runs. The Scheduled view lists a paused task with State ``paused``.

``prefect deploy`` sets ``paused`` from prefect.yaml (false unless written there),
so ``cctasks up``, which re-deploys on every start, notes the paused tasks first and
pauses them again afterwards (:func:`paused_tasks`, :func:`pause_again`): a pause
lasts until ``cctasks resume``.
"""

from __future__ import annotations

from dataclasses import dataclass
from uuid import UUID

from prefect.exceptions import ObjectNotFound as PrefectObjectNotFound

from runlog.client import PAGE_SIZE, prefect_client
from runlog.runs import resolve_deployment
from runlog.text import clean

__all__ = ["PauseChange", "pause_again", "pause_task", "paused_tasks", "resume_task"]


@dataclass(frozen=True)
class PauseChange:
    """What ``pause_task`` or ``resume_task`` did.

    Attributes:
        task: ``flow/deployment``.
        deployment_id: the deployment's id.
        paused: whether the task is paused now.
        changed: False when it already was.
        schedules: how many schedules the task has.
    """

    task: str
    deployment_id: UUID
    paused: bool
    changed: bool
    schedules: int


def _set_paused(task: str, paused: bool) -> PauseChange:
    with prefect_client() as client:
        deployment, label = resolve_deployment(client, task)
        changed = deployment.paused != paused
        if changed:
            if paused:
                client.pause_deployment(deployment.id)
            else:
                client.resume_deployment(deployment.id)
    return PauseChange(
        task=clean(label),
        deployment_id=deployment.id,
        paused=paused,
        changed=changed,
        schedules=len(deployment.schedules or []),
    )


def pause_task(task: str) -> PauseChange:
    """Pause the schedules of ``task`` (``name`` or ``flow/name``).

    Raises:
        ObjectNotFound: no such task; the message lists the known ones.
        InvalidParameter: the name is ambiguous.
        SourceUnavailable: the Prefect server cannot be reached.
    """
    return _set_paused(task, True)


def resume_task(task: str) -> PauseChange:
    """Resume the schedules of ``task``; the scheduler creates its next runs again.

    Raises:
        ObjectNotFound: no such task; the message lists the known ones.
        InvalidParameter: the name is ambiguous.
        SourceUnavailable: the Prefect server cannot be reached.
    """
    return _set_paused(task, False)


def paused_tasks() -> list[UUID]:
    """The ids of the paused deployments (before a re-deploy that would resume them)."""
    with prefect_client() as client:
        found: list[UUID] = []
        offset = 0
        while True:
            page = client.read_deployments(limit=PAGE_SIZE, offset=offset)
            found.extend(d.id for d in page if d.paused)
            offset += len(page)
            if len(page) < PAGE_SIZE:
                return found


def pause_again(deployment_ids: list[UUID]) -> int:
    """Pause these deployments again where a re-deploy resumed them; how many it did.

    A deployment that the re-deploy removed is skipped.
    """
    again = 0
    with prefect_client() as client:
        for deployment_id in deployment_ids:
            try:
                deployment = client.read_deployment(deployment_id)
            except PrefectObjectNotFound:
                continue
            if not deployment.paused:
                client.pause_deployment(deployment_id)
                again += 1
    return again
