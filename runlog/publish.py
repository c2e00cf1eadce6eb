"""The ``task-log`` table artifact: the newest 100 Task Log rows, for the Prefect UI.

Every flow run republishes it when it ends (see ``flows/common/outcome.py``), so the
UI's Artifacts page shows the task log. The run that publishes is still running at
that moment, so its own row is composed from what it knows: now as its end time,
its outcome's bytes, and its result (a failure that Prefect will retry is not an
end, so such an attempt adds no row of its own).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from prefect.artifacts import create_table_artifact
from prefect.client.schemas.objects import State
from prefect.context import FlowRunContext
from prefect.states import Completed, Failed

from contact_center.outcome import Outcome
from contact_center.settings import TASK_LOG_ARTIFACT_KEY
from runlog.history import _History, prefect_client, task_log
from runlog.mapping import LOG_COLUMNS, SKIPPED, format_duration, format_size_kb
from runlog.outcomes import RunFacts
from runlog.rows import TaskLogRow

__all__ = ["TASK_LOG_ROWS", "artifact_rows", "publish_task_log"]

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


def _current_row(
    history: _History, outcome: Outcome, error: BaseException | None
) -> TaskLogRow | None:
    context = FlowRunContext.get()
    if context is None or context.flow_run is None:
        return None
    run = history.client.read_flow_run(context.flow_run.id)
    retries = (context.flow.retries or 0) if context.flow is not None else 0
    if error is not None and (not isinstance(error, Exception) or run.run_count <= retries):
        return None  # Prefect will retry, or the run is being interrupted: not an end.
    state: State[Any] = (
        Completed(
            name=SKIPPED if outcome.status == "skipped" else "Completed", message=outcome.message
        )
        if error is None
        else Failed(message=f"Flow run encountered an exception: {outcome.message or error}")
    )
    first_error = outcome.first_error
    if first_error is None and run.run_count > 1:
        # Retried as a whole: the run's earlier outcome artifacts say why it failed first.
        earlier = history.outcome_facts([run.id]).get(run.id)
        first_error = earlier.first_error if earlier else None
    facts = RunFacts(
        outcome=outcome,
        bytes=outcome.bytes,
        attempts=max(outcome.attempts, run.run_count),
        first_error=first_error,
    )
    ended = run.model_copy(update={"state": state, "end_time": datetime.now(UTC)})
    history.load_our_flows()
    history.learn_flows([ended])
    history.learn_deployments([ended])
    return history.log_row(ended, facts)


def publish_task_log(outcome: Outcome, error: BaseException | None = None) -> None:
    """Republish the ``task-log`` artifact from inside a flow run (no-op outside one).

    Args:
        outcome: the ending run's outcome (its Size).
        error: the exception the run is failing with, if it is failing.
    """
    if FlowRunContext.get() is None:
        return
    with prefect_client() as client:
        current = _current_row(_History(client), outcome, error)
        rows = task_log(limit=TASK_LOG_ROWS, client=client)
    if current is not None:
        rows = [r for r in rows if r.run_id != current.run_id] + [current]
        far_past = datetime.min.replace(tzinfo=UTC)
        rows = sorted(rows, key=lambda r: r.start_time or far_past, reverse=True)[:TASK_LOG_ROWS]
    create_table_artifact(
        table=artifact_rows(rows),
        key=TASK_LOG_ARTIFACT_KEY,
        description=f"Task log: the newest {len(rows)} runs (times in UTC), "
        f"as of {_utc_text(datetime.now(UTC))}",
    )
