"""The Scheduled and In-Progress Tasks view: everything that is planned or waiting.

Its rows, soonest first:

- the runs Prefect's scheduler has created that are due within the horizon:
  ``scheduled``, or ``late`` once Prefect marked them Late;
- runs held back by a deployment's concurrency limit: ``waiting``, and the Note says
  for what (the task's slot, how many runs it allows, which run holds it);
- running runs that wait for their object's slot (``flows.common.slots``): ``waiting``,
  the Note from the run's newest progress artifact ("waits for list Spring Leads");
- ``pending``, ``in progress`` and ``retrying`` runs; a run is ``retrying`` while it
  or its retrying step (the fetch, the delivery, the webhook) waits for, or runs, a
  retry;
- event-driven tasks: a deployment trigger (``prefect.yaml``'s ``triggers:``) is a row
  ``on event`` without a start time, whose Note says what starts it, e.g. ``on file
  sftp://partner/in/leads_*.csv`` (see :mod:`tasklog.triggered`);
- paused tasks, last: a deployment paused with Prefect's own pause (``cctasks
  pause``) lists each of its schedules, and a switched-off schedule of a running
  deployment lists itself, as ``paused`` without a start time.

Number of attempts is the higher of the flow's own tries and its retrying step's,
counting the try a retrying run waits for ("2 of 3" while the second of three waits).
Both come from Prefect: the flow run's ``run_count`` and state, and the task runs of
the runs in flight (``run_count``, ``AwaitingRetry``, their retry policy), read in
one query.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from uuid import UUID

from prefect.client.orchestration import SyncPrefectClient
from prefect.client.schemas.filters import FlowFilter, FlowFilterName, TaskRunFilter
from prefect.client.schemas.filters import TaskRunFilterFlowRunId as TaskRunsOf
from prefect.client.schemas.objects import DeploymentSchedule, FlowRun, StateType
from prefect.client.schemas.responses import DeploymentResponse
from prefect.client.schemas.schedules import CronSchedule, IntervalSchedule, RRuleSchedule
from prefect.client.schemas.sorting import FlowRunSort

from runlog.client import PAGE_SIZE, prefect_client
from runlog.mapping import FLOW_TYPES, object_wait_of, scheduled_state_of
from runlog.reader import Branch, History, Query, plain_utc
from runlog.rows import ScheduledRow
from runlog.text import clean
from runlog.triggered import trigger_rows

__all__ = ["IN_FLIGHT_STATES", "MAX_SCHEDULED_ROWS", "Tries", "scheduled"]

IN_FLIGHT_STATES = [
    StateType.SCHEDULED,
    StateType.PENDING,
    StateType.RUNNING,
    StateType.PAUSED,
    StateType.CANCELLING,
]
# The view lists at most this many runs (Prefect's scheduler creates at most 100
# future runs per deployment, so this only bites with very many deployments).
MAX_SCHEDULED_ROWS = 2_000
# States in which a run holds its deployment's concurrency slot.
_HOLDING = ("PENDING", "RUNNING", "CANCELLING")


@dataclass(frozen=True)
class Tries:
    """The tries of a run, or of its retrying step.

    Attributes:
        number: the try running now, or the one waited for.
        of: how many tries there are in all, when known.
        step: the retrying step's task name; empty for the flow's own tries.
        waiting: a failed try waits for its retry (Prefect's ``AwaitingRetry``).
        retrying: a retry runs now (Prefect's ``Retrying``).
    """

    number: int
    of: int | None
    step: str = ""
    waiting: bool = False
    retrying: bool = False

    @property
    def active(self) -> bool:
        """Whether a retry is awaited or running."""
        return self.waiting or self.retrying


def _of(retries: int | None) -> int | None:
    return retries + 1 if retries else None


def flow_tries(run: FlowRun) -> Tries:
    """The flow's own tries (``@flow(retries=...)``), from its state and run count."""
    name = (run.state.name if run.state else None) or ""
    retries = run.empirical_policy.retries if run.empirical_policy else None
    if name == "AwaitingRetry":
        return Tries(run.run_count + 1, _of(retries), waiting=True)
    return Tries(run.run_count, _of(retries), retrying=name == "Retrying")


def step_tries(client: SyncPrefectClient, run_ids: list[UUID]) -> dict[UUID, Tries]:
    """The tries of each run's retrying step: the step with a retry awaited or running,
    else the one tried most. Runs whose steps ran once are left out."""
    found: dict[UUID, Tries] = {}
    for start in range(0, len(run_ids), PAGE_SIZE):
        task_filter = TaskRunFilter(flow_run_id=TaskRunsOf(any_=run_ids[start : start + PAGE_SIZE]))
        offset = 0
        while True:
            page = client.read_task_runs(
                task_run_filter=task_filter, limit=PAGE_SIZE, offset=offset
            )
            for task_run in page:
                name = (task_run.state.name if task_run.state else None) or ""
                waiting = name == "AwaitingRetry"
                tries = Tries(
                    number=task_run.run_count + (1 if waiting else 0),
                    of=_of(task_run.empirical_policy.retries),
                    step=task_run.name.rsplit("-", 1)[0],
                    waiting=waiting,
                    retrying=name == "Retrying",
                )
                if task_run.flow_run_id is None or (tries.number <= 1 and not tries.active):
                    continue
                current = found.get(task_run.flow_run_id)
                if current is None or (tries.active, tries.number) > (
                    current.active,
                    current.number,
                ):
                    found[task_run.flow_run_id] = tries
            offset += len(page)
            if len(page) < PAGE_SIZE:
                break
    return found


def _tries_note(tries: Tries) -> str:
    of = f" of {tries.of}" if tries.of else ""
    what = tries.step or "the run"
    if tries.waiting:
        return f"{what} failed; waits to retry: attempt {tries.number}{of}"
    return f"{what}: attempt {tries.number}{of}"


def _row(
    history: History, run: FlowRun, progress: float | None, step: Tries | None
) -> ScheduledRow:
    """The row of a run that has not ended."""
    flow_name, label, object_name, task_name, step_name = history._describe(run)
    state_type = run.state.type.value if run.state else "SCHEDULED"
    state = scheduled_state_of(state_type, (run.state.name if run.state else None) or "")
    own = flow_tries(run)
    tries = step if step is not None and step.number >= own.number else own
    if tries.active and state in ("in progress", "scheduled"):
        state = "retrying"
    started = state_type in ("RUNNING", "PAUSED", "CANCELLING")
    start = (run.start_time or run.expected_start_time) if started else run.expected_start_time
    return ScheduledRow(
        start_time=plain_utc(start),
        object_name=object_name,
        task_name=task_name,
        attempts=max(own.number, step.number if step else 0),
        state=state,
        progress=progress,
        type=label,
        step=step_name,
        run_id=run.id,
        flow_name=flow_name,
        note=_tries_note(tries) if tries.active or tries.number > 1 else "",
        max_attempts=tries.of,
    )


def _waiting_note(run: FlowRun, history: History, runs: list[FlowRun]) -> str:
    """What a run held back by its deployment's concurrency limit waits for."""
    deployment = history.deployments.get(run.deployment_id) if run.deployment_id else None
    if deployment is None:
        return "waits for a concurrency slot"
    limit = deployment.global_concurrency_limit
    allowed = limit.limit if limit is not None else deployment.concurrency_limit
    text = f"waits for a slot of {clean(deployment.name)}"
    if allowed:
        text += f" ({allowed} run{'s' if allowed != 1 else ''} at a time"
        holders = [
            clean(other.name)
            for other in runs
            if other.deployment_id == run.deployment_id
            and other.state is not None
            and other.state.type.value in _HOLDING
        ]
        text += f"; held by {', '.join(holders)})" if holders else ")"
    return text


def describe_schedule(schedule: DeploymentSchedule) -> str:
    """A schedule in a few words: ``cron 0 8 * * 1-5 (America/New_York)``."""
    spec = schedule.schedule
    if isinstance(spec, CronSchedule):
        text = f"cron {spec.cron}" + (f" ({spec.timezone})" if spec.timezone else "")
    elif isinstance(spec, IntervalSchedule):
        text = f"every {spec.interval}"
    elif isinstance(spec, RRuleSchedule):
        text = f"rrule {spec.rrule}"
    else:
        text = "a schedule"
    return clean(f"{schedule.slug}: {text}" if schedule.slug else text)


def _task_deployments(
    client: SyncPrefectClient, flow_names: list[str] | None
) -> list[DeploymentResponse]:
    found: list[DeploymentResponse] = []
    while True:
        page = client.read_deployments(
            flow_filter=FlowFilter(name=FlowFilterName(any_=flow_names)) if flow_names else None,
            limit=PAGE_SIZE,
            offset=len(found),
        )
        found.extend(page)
        if len(page) < PAGE_SIZE:
            return found


def paused_rows(history: History, flow_names: list[str] | None) -> list[ScheduledRow]:
    """A row per schedule of each paused task, and per switched-off schedule."""
    deployments = _task_deployments(history.client, flow_names)
    history.deployments.update({d.id: d for d in deployments})
    history.learn_flow_ids(d.flow_id for d in deployments)
    rows: list[ScheduledRow] = []
    for deployment in deployments:
        schedules: Iterable[DeploymentSchedule | None]
        if deployment.paused:
            schedules = deployment.schedules or [None]
        else:
            schedules = [s for s in deployment.schedules or [] if not s.active]
        for schedule in schedules:
            overrides = dict(schedule.parameters or {}) if schedule else {}
            flow_name, label, object_name, task_name, step = history.describe(
                deployment.flow_id, deployment.id, overrides, deployment.name
            )
            shown = describe_schedule(schedule) if schedule else "no schedule"
            note = (
                f"task paused; {shown}" if deployment.paused else f"schedule switched off; {shown}"
            )
            rows.append(
                ScheduledRow(
                    start_time=None,
                    object_name=object_name,
                    task_name=task_name,
                    attempts=0,
                    state="paused",
                    progress=None,
                    type=label,
                    step=step,
                    run_id=None,
                    flow_name=flow_name,
                    note=note,
                )
            )
    return sorted(rows, key=lambda r: (r.task_name.casefold(), r.step))


def scheduled(
    *,
    horizon: timedelta = timedelta(hours=24),
    include_all: bool = False,
    now: datetime | None = None,
) -> list[ScheduledRow]:
    """The Scheduled and In-Progress Tasks view: soonest first, paused tasks last.

    Every run the scheduler has created that is due within ``horizon`` (Scheduled, and
    Late ones already due), runs waiting for a concurrency slot, pending, running and
    retrying runs; then the paused tasks (see the module).

    Args:
        horizon: how far ahead to look.
        include_all: also show runs and tasks of flows that are not cctasks flows.
        now: the current time (aware); defaults to now.

    Raises:
        SourceUnavailable: the Prefect server cannot be reached.
    """
    now = now or datetime.now(UTC)
    flow_names = None if include_all else list(FLOW_TYPES)
    query = Query(
        flow_names=flow_names,
        state_types=list(IN_FLIGHT_STATES),
        expected_before=now + horizon,
    )
    with prefect_client() as client:
        history = History(client)
        history.load_our_flows()
        runs: list[FlowRun] = []
        for page in history.pages(query, Branch(), FlowRunSort.START_TIME_ASC):
            runs.extend(page)
            if len(runs) >= MAX_SCHEDULED_ROWS:
                break
        runs = runs[:MAX_SCHEDULED_ROWS]
        history.learn_flows(runs)
        history.learn_deployments(runs)
        active = [r.id for r in runs if r.start_time is not None]
        artifacts = history.progress_artifacts(active) if active else {}
        progress = {
            run_id: float(artifact.data)
            for run_id, artifact in artifacts.items()
            if isinstance(artifact.data, int | float)
        }
        notes = {run_id: artifact.description for run_id, artifact in artifacts.items()}
        steps = step_tries(client, active) if active else {}
        rows = _rows(history, runs, progress, steps, notes)
        paused = paused_rows(history, flow_names)
        triggered = trigger_rows(history, flow_names)
    far = datetime.max.replace(tzinfo=UTC)
    return sorted(rows, key=lambda r: r.start_time or far) + triggered + paused


def _rows(
    history: History,
    runs: list[FlowRun],
    progress: dict[UUID, float],
    steps: dict[UUID, Tries],
    progress_notes: dict[UUID, str | None],
) -> list[ScheduledRow]:
    rows = []
    for run in runs:
        row = _row(history, run, progress.get(run.id), steps.get(run.id))
        if row.state == "waiting":
            row = replace(row, note=_waiting_note(run, history, runs))
        elif (waits := object_wait_of(row.state, progress_notes.get(run.id))) is not None:
            row = replace(row, state="waiting", note=waits)
        rows.append(row)
    return rows
