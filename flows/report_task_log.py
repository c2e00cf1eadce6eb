"""The ``task-log`` report of the catalogue: Prefect's run history as report rows.

Its rows come from Prefect's run history through the views package (``runlog``),
which the domain (``contact_center.reports``) must not import: the report is
defined there and registered here, with the function that reads the runs.
:mod:`flows.report_execution` imports this module, so the report is in the
catalogue wherever reports run.
"""

from __future__ import annotations

import pandas as pd
from prefect import get_run_logger

from contact_center.reports import (
    RUN_COLUMNS,
    Period,
    ReportQuery,
    register_report,
    task_log_definition,
)

__all__ = ["TASK_LOG", "TASK_LOG_REPORT_MAX_RUNS", "task_log_runs"]

TASK_LOG_REPORT_MAX_RUNS = 10_000


def task_log_runs(period: Period, request: ReportQuery) -> pd.DataFrame:
    """The finished runs that started in ``period``, as rows of :data:`RUN_COLUMNS`.

    Read through the views package (``runlog.task_log``); the report's ``types``
    option is its filter (Type labels or flow names). ``failed_only`` is applied by
    the report itself.
    """
    import runlog

    types = request.options.get("types")
    rows = runlog.task_log(
        sort="start_time",
        descending=False,
        types=[types] if isinstance(types, str) else types,
        since=period.start_utc,
        until=period.end_utc,
        limit=TASK_LOG_REPORT_MAX_RUNS,
    )
    records = [
        {
            "start_time": row.start_time,
            "end_time": row.end_time,
            "type": row.type,
            "object_name": row.object_name,
            "task_name": row.task_name,
            "step": row.step,
            "attempts": row.attempts,
            "duration_seconds": row.duration.total_seconds() if row.duration else None,
            "size_kb": row.size_kb,
            "result": row.result,
            "error": row.error,
        }
        for row in rows
        # ``until`` is inclusive there; a period's end is not part of it.
        if row.start_time is None or row.start_time < period.end_utc
    ]
    if len(rows) >= TASK_LOG_REPORT_MAX_RUNS:
        get_run_logger().warning(
            "the task-log report lists only the first %d runs of %s",
            TASK_LOG_REPORT_MAX_RUNS,
            period.description,
        )
    return pd.DataFrame(records, columns=list(RUN_COLUMNS))


TASK_LOG = register_report(task_log_definition(task_log_runs), replace=True)
