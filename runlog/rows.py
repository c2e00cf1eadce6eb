"""The rows of the two views: the seed's columns, then facts for programs."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from uuid import UUID

__all__ = ["ScheduledRow", "TaskLogRow"]


@dataclass(frozen=True)
class TaskLogRow:
    """One row of the Task Log: the seed's ten columns, then facts for programs.

    Attributes:
        start_time: when the run started (aware, UTC); for a run that never started,
            when it was expected to.
        end_time: when it ended (aware, UTC).
        object_name: the list, exclusion list, campaign or report.
        task_name: the deployment's name; for a run without one, the flow-run name.
        duration: end - start (``00:00`` for a run that ended before it started).
        size_kb: bytes transferred (the outcome artifact's ``bytes``) in KB, one
            decimal; empty for a skipped run.
        result: ``completed``, ``completed (skipped)`` or ``failed`` (crashed and
            cancelled runs are failed).
        error: why a run did not complete, why it was skipped, or that it completed
            after retries; without secrets or control characters.
        type: the seed's Type label (for a non-cctasks flow: the flow's name).
        step: the ``step`` parameter, or the type's own step.
        run_id: the flow run's id.
        flow_name: the flow's name.
        state: Prefect's state name (Completed, Skipped, Failed, Crashed, Cancelled).
        attempts: the number of attempts: the tries of the run's retrying step or of
            the flow, whichever is higher.
        started_by: what started the run: ``schedule``, ``manual``, ``file
            <location>``, ``chain after <deployment>`` or ``automation <name>``.
    """

    start_time: datetime | None
    end_time: datetime | None
    object_name: str
    task_name: str
    duration: timedelta | None
    size_kb: float | None
    result: str
    error: str
    type: str
    step: str
    run_id: UUID
    flow_name: str
    state: str
    attempts: int
    started_by: str = ""


@dataclass(frozen=True)
class ScheduledRow:
    """One row of the Scheduled and In-Progress Tasks view.

    Attributes:
        start_time: the expected start of a scheduled or pending run (for a retrying
            run, of its next attempt); the start of a running run; empty for a
            paused task. Aware, UTC.
        object_name: the list, exclusion list, campaign or report.
        task_name: the deployment's name; for a run without one, the flow-run name.
        attempts: attempts so far, or the one a retrying run waits for: the tries of
            its retrying step or of the flow, whichever is higher.
        state: scheduled, late, waiting, pending, in progress, retrying or paused.
        progress: percent done from the run's progress artifact, if it has one.
        type: the seed's Type label.
        step: the ``step`` the run will execute (per schedule), or the type's own step.
        run_id: the flow run's id; ``None`` for a paused task (it has no run).
        flow_name: the flow's name.
        note: what a waiting run waits for, which step retries, or which schedule
            is paused; empty otherwise.
        max_attempts: how many tries the retrying step (or flow) has, when known.
    """

    start_time: datetime | None
    object_name: str
    task_name: str
    attempts: int
    state: str
    progress: float | None
    type: str
    step: str
    run_id: UUID | None
    flow_name: str
    note: str = ""
    max_attempts: int | None = None

    @property
    def attempts_text(self) -> str:
        """``2 of 3`` while a step retries or after it did, else the plain number."""
        if (
            self.max_attempts
            and self.max_attempts > 1
            and (self.attempts > 1 or self.state == "retrying")
        ):
            return f"{self.attempts} of {self.max_attempts}"
        return str(self.attempts)
