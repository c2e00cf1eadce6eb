"""Prefect run history as the seed's two views (Task Log, Scheduled), and the `cctasks` CLI.

Public API::

    from tasklog import task_log, scheduled, to_frame
    rows = task_log(sort="duration", descending=True, result="failed", limit=20)
    frame = to_frame(rows)
"""

from tasklog.history import (
    DEFAULT_SORT_WINDOW,
    ScheduledRow,
    TaskLogRow,
    prefect_client,
    scheduled,
    task_log,
    to_frame,
)
from tasklog.mapping import FLOW_TYPES, LOG_COLUMNS, SCHEDULED_COLUMNS, FlowType
from tasklog.publish import artifact_rows, publish_task_log
from tasklog.runs import RequestedRun, RunStatus, follow_run, request_run

__all__ = [
    "DEFAULT_SORT_WINDOW",
    "FLOW_TYPES",
    "LOG_COLUMNS",
    "SCHEDULED_COLUMNS",
    "FlowType",
    "RequestedRun",
    "RunStatus",
    "ScheduledRow",
    "TaskLogRow",
    "artifact_rows",
    "follow_run",
    "prefect_client",
    "publish_task_log",
    "request_run",
    "scheduled",
    "task_log",
    "to_frame",
]
