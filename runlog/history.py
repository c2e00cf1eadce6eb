"""The Task Log, read from Prefect's run history with server-side filters, sorts and paging.

This module also holds the reading machinery that the Scheduled view
(:mod:`runlog.planned`) and ``cctasks run --watch`` share.

Prefect is the only store of run history: every call reads the server; nothing is
cached between calls. A query never loads the whole history:

- filters (type -> flow names, result -> state types, ``since``/``until`` -> start
  time, task -> deployment ids or flow-run names) are Prefect filters, evaluated by
  the server;
- Start time sorts server-side both ways (Prefect sorts by start time, or the expected
  start time for a run that never started, exactly the column's definition); End
  time newest-first is ``END_TIME_DESC``; End time oldest-first scans by start time
  oldest-first and stops as soon as no later-starting run can have ended earlier;
- the other columns sort client-side within a window of the newest ``window`` runs
  that match the filters;
- Size, the attempts of a retrying step and Progress come from artifacts read for
  the returned runs only.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import httpx
import pandas as pd
from prefect.client.orchestration import SyncPrefectClient, get_client
from prefect.client.schemas.filters import (
    ArtifactFilter,
    ArtifactFilterFlowRunId,
    ArtifactFilterKey,
    ArtifactFilterType,
    DeploymentFilter,
    DeploymentFilterId,
    DeploymentFilterName,
    FlowFilter,
    FlowFilterId,
    FlowFilterName,
    FlowRunFilter,
    FlowRunFilterDeploymentId,
    FlowRunFilterExpectedStartTime,
    FlowRunFilterName,
    FlowRunFilterParentTaskRunId,
    FlowRunFilterStartTime,
    FlowRunFilterState,
    FlowRunFilterStateType,
)
from prefect.client.schemas.objects import Artifact, FlowRun, StateType
from prefect.client.schemas.responses import DeploymentResponse
from prefect.client.schemas.sorting import ArtifactSort, FlowRunSort
from prefect.settings import PREFECT_API_URL

from contact_center.exceptions import InvalidParameter, ObjectNotFound, SourceUnavailable
from contact_center.settings import OUTCOME_ARTIFACT_KEY
from runlog.mapping import (
    FLOW_TYPES,
    LOG_COLUMNS,
    RESULTS,
    SCHEDULED_COLUMNS,
    SKIPPED,
    error_of,
    flow_type,
    normalise_column,
    resolve_types,
    result_of,
    run_duration,
    size_kb,
)
from runlog.origins import started_by
from runlog.outcomes import RunFacts, run_facts
from runlog.rows import ScheduledRow, TaskLogRow
from runlog.text import clean

__all__ = [
    "DEFAULT_SORT_WINDOW",
    "ScheduledRow",
    "TaskLogRow",
    "prefect_client",
    "task_log",
    "to_frame",
]

# Prefect's API returns at most PREFECT_SERVER_API_DEFAULT_LIMIT (200) objects a read.
PAGE_SIZE = 200
# Client-side sorts look at the newest runs that match the filters, this many by default.
DEFAULT_SORT_WINDOW = 1000
# A scan that filters client-side (object name) stops after this many runs.
MAX_SCAN_RUNS = 20_000
TERMINAL_STATES = [StateType.COMPLETED, StateType.FAILED, StateType.CRASHED, StateType.CANCELLED]
_RESULT_STATES = {
    "completed": [StateType.COMPLETED],
    "failed": [StateType.FAILED, StateType.CRASHED, StateType.CANCELLED],
}


@contextmanager
def prefect_client(timeout: float | None = None) -> Iterator[SyncPrefectClient]:
    """A Prefect client; a server that cannot be reached becomes ``SourceUnavailable``.

    Args:
        timeout: seconds a request may take (default: Prefect's setting).

    Raises:
        SourceUnavailable: naming the API URL, when the server does not answer.
    """
    url = PREFECT_API_URL.value() or "(PREFECT_API_URL is not set)"
    settings: dict[str, Any] = {} if timeout is None else {"timeout": timeout}
    try:
        with get_client(sync_client=True, httpx_settings=settings) as client:
            yield client
    except httpx.TransportError as exc:
        raise SourceUnavailable(
            f"the Prefect server at {url} is not reachable ({type(exc).__name__}); "
            "start it (make up) or set PREFECT_API_URL"
        ) from exc


@dataclass
class _Branch:
    """One server-side query; a view's rows are the union of its branches."""

    deployment_ids: list[UUID] | None = None
    names: list[str] | None = None
    name_like: str | None = None
    without_deployment: bool = False
    keep: Callable[[FlowRun], bool] | None = None


@dataclass
class _Query:
    """The filters common to every branch."""

    flow_names: list[str] | None
    state_types: list[StateType]
    since: datetime | None = None
    until: datetime | None = None
    expected_before: datetime | None = None
    branches: list[_Branch] = field(default_factory=lambda: [_Branch()])


def _start_key(run: FlowRun) -> datetime:
    # Prefect's own start-time sort key: coalesce(start_time, expected_start_time).
    return run.start_time or run.expected_start_time or datetime.min.replace(tzinfo=UTC)


def _end_key(run: FlowRun) -> datetime:
    return run.end_time or datetime.min.replace(tzinfo=UTC)


class _History:
    """Reads runs, flows, deployments and artifacts through one client."""

    def __init__(self, client: SyncPrefectClient) -> None:
        self.client = client
        self.flow_names: dict[UUID, str] = {}
        self.deployments: dict[UUID, DeploymentResponse] = {}
        self._ours_loaded = False

    # --- flows and deployments ----------------------------------------------------

    def load_our_flows(self) -> None:
        """Learn the ids of the five cctasks flows (one small read)."""
        if self._ours_loaded:
            return
        flows = self.client.read_flows(
            flow_filter=FlowFilter(name=FlowFilterName(any_=list(FLOW_TYPES))), limit=PAGE_SIZE
        )
        self.flow_names.update({f.id: f.name for f in flows})
        self._ours_loaded = True

    def learn_flows(self, runs: Iterable[FlowRun]) -> None:
        """Read the names of the runs' flows not seen yet (``--all`` shows other flows)."""
        self.learn_flow_ids(r.flow_id for r in runs)

    def learn_flow_ids(self, flow_ids: Iterable[UUID]) -> None:
        """Read the names of flows not seen yet."""
        missing = list(set(flow_ids) - set(self.flow_names))
        for chunk in _chunks(missing, PAGE_SIZE):
            flows = self.client.read_flows(
                flow_filter=FlowFilter(id=FlowFilterId(any_=chunk)), limit=PAGE_SIZE
            )
            self.flow_names.update({f.id: f.name for f in flows})

    def learn_deployments(self, runs: Iterable[FlowRun]) -> None:
        """Read the deployments of ``runs`` not seen yet."""
        wanted = {r.deployment_id for r in runs if r.deployment_id is not None}
        missing = list(wanted - set(self.deployments))
        for chunk in _chunks(missing, PAGE_SIZE):
            found = self.client.read_deployments(
                deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=chunk)),
                limit=PAGE_SIZE,
            )
            self.deployments.update({d.id: d for d in found})

    def our_deployments(self, flow_names: list[str]) -> list[DeploymentResponse]:
        """Every deployment of the given flows (a few dozen in a contact centre)."""
        found: list[DeploymentResponse] = []
        while True:
            page = self.client.read_deployments(
                flow_filter=FlowFilter(name=FlowFilterName(any_=flow_names)),
                limit=PAGE_SIZE,
                offset=len(found),
            )
            found.extend(page)
            if len(page) < PAGE_SIZE:
                break
        self.deployments.update({d.id: d for d in found})
        return found

    def find_deployments(self, task: str, flow_names: list[str] | None) -> list[DeploymentResponse]:
        """Deployments named ``task`` (``name`` or ``flow/name``) among ``flow_names``."""
        flow_part, _, dep_part = task.rpartition("/")
        flows = [flow_part] if flow_part else flow_names
        found = self.client.read_deployments(
            flow_filter=FlowFilter(name=FlowFilterName(any_=flows)) if flows else None,
            deployment_filter=DeploymentFilter(name=DeploymentFilterName(any_=[dep_part])),
            limit=PAGE_SIZE,
        )
        self.deployments.update({d.id: d for d in found})
        return found

    def deployment_names(self, flow_names: list[str] | None) -> list[str]:
        """``flow/deployment`` of every deployment, for error messages."""
        deps = self.our_deployments(flow_names or list(FLOW_TYPES))
        self.load_our_flows()
        return sorted(f"{self.flow_names.get(d.flow_id, '?')}/{d.name}" for d in deps)

    # --- runs ---------------------------------------------------------------------

    def _filters(self, query: _Query, branch: _Branch) -> tuple[FlowFilter | None, FlowRunFilter]:
        run_filter: dict[str, Any] = {
            "state": FlowRunFilterState(type=FlowRunFilterStateType(any_=query.state_types)),
            # A subflow is a step of a task, not a task.
            "parent_task_run_id": FlowRunFilterParentTaskRunId(is_null_=True),
        }
        if query.since or query.until:
            bounds = {"after_": query.since, "before_": query.until}
            run_filter["start_time"] = FlowRunFilterStartTime.model_validate(
                {k: v for k, v in bounds.items() if v is not None}
            )
        if query.expected_before:
            run_filter["expected_start_time"] = FlowRunFilterExpectedStartTime.model_validate(
                {"before_": query.expected_before}
            )
        if branch.deployment_ids is not None:
            run_filter["deployment_id"] = FlowRunFilterDeploymentId(any_=branch.deployment_ids)
        elif branch.without_deployment:
            run_filter["deployment_id"] = FlowRunFilterDeploymentId(is_null_=True)
        if branch.names is not None:
            run_filter["name"] = FlowRunFilterName(any_=branch.names)
        elif branch.name_like is not None:
            run_filter["name"] = FlowRunFilterName(like_=branch.name_like)
        flow_filter = (
            FlowFilter(name=FlowFilterName(any_=query.flow_names)) if query.flow_names else None
        )
        return flow_filter, FlowRunFilter(**run_filter)

    def pages(self, query: _Query, branch: _Branch, sort: FlowRunSort) -> Iterator[list[FlowRun]]:
        """Pages of runs in ``sort`` order, the branch's client-side check applied."""
        flow_filter, run_filter = self._filters(query, branch)
        offset = 0
        while offset < MAX_SCAN_RUNS:
            page = self.client.read_flow_runs(
                flow_filter=flow_filter,
                flow_run_filter=run_filter,
                sort=sort,
                limit=PAGE_SIZE,
                offset=offset,
            )
            offset += len(page)
            yield [r for r in page if branch.keep is None or branch.keep(r)]
            if len(page) < PAGE_SIZE:
                return

    def _first(self, query: _Query, branch: _Branch, sort: FlowRunSort, want: int) -> list[FlowRun]:
        if branch.keep is None and want <= PAGE_SIZE:
            # The common case: one read of exactly the rows needed.
            flow_filter, run_filter = self._filters(query, branch)
            return self.client.read_flow_runs(
                flow_filter=flow_filter, flow_run_filter=run_filter, sort=sort, limit=want
            )
        found: list[FlowRun] = []
        for page in self.pages(query, branch, sort):
            found.extend(page)
            if len(found) >= want:
                break
        return found[:want]

    def _oldest_ended(self, query: _Query, branch: _Branch, want: int) -> list[FlowRun]:
        # Prefect cannot sort by end time ascending. A run ends after it starts, so scan
        # by start time oldest-first and stop once the next run starts after the
        # want-th earliest end seen: no later run can end before it.
        found: list[FlowRun] = []
        for page in self.pages(query, branch, FlowRunSort.START_TIME_ASC):
            found.extend(page)
            if page and len(found) >= want:
                kth = sorted(_end_key(r) for r in found)[want - 1]
                if _start_key(page[-1]) >= kth:
                    break
        return sorted(found, key=_end_key)[:want]

    def runs(self, query: _Query, order: str, want: int) -> list[FlowRun]:
        """The first ``want`` runs of every branch, merged in ``order``.

        ``order`` is one of start_desc, start_asc, end_desc, end_asc.
        """
        merged: dict[UUID, FlowRun] = {}
        for branch in query.branches:
            if order == "end_asc":
                runs = self._oldest_ended(query, branch, want)
            else:
                sort = {
                    "start_desc": FlowRunSort.START_TIME_DESC,
                    "start_asc": FlowRunSort.START_TIME_ASC,
                    "end_desc": FlowRunSort.END_TIME_DESC,
                }[order]
                runs = self._first(query, branch, sort, want)
            merged.update({r.id: r for r in runs})
        key = _end_key if order.startswith("end") else _start_key
        return sorted(merged.values(), key=key, reverse=order.endswith("desc"))[:want]

    # --- artifacts ----------------------------------------------------------------

    def _artifacts(self, run_ids: list[UUID], artifact_filter: ArtifactFilter) -> list[Artifact]:
        found: list[Artifact] = []
        for chunk in _chunks(run_ids, 100):
            run_filter = artifact_filter.model_copy(
                update={"flow_run_id": ArtifactFilterFlowRunId(any_=chunk)}
            )
            offset = 0
            while True:
                page = self.client.read_artifacts(
                    artifact_filter=run_filter,
                    sort=ArtifactSort.UPDATED_DESC,
                    limit=PAGE_SIZE,
                    offset=offset,
                )
                found.extend(page)
                offset += len(page)
                if len(page) < PAGE_SIZE:
                    break
        return found

    def outcome_facts(self, run_ids: list[UUID]) -> dict[UUID, RunFacts]:
        """Bytes, attempts and first error from each run's outcome artifacts."""
        if not run_ids:
            return {}
        return run_facts(
            self._artifacts(
                run_ids, ArtifactFilter(key=ArtifactFilterKey(any_=[OUTCOME_ARTIFACT_KEY]))
            )
        )

    def progress_artifacts(self, run_ids: list[UUID]) -> dict[UUID, Artifact]:
        """Each run's newest progress artifact (its percent and description)."""
        artifacts = self._artifacts(
            run_ids, ArtifactFilter(type=ArtifactFilterType(any_=["progress"]))
        )
        result: dict[UUID, Artifact] = {}
        for artifact in artifacts:
            if artifact.flow_run_id is not None and artifact.flow_run_id not in result:
                result[artifact.flow_run_id] = artifact
        return result

    def progress(self, run_ids: list[UUID]) -> dict[UUID, float]:
        """Each run's newest progress artifact, in percent."""
        return {
            run_id: float(artifact.data)
            for run_id, artifact in self.progress_artifacts(run_ids).items()
            if isinstance(artifact.data, int | float)
        }

    # --- rows -----------------------------------------------------------------------

    def describe(
        self, flow_id: UUID, deployment_id: UUID | None, run_params: dict[str, Any], name: str
    ) -> tuple[str, str, str, str, str]:
        """(flow name, type label, object, task name, step), without control characters.

        ``name`` is the task name when there is no deployment (the flow-run name).
        """
        flow_name = self.flow_names.get(flow_id, "")
        deployment = self.deployments.get(deployment_id) if deployment_id else None
        params = {**(deployment.parameters if deployment else {}), **run_params}
        ftype = flow_type(flow_name)
        object_name = _text(params.get(ftype.object_param)) if ftype else ""
        step = _text(params.get("step")) or (ftype.default_step if ftype else "")
        if params.get("dry_run") is True:
            step = f"{step} (dry run)"  # an import that changed nothing
        task_name = deployment.name if deployment else name
        label = ftype.label if ftype else flow_name
        return clean(flow_name), clean(label), clean(object_name), clean(task_name), clean(step)

    def _describe(self, run: FlowRun) -> tuple[str, str, str, str, str]:
        return self.describe(run.flow_id, run.deployment_id, run.parameters or {}, run.name)

    def log_row(self, run: FlowRun, facts: RunFacts | None) -> TaskLogRow:
        """The Task Log row of a finished run."""
        flow_name, label, object_name, task_name, step = self._describe(run)
        state_type = run.state.type.value if run.state else "FAILED"
        state_name = (run.state.name if run.state else None) or ""
        start = _plain(run.start_time or run.expected_start_time)
        end = _plain(run.end_time)
        result = result_of(state_type, state_name)
        attempts = max(run.run_count, facts.attempts if facts else 0)
        return TaskLogRow(
            start_time=start,
            end_time=end,
            object_name=object_name,
            task_name=task_name,
            duration=run_duration(_plain(run.start_time), end),
            size_kb=None if state_name == SKIPPED else size_kb(facts.bytes if facts else None),
            result=result,
            error=error_of(
                state_type,
                state_name,
                run.state.message if run.state else None,
                attempts,
                facts.first_error if facts else None,
            ),
            type=label,
            step=step,
            run_id=run.id,
            flow_name=flow_name,
            state=state_name,
            attempts=attempts,
            started_by=started_by(
                run.auto_scheduled,
                run.created_by.type if run.created_by else None,
                run.created_by.display_value if run.created_by else None,
                run.parameters or {},
            ),
        )

    def object_matcher(self, object_name: str) -> Callable[[FlowRun], bool]:
        """A client-side check that a run's object parameter is ``object_name``."""
        wanted = object_name.casefold()

        def keep(run: FlowRun) -> bool:
            ftype = flow_type(self.flow_names.get(run.flow_id, ""))
            if ftype is None:
                return False
            value = (run.parameters or {}).get(ftype.object_param)
            if value is None and run.deployment_id in self.deployments:
                value = self.deployments[run.deployment_id].parameters.get(ftype.object_param)
            return _text(value).casefold() == wanted

        return keep


def _plain(value: datetime | None) -> datetime | None:
    """A standard-library UTC datetime (Prefect's are pendulum-based on Python < 3.13)."""
    if value is None:
        return None
    utc = value.astimezone(UTC)
    return datetime(
        utc.year, utc.month, utc.day, utc.hour, utc.minute, utc.second, utc.microsecond, UTC
    )


def _text(value: Any) -> str:
    return "" if value is None else str(value)


def _chunks(items: list[UUID], size: int) -> Iterator[list[UUID]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _log_query(
    history: _History,
    *,
    types: list[str] | None,
    result: str | None,
    object_name: str | None,
    task: str | None,
    since: datetime | None,
    until: datetime | None,
    include_all: bool,
) -> _Query:
    flow_names = resolve_types(types) if types else (None if include_all else list(FLOW_TYPES))
    if result is not None and result not in RESULTS:
        raise InvalidParameter(f"unknown result {result!r}; valid results: {', '.join(RESULTS)}")
    query = _Query(
        flow_names=flow_names,
        state_types=_RESULT_STATES[result] if result else list(TERMINAL_STATES),
        since=since,
        until=until,
    )
    history.load_our_flows()
    query.branches = _branches(history, query, task, object_name)
    return query


def _branches(
    history: _History, query: _Query, task: str | None, object_name: str | None
) -> list[_Branch]:
    keep = history.object_matcher(object_name) if object_name else None
    if task:
        deployments = history.find_deployments(task, query.flow_names)
        branches = []
        if deployments:
            branches.append(_Branch(deployment_ids=[d.id for d in deployments], keep=keep))
        if "/" not in task:
            # A run without a deployment is known by its flow-run name.
            branches.append(_Branch(names=[task], without_deployment=True, keep=keep))
            if not deployments and not history.client.read_flow_runs(
                flow_run_filter=FlowRunFilter(
                    name=FlowRunFilterName(any_=[task]),
                    deployment_id=FlowRunFilterDeploymentId(is_null_=True),
                ),
                limit=1,
            ):
                branches = []
        if not branches:
            known = history.deployment_names(query.flow_names)
            raise ObjectNotFound(
                f"unknown task {task!r}; known tasks: {', '.join(known) or '(no deployments)'}"
                " or the name of a run without a deployment"
            )
        return branches
    if object_name:
        # Our flow-run names are templated "{object} · {step}", so a name match on
        # "{object} · " finds the runs; runs of deployments for the object are added
        # for those that crashed or were cancelled before they were named. The check
        # on the parameter is exact.
        branches = [_Branch(name_like=f"{object_name} · ", keep=keep)]
        names = query.flow_names or list(FLOW_TYPES)
        ids = [
            d.id
            for d in history.our_deployments(names)
            if _deployment_names_object(history, d, object_name)
        ]
        if ids:
            branches.append(_Branch(deployment_ids=ids, keep=keep))
        return branches
    return [_Branch()]


def _deployment_names_object(history: _History, deployment: DeploymentResponse, name: str) -> bool:
    ftype = flow_type(history.flow_names.get(deployment.flow_id, ""))
    if ftype is None:
        return False
    values = [deployment.parameters.get(ftype.object_param)]
    values += [(s.parameters or {}).get(ftype.object_param) for s in deployment.schedules or []]
    return any(_text(v).casefold() == name.casefold() for v in values)


def _sort_rows(rows: list[TaskLogRow], key: str, descending: bool) -> list[TaskLogRow]:
    """Sort on one column; empty values go last both ways; ties keep newest first."""

    def value(row: TaskLogRow) -> Any:
        v = getattr(row, key)
        return v.casefold() if isinstance(v, str) else v

    present = [r for r in rows if value(r) not in (None, "")]
    missing = [r for r in rows if value(r) in (None, "")]
    return sorted(present, key=value, reverse=descending) + missing


def task_log(
    *,
    sort: str = "start_time",
    descending: bool = True,
    types: list[str] | None = None,
    result: str | None = None,
    object_name: str | None = None,
    task: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    limit: int = 50,
    window: int = DEFAULT_SORT_WINDOW,
    include_all: bool = False,
    client: SyncPrefectClient | None = None,
) -> list[TaskLogRow]:
    """The Task Log: finished runs (completed, failed, crashed, cancelled), newest first.

    Args:
        sort: a column key or header (see ``LOG_COLUMNS``); Start time and End time
            sort on the server, the others within the ``window`` newest runs.
        descending: newest (largest) first.
        types: seed Type labels or flow names.
        result: ``completed`` or ``failed``.
        object_name: the object (list, campaign, report), any case.
        task: a deployment name (``name`` or ``flow/name``), or the flow-run name of
            a run without a deployment.
        since: runs that started at or after this time (aware).
        until: runs that started at or before this time (aware).
        limit: at most this many rows.
        window: how many of the newest matching runs a client-side sort considers.
        include_all: also show runs of flows that are not cctasks flows.
        client: a client to read with (else one is opened for the call).

    Returns:
        The rows, at most ``limit``.

    Raises:
        InvalidParameter: an unknown column, type or result.
        ObjectNotFound: an unknown task.
        SourceUnavailable: the Prefect server cannot be reached.
    """
    if client is None:
        with prefect_client() as own:
            return task_log(
                sort=sort,
                descending=descending,
                types=types,
                result=result,
                object_name=object_name,
                task=task,
                since=since,
                until=until,
                limit=limit,
                window=window,
                include_all=include_all,
                client=own,
            )
    key = normalise_column(sort, LOG_COLUMNS)
    if limit < 1:
        raise InvalidParameter(f"limit must be at least 1, not {limit}")
    history = _History(client)
    query = _log_query(
        history,
        types=types,
        result=result,
        object_name=object_name,
        task=task,
        since=since,
        until=until,
        include_all=include_all,
    )
    server_side = key in ("start_time", "end_time")
    if server_side:
        order = ("start_" if key == "start_time" else "end_") + ("desc" if descending else "asc")
        runs = history.runs(query, order, limit)
    else:
        runs = history.runs(query, "start_desc", max(window, limit))
    history.learn_flows(runs)
    history.learn_deployments(runs)
    # Size and Error come partly from the outcome artifacts: read them for the whole
    # window only when sorting on those columns, else for the rows shown.
    facts_first = key in ("size_kb", "error")
    facts = history.outcome_facts([r.id for r in runs]) if facts_first else {}
    rows = [history.log_row(r, facts.get(r.id)) for r in runs]
    if not server_side:
        rows = _sort_rows(rows, key, descending)[:limit]
    if not facts_first:
        by_id = {r.id: r for r in runs}
        facts = history.outcome_facts([r.run_id for r in rows])
        rows = [history.log_row(by_id[r.run_id], facts.get(r.run_id)) for r in rows]
    return rows


def to_frame(rows: list[TaskLogRow] | list[ScheduledRow]) -> pd.DataFrame:
    """The rows as a DataFrame with the seed's column headers, values typed.

    Times are UTC datetimes, Duration a timedelta, Size (KB) and Progress floats.
    """
    is_log = not rows or isinstance(rows[0], TaskLogRow)
    columns = LOG_COLUMNS if is_log else SCHEDULED_COLUMNS
    data = {header: [getattr(r, key) for r in rows] for key, header in columns}
    frame = pd.DataFrame(data, columns=[header for _, header in columns])
    for header in ("Start time", "End time"):
        if header in frame:
            frame[header] = pd.to_datetime(frame[header], utc=True)
    if "Duration" in frame:
        frame["Duration"] = pd.to_timedelta(frame["Duration"])
    return frame
