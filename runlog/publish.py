"""The ``task-log`` table artifact: the newest 100 Task Log rows, for the Prefect UI.

Every flow republishes it from a state hook when one of its runs ends (the flows are
decorated with :func:`publishes_task_log`), so the UI's Artifacts page shows the task
log. No step inside a flow publishes it.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any, TypeVar, cast
from uuid import UUID

from prefect import Flow
from prefect.artifacts import create_table_artifact
from prefect.client.schemas.actions import ArtifactCreate
from prefect.client.schemas.objects import FlowRun, State
from prefect.logging.loggers import flow_run_logger

from contact_center.settings import TASK_LOG_ARTIFACT_KEY
from runlog.client import prefect_client
from runlog.history import task_log
from runlog.mapping import LOG_COLUMNS, format_duration, format_size_kb
from runlog.rows import TaskLogRow

__all__ = [
    "TASK_LOG_ROWS",
    "artifact_rows",
    "publish_task_log",
    "publish_task_log_hook",
    "publishes_task_log",
]

TASK_LOG_ROWS = 100


def _utc_text(value: datetime | None) -> str:
    return "" if value is None else value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def artifact_rows(rows: list[TaskLogRow]) -> list[dict[str, Any]]:
    """Rows in the seed's columns as text, times in UTC (the UI has no local zone)."""
    table = []
    for row in rows:
        values: dict[str, Any] = {}
        for key, header in LOG_COLUMNS:
            value = getattr(row, key)
            if key in ("start_time", "end_time"):
                value = _utc_text(value)
            elif key == "duration":
                value = format_duration(value)
            elif key == "size_kb":
                value = format_size_kb(value)
            values[header] = value
        table.append(values)
    return table


def publish_task_log(flow_run_id: UUID | None = None) -> None:
    """Publish the ``task-log`` artifact: the newest rows of the Task Log, times in UTC.

    Args:
        flow_run_id: the run whose end publishes it. Given by the state hook, because a
            run refused for its parameters ends before Prefect opens its run context,
            and an artifact made from no context is deprecated.
    """
    with prefect_client() as client:
        rows = task_log(limit=TASK_LOG_ROWS, client=client)
        if flow_run_id is None:
            create_table_artifact(
                table=artifact_rows(rows),
                key=TASK_LOG_ARTIFACT_KEY,
                description=_description(rows),
            )
            return
        client.create_artifact(
            ArtifactCreate(
                type="table",
                key=TASK_LOG_ARTIFACT_KEY,
                description=_description(rows),
                data=json.dumps(artifact_rows(rows)),
                flow_run_id=flow_run_id,
            )
        )


def _description(rows: list[TaskLogRow]) -> str:
    return (
        f"Task log: the newest {len(rows)} runs (times in UTC), "
        f"as of {_utc_text(datetime.now(UTC))}"
    )


def publish_task_log_hook(flow: Flow[Any, Any], flow_run: FlowRun, state: State[Any]) -> None:
    """The state hook that republishes the artifact when a run ends, however it ends.

    Prefect calls it once the run's final state is on the server (a failure that will
    be retried is not final, so it calls nothing then), so the run's own row is read
    like any other. The task log is a view of the history, not part of the run's work:
    a failure to publish is logged and never changes the run's state or its error.
    """
    try:
        publish_task_log(flow_run.id)
    except Exception as exc:
        flow_run_logger(flow_run, flow).warning("task-log artifact not republished: %s", exc)


F = TypeVar("F", bound="Flow[Any, Any]")


def publishes_task_log(flow: F) -> F:
    """Attach :func:`publish_task_log_hook` to every way ``flow``'s runs can end."""
    hook = [publish_task_log_hook]
    return cast(
        F,
        flow.with_options(
            on_completion=[*flow.on_completion_hooks, *hook],
            on_failure=[*flow.on_failure_hooks, *hook],
            on_cancellation=[*flow.on_cancellation_hooks, *hook],
            on_crashed=[*flow.on_crashed_hooks, *hook],
        ),
    )
