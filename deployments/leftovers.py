"""Runs that a stack's worker left in progress, ended as what they are: Crashed, or Cancelled.

A run that the local worker (:data:`deployments.stack_options.WORKER_NAME`) started, that the
server still shows as Pending, Running or Cancelling, and whose process is gone, will
never report its end: the stack it ran in stopped or died first. ``cctasks up`` ends
such runs itself, twice:

- when it stops, once the worker and its runs have ended and while the server still
  answers: a run that could not report in time does not stay in progress;
- when it starts again, before its new worker runs anything: the runs of a stack that
  died with its machine end at once, instead of waiting for the automation of
  :mod:`deployments.automations`.

A Pending or Running run ends Crashed; a Cancelling one ends Cancelled, as asked. Each
change goes through Prefect's orchestration, whose rule releases the run's deployment
concurrency slot (with the lease when the server still has it, else by the limit).
:func:`free_stale_slots` then checks every deployment of the pool: a slot still taken
by no run in progress (its lease died with a server that kept leases in memory) is
released too.

Functions that talk to the server use Prefect's current settings (see
:mod:`deployments.bootstrap`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from uuid import UUID

import httpx
import psutil
from prefect import get_client
from prefect.client.orchestration import SyncPrefectClient
from prefect.client.schemas.filters import (
    FlowRunFilter,
    FlowRunFilterDeploymentId,
    FlowRunFilterState,
    FlowRunFilterStateType,
    WorkPoolFilter,
    WorkPoolFilterName,
)
from prefect.client.schemas.objects import FlowRun, State, StateType
from prefect.client.schemas.responses import SetStateStatus
from prefect.settings import (
    PREFECT_API_REQUEST_TIMEOUT,
    PREFECT_CLIENT_MAX_RETRIES,
    temporary_settings,
)
from prefect.states import Cancelled, Crashed

__all__ = [
    "EndedRun",
    "end_and_report",
    "end_leftover_runs",
    "free_stale_slots",
    "run_process_alive",
]

_IN_PROGRESS = [StateType.PENDING, StateType.RUNNING, StateType.CANCELLING]
_WORKER_LABEL = "prefect.worker.name"
_PAGE = 200


@dataclass(frozen=True)
class EndedRun:
    """A run ended by :func:`end_leftover_runs`.

    Attributes:
        id: the flow run's id.
        name: its name (``Spring Leads · import``).
        was: the state it was left in (``Running``).
        now: the state it ends in (``Crashed`` or ``Cancelled``).
        deployment_id: its deployment, whose slot it held.
    """

    id: UUID
    name: str
    was: str
    now: str
    deployment_id: UUID | None


def run_process_alive(run: FlowRun) -> bool:
    """Whether the process of ``run`` still lives on this machine.

    The worker records the process id as ``infrastructure_pid`` (``pid``, or
    ``host:pid``); the process is the run's only if it carries the run's id, since the
    number may have been given to another process since.
    """
    pid = (run.infrastructure_pid or "").rpartition(":")[2]
    if not pid.isdigit():
        return False
    try:
        environment = psutil.Process(int(pid)).environ()
    except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
        return False
    owner: object = environment.get("PREFECT__FLOW_RUN_ID")
    return owner == str(run.id)


def _runs_in_progress(client: SyncPrefectClient, pool: str) -> list[FlowRun]:
    runs: list[FlowRun] = []
    while True:
        page = client.read_flow_runs(
            flow_run_filter=FlowRunFilter(
                state=FlowRunFilterState(type=FlowRunFilterStateType(any_=_IN_PROGRESS))
            ),
            work_pool_filter=WorkPoolFilter(name=WorkPoolFilterName(any_=[pool])),
            limit=_PAGE,
            offset=len(runs),
        )
        runs += page
        if len(page) < _PAGE:
            return runs


def _end_state(run: FlowRun, why: str) -> State:
    # The task log puts the state's name before its message ("Crashed: Its process ...").
    if run.state_type == StateType.CANCELLING:
        return Cancelled(message=f"The cancel was asked for, and {why}.")
    return Crashed(message=f"{why[:1].upper()}{why[1:]}, so the run could not report its end.")


def end_leftover_runs(worker_name: str, pool: str, why: str) -> list[EndedRun]:
    """End the runs of ``worker_name`` in ``pool`` that are in progress with no process.

    Args:
        worker_name: the worker whose runs to look at (the stack's own).
        pool: its work pool.
        why: what happened, for the state message, e.g. ``"its process was gone when
            cctasks up started again"``.

    Returns:
        The runs ended.
    """
    ended: list[EndedRun] = []
    with get_client(sync_client=True) as client:
        for run in _runs_in_progress(client, pool):
            if (run.labels or {}).get(_WORKER_LABEL) != worker_name or run_process_alive(run):
                continue
            state = _end_state(run, why)
            if client.set_flow_run_state(run.id, state).status != SetStateStatus.ACCEPT:
                continue  # it reported its end meanwhile: that end stands
            ended.append(
                EndedRun(
                    id=run.id,
                    name=run.name,
                    was=run.state_name or str(run.state_type),
                    now=state.name or state.type.value,
                    deployment_id=run.deployment_id,
                )
            )
    return ended


def free_stale_slots(pool: str) -> dict[str, int]:
    """Release the deployment concurrency slots of ``pool`` that no run holds.

    A deployment's run holds a slot of its limit from Pending to its end. A slot taken
    while the deployment has fewer runs in progress belonged to a run whose lease the
    server lost. Each limit is read before its runs are counted, so a slot that a
    worker takes meanwhile is counted as held.

    Returns:
        Deployment name -> slots released.
    """
    released: dict[str, int] = {}
    with get_client(sync_client=True) as client:
        deployments = client.read_deployments(
            work_pool_filter=WorkPoolFilter(name=WorkPoolFilterName(any_=[pool]))
        )
        for deployment in deployments:
            limit = deployment.global_concurrency_limit
            if limit is None or not limit.active_slots:
                continue
            holders = client.count_flow_runs(
                flow_run_filter=FlowRunFilter(
                    deployment_id=FlowRunFilterDeploymentId(any_=[deployment.id]),
                    state=FlowRunFilterState(type=FlowRunFilterStateType(any_=_IN_PROGRESS)),
                )
            )
            stale = limit.active_slots - holders
            if stale > 0:
                # How long the slot was held is unknown; the server wants more than 0 s
                # for its average, and 1 s barely moves it.
                client.release_concurrency_slots(
                    names=[limit.name], slots=stale, occupancy_seconds=1.0
                )
                released[deployment.name] = stale
    return released


def end_and_report(
    worker_name: str,
    pool: str,
    why: str,
    say: Callable[[str], None],
    *,
    stopping: bool = False,
) -> list[EndedRun]:
    """:func:`end_leftover_runs` then :func:`free_stale_slots`, with a line for each.

    Args:
        worker_name: the worker whose runs to look at.
        pool: its work pool.
        why: what happened, for the state messages and the lines.
        say: prints a line.
        stopping: the stack is stopping: a server that does not answer at once is
            reported in a line instead of holding up the stop.
    """
    quick: dict[Any, Any] = {PREFECT_CLIENT_MAX_RETRIES: 0, PREFECT_API_REQUEST_TIMEOUT: 5.0}
    try:
        with temporary_settings(updates=quick if stopping else {}):
            ended = end_leftover_runs(worker_name, pool, why)
            freed = free_stale_slots(pool)
    except httpx.HTTPError as exc:
        if not stopping:
            raise
        say(f"  [yellow]could not check the runs in progress:[/] {exc}")
        return []
    for run in ended:
        say(f"  run {run.name!r} was left {run.was}: now {run.now} ({why})")
    for deployment, slots in freed.items():
        say(f"  freed {slots} concurrency slot(s) of {deployment} that no run held")
    return ended
