"""Prefect's run history as the rows of the two views (Task Log, Scheduled), run requests,
pausing, and the task-log artifact.

Public API::

    from runlog import task_log, scheduled, to_frame
    rows = task_log(sort="duration", descending=True, result="failed", limit=20)
    frame = to_frame(rows)
"""

from runlog.client import prefect_client
from runlog.history import DEFAULT_SORT_WINDOW, task_log, to_frame
from runlog.mapping import FLOW_TYPES, LOG_COLUMNS, SCHEDULED_COLUMNS, FlowType
from runlog.pausing import pause_task, resume_task
from runlog.planned import scheduled
from runlog.publish import artifact_rows, publish_task_log
from runlog.rows import ScheduledRow, TaskLogRow
from runlog.runs import RequestedRun, RunStatus, follow_run, request_run

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
