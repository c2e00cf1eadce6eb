"""The task-log report: the runs of a period, summarised. Pure shaping, no Prefect.

The rows come from Prefect's run history, which this package must not reach; the
flows layer supplies a function that returns them as a DataFrame with the
columns of :data:`RUN_COLUMNS`, and registers the report built by
:func:`task_log_definition`.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

import pandas as pd

from contact_center.exceptions import InvalidParameter
from contact_center.reports.builtin import chart_of
from contact_center.reports.catalogue import ReportContent, ReportDefinition, ReportQuery
from contact_center.reports.periods import Period, day_starts

__all__ = ["RUN_COLUMNS", "format_duration", "task_log_content", "task_log_definition"]

#: The columns a run-history source returns (times aware; result completed, completed
#: (skipped) or failed: a skipped run counts as completed).
RUN_COLUMNS = (
    "start_time",
    "end_time",
    "type",
    "object_name",
    "task_name",
    "step",
    "attempts",
    "duration_seconds",
    "size_kb",
    "result",
    "error",
)

RunSource = Callable[[Period, ReportQuery], pd.DataFrame]


def format_duration(seconds: float | None) -> str:
    """``mm:ss`` as the seed shows durations (minutes keep counting past an hour)."""
    if seconds is None or pd.isna(seconds):
        return ""
    whole = int(round(float(seconds)))
    return f"{whole // 60:02d}:{whole % 60:02d}"


def _local_text(moment: datetime | None, tz: str) -> str:
    if moment is None or pd.isna(moment):
        return ""
    return pd.Timestamp(moment).tz_convert(tz).strftime("%Y-%m-%d %H:%M:%S")


def _kb(size: float | None) -> float | None:
    if size is None or pd.isna(size):
        return None
    return round(float(size), 1)


def task_log_content(runs: pd.DataFrame, period: Period) -> ReportContent:
    """Shape run rows into the report's tables, highlights and chart data.

    Args:
        runs: one row per run with the columns of :data:`RUN_COLUMNS`.
        period: the period; days are its local days.
    """
    missing = [c for c in RUN_COLUMNS if c not in runs.columns]
    if missing:
        raise ValueError(f"run rows lack the columns {', '.join(missing)}")
    tz = period.time_zone
    runs = runs.sort_values("start_time", kind="stable").reset_index(drop=True)
    failed = runs["result"].astype(str) == "failed"
    table = pd.DataFrame(
        {
            "Start time": [_local_text(t, tz) for t in runs["start_time"]],
            "End time": [_local_text(t, tz) for t in runs["end_time"]],
            "Type": runs["type"].astype(object),
            "Object name": runs["object_name"].astype(object),
            "Task name": runs["task_name"].astype(object),
            "Step": runs["step"].astype(object),
            "Attempts": runs["attempts"].astype(object),
            "Duration": [format_duration(s) for s in runs["duration_seconds"]],
            "Size (KB)": [_kb(s) for s in runs["size_kb"]],
            "Result": runs["result"].astype(object),
            "Error": runs["error"].where(runs["error"].notna(), "").astype(object),
        }
    )
    by_type = _by_type(runs, failed)
    days = [bound.date().isoformat() for bound in day_starts(period)[:-1]]
    day = [
        pd.Timestamp(t).tz_convert(tz).date().isoformat() if not pd.isna(t) else None
        for t in runs["start_time"]
    ]
    per_day = (
        pd.DataFrame({"day": day, "completed": (~failed).astype(int), "failed": failed.astype(int)})
        .dropna(subset=["day"])
        .groupby("day")[["completed", "failed"]]
        .sum()
        .reindex(days, fill_value=0)
    )
    size = pd.to_numeric(runs["size_kb"], errors="coerce").fillna(0).sum()
    highlights = {
        "Runs": len(runs),
        "Completed": int((~failed).sum()),
        "Failed": int(failed.sum()),
        "Size (KB)": round(float(size), 1),
    }
    return ReportContent(
        tables={"Runs": table, "By type": by_type}, highlights=highlights, chart_frame=per_day
    )


def _by_type(runs: pd.DataFrame, failed: pd.Series) -> pd.DataFrame:
    frame = pd.DataFrame(
        {
            "Type": runs["type"].astype(str),
            "Runs": 1,
            "Completed": (~failed).astype(int),
            "Failed": failed.astype(int),
            "seconds": pd.to_numeric(runs["duration_seconds"], errors="coerce").fillna(0),
            "size_kb": pd.to_numeric(runs["size_kb"], errors="coerce").fillna(0),
        }
    )
    grouped = frame.groupby("Type", sort=True).sum().reset_index()
    grouped["Total duration"] = [format_duration(s) for s in grouped["seconds"]]
    grouped["Size (KB)"] = grouped["size_kb"].round(1)
    return grouped[["Type", "Runs", "Completed", "Failed", "Total duration", "Size (KB)"]]


def _filtered(runs: pd.DataFrame, request: ReportQuery) -> pd.DataFrame:
    # ``types`` is the source's own filter (it knows flow names as well as labels).
    if _truthy(request.options.get("failed_only", False)):
        runs = runs[runs["result"] == "failed"]
    return runs


def _truthy(value: object) -> bool:
    if isinstance(value, str):
        if value.strip().lower() not in ("true", "false", "yes", "no", "1", "0"):
            raise InvalidParameter(f"option failed_only must be true or false, not {value!r}")
        return value.strip().lower() in ("true", "yes", "1")
    return bool(value)


def task_log_definition(source: RunSource) -> ReportDefinition:
    """The ``task-log`` report, reading its rows through ``source``.

    Args:
        source: returns the runs that started in a period (columns of :data:`RUN_COLUMNS`).
    """

    def query(request: ReportQuery) -> ReportContent:
        return task_log_content(_filtered(source(request.period, request), request), request.period)

    return ReportDefinition(
        name="task-log",
        title="Task log",
        description=(
            "The tasks that started in the period, from Prefect's run history: start and end, "
            "object, task, step, attempts, duration, size, result and error; totals per type, "
            "and a chart of runs per day by result."
        ),
        query=query,
        chart=chart_of("Runs per day by result", "runs", stacked=True),
        chart_title="Runs per day by result",
        options={
            "types": "only these task types: Type labels (Calling list import) or flow names",
            "failed_only": "only the failed runs (true/false)",
        },
        needs_database=False,
    )
