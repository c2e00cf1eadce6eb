"""The Task Log, read from Prefect's run history with server-side filters, sorts and paging.

The reading machinery it shares with the Scheduled view and ``cctasks run --watch`` is
:mod:`runlog.reader`; the client is :mod:`runlog.client`.

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

from datetime import datetime
from typing import Any

import pandas as pd
from prefect.client.orchestration import SyncPrefectClient
from prefect.client.schemas.filters import (
    FlowRunFilter,
    FlowRunFilterDeploymentId,
    FlowRunFilterName,
)
from prefect.client.schemas.objects import StateType
from prefect.client.schemas.responses import DeploymentResponse

from contact_center.exceptions import InvalidParameter, ObjectNotFound
from runlog.client import prefect_client
from runlog.mapping import (
    FLOW_TYPES,
    LOG_COLUMNS,
    RESULTS,
    SCHEDULED_COLUMNS,
    flow_type,
    normalise_column,
    resolve_types,
)
from runlog.reader import Branch, History, Query, as_text
from runlog.rows import ScheduledRow, TaskLogRow

__all__ = [
    "DEFAULT_SORT_WINDOW",
    "ScheduledRow",
    "TaskLogRow",
    "task_log",
    "to_frame",
]

# Client-side sorts look at the newest runs that match the filters, this many by default.
DEFAULT_SORT_WINDOW = 1000
TERMINAL_STATES = [StateType.COMPLETED, StateType.FAILED, StateType.CRASHED, StateType.CANCELLED]
_RESULT_STATES = {
    "completed": [StateType.COMPLETED],
    "failed": [StateType.FAILED, StateType.CRASHED, StateType.CANCELLED],
}


def _log_query(
    history: History,
    *,
    types: list[str] | None,
    result: str | None,
    object_name: str | None,
    task: str | None,
    since: datetime | None,
    until: datetime | None,
    include_all: bool,
) -> Query:
    flow_names = resolve_types(types) if types else (None if include_all else list(FLOW_TYPES))
    if result is not None and result not in RESULTS:
        raise InvalidParameter(f"unknown result {result!r}; valid results: {', '.join(RESULTS)}")
    query = Query(
        flow_names=flow_names,
        state_types=_RESULT_STATES[result] if result else list(TERMINAL_STATES),
        since=since,
        until=until,
    )
    history.load_our_flows()
    query.branches = _branches(history, query, task, object_name)
    return query


def _branches(
    history: History, query: Query, task: str | None, object_name: str | None
) -> list[Branch]:
    keep = history.object_matcher(object_name) if object_name else None
    if task:
        deployments = history.find_deployments(task, query.flow_names)
        branches = []
        if deployments:
            branches.append(Branch(deployment_ids=[d.id for d in deployments], keep=keep))
        if "/" not in task:
            # A run without a deployment is known by its flow-run name.
            branches.append(Branch(names=[task], without_deployment=True, keep=keep))
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
        branches = [Branch(name_like=f"{object_name} · ", keep=keep)]
        names = query.flow_names or list(FLOW_TYPES)
        ids = [
            d.id
            for d in history.our_deployments(names)
            if _deployment_names_object(history, d, object_name)
        ]
        if ids:
            branches.append(Branch(deployment_ids=ids, keep=keep))
        return branches
    return [Branch()]


def _deployment_names_object(history: History, deployment: DeploymentResponse, name: str) -> bool:
    ftype = flow_type(history.flow_names.get(deployment.flow_id, ""))
    if ftype is None:
        return False
    values = [deployment.parameters.get(ftype.object_param)]
    values += [(s.parameters or {}).get(ftype.object_param) for s in deployment.schedules or []]
    return any(as_text(v).casefold() == name.casefold() for v in values)


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
    history = History(client)
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
