"""Prefect run history as the seed's two views (Task Log, Scheduled), and the `cctasks` CLI.

Public API::

    from tasklog import task_log, scheduled, to_frame
    rows = task_log(sort="duration", descending=True, result="failed", limit=20)
    frame = to_frame(rows)
"""

from tasklog.history import DEFAULT_SORT_WINDOW, prefect_client, task_log, to_frame
from tasklog.mapping import FLOW_TYPES, LOG_COLUMNS, SCHEDULED_COLUMNS, FlowType
from tasklog.pausing import pause_task, resume_task
from tasklog.planned import scheduled
from tasklog.publish import artifact_rows, publish_task_log
from tasklog.rows import ScheduledRow, TaskLogRow
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
    "pause_task",
    "prefect_client",
    "publish_task_log",
    "request_run",
    "resume_task",
    "scheduled",
    "task_log",
    "to_frame",
]
