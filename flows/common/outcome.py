"""Recording a run's outcome and progress as artifacts on the Prefect server.

Artifacts live on the server, so the task log can be read from any machine.
Outside a flow run (a plain function call) these helpers record nothing.

A flow ends with ``return final_state(outcome)``: a skipped run then ends in a
state named ``Skipped`` (of Prefect's Completed type), so that the run history says
what happened without reading the artifact.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, cast
from uuid import UUID

from prefect import get_run_logger
from prefect.artifacts import (
    create_markdown_artifact,
    create_progress_artifact,
    create_table_artifact,
    update_progress_artifact,
)
from prefect.client.schemas.objects import State
from prefect.context import FlowRunContext
from prefect.states import Completed

from contact_center.outcome import Outcome
from contact_center.settings import OUTCOME_ARTIFACT_KEY, PROGRESS_MIN_INTERVAL_SECONDS
from flows.common.attempts import Attempt, current_attempt, error_text

__all__ = [
    "SKIPPED_STATE_NAME",
    "RunProgress",
    "final_state",
    "record_outcome",
    "recording_outcome",
]

#: The name of the final state of a run that had nothing to do (a Completed state).
SKIPPED_STATE_NAME = "Skipped"


def _in_flow_run() -> bool:
    return FlowRunContext.get() is not None


def _markdown_text(text: str) -> str:
    """``text`` shown as written by a Markdown renderer (no emphasis, links or tables)."""
    return re.sub(r"([\\`*_\[\]<>|~])", r"\\\1", text)


def _summary_markdown(outcome: Outcome) -> str:
    """The outcome as the run's page shows it: its summary line first, where a failed
    run's error is read without opening the logs, then every field in a table."""
    lines = [
        f"**{_markdown_text(outcome.summary())}**",
        "",
        f"### {outcome.object_name} · {outcome.step}: {outcome.status}",
        "",
        "| field | value |",
        "|---|---|",
    ]
    for key, value in outcome.to_row().items():
        if value in (None, "", "{}", "[]") or key in ("object_name", "step", "status"):
            continue
        text = str(value).replace("|", "\\|").replace("\n", " ")
        lines.append(f"| {key} | {text} |")
    return "\n".join(lines)


def record_outcome(outcome: Outcome) -> None:
    """Store ``outcome`` as artifacts of the current flow run.

    A one-row table artifact under the key ``cctasks-outcome`` is what the task log
    reads; a markdown artifact is its readable form in the run's Artifacts tab.
    """
    if not _in_flow_run():
        return
    create_table_artifact(
        table=[outcome.to_row()],
        key=OUTCOME_ARTIFACT_KEY,
        description=f"Outcome of {outcome.object_name} · {outcome.step}",
    )
    # The run's Artifacts tab shows each artifact's description, not its content: the
    # summary (a failed run's error) is read there without opening anything.
    create_markdown_artifact(markdown=_summary_markdown(outcome), description=outcome.summary())


def _count_flow_attempts(outcome: Outcome) -> None:
    """Count the flow's own tries (``@flow(retries=...)``) when they are more."""
    context = FlowRunContext.get()
    if context is not None and context.flow_run is not None:
        outcome.attempts = max(outcome.attempts, context.flow_run.run_count)


def final_state(outcome: Outcome) -> State[Any]:
    """The state a flow returns to end its run: ``Skipped`` or ``Completed``.

    Both are of Prefect's Completed type and carry the outcome's message; a caller
    of the flow still gets the outcome itself (Prefect returns the state's data).
    """
    name = SKIPPED_STATE_NAME if outcome.status == "skipped" else "Completed"
    return Completed(name=name, message=outcome.message, data=outcome)


@contextmanager
def recording_outcome(outcome: Outcome) -> Iterator[Outcome]:
    """Record ``outcome`` when the block ends, whether it succeeds or fails.

    A failure marks the outcome ``failed`` with the error's message and re-raises,
    so that Prefect marks the run Failed. What the block filled in before the
    failure is kept.
    """
    try:
        yield outcome
    except BaseException as exc:
        outcome.status = "failed"
        outcome.message = f"{type(exc).__name__}: {exc}"
        _count_flow_attempts(outcome)
        record_outcome(outcome)
        raise
    if outcome.status == "running":
        outcome.status = "completed"
    _count_flow_attempts(outcome)
    record_outcome(outcome)
    if _in_flow_run():
        get_run_logger().info(
            "%s · %s %s: %s",
            outcome.object_name,
            outcome.step,
            outcome.status,
            outcome.message or "",
        )


class RunProgress:
    """The run's progress artifact, from 0 to 100 %, over weighted stages.

    Its description names the stage, how far it is in bytes or rows, and the try of
    a retrying step, e.g. ``Spring Leads · import: fetch, 12.5 MB of 125.0 MB,
    attempt 2 of 3`` (what ``cctasks run --watch`` shows next to its bar).

    Example:
        ```python
        progress = RunProgress({"fetch": 0.4, "load": 0.6}, units={"fetch": "bytes"})
        progress.update("fetch", done=512, total=1024)   # 20 %
        progress.update("load", done=10, total=10)       # 80 %: fetch is at half
        progress.update("fetch", done=1024, total=1024)  # 100 %
        ```

    Args:
        stages: stage name -> weight.
        description: what the run is, the description's prefix.
        outcome: the run's outcome, whose ``attempts`` and ``first_error`` the
            retrying steps fill (see :meth:`attempt`).
        units: stage name -> ``bytes`` or ``rows``, for the description's counts.
    """

    def __init__(
        self,
        stages: dict[str, float],
        description: str = "progress",
        outcome: Outcome | None = None,
        units: dict[str, str] | None = None,
    ) -> None:
        total = sum(stages.values())
        self._weights = {name: weight / total for name, weight in stages.items()}
        self._done: dict[str, float] = {}
        self._counts: dict[str, tuple[float, float | None]] = {}
        self._units = units or {}
        self._description = description
        self._outcome = outcome
        self._attempt: Attempt | None = None
        self._failed_try: str | None = None
        # The fetch and the load report from two threads while the file arrives.
        self._lock = threading.Lock()
        self._artifact_id: UUID | None = None
        self._last_sent = 0.0
        self.value = 0.0

    def update(self, stage: str, done: float, total: float | None, force: bool = False) -> None:
        """Report ``done`` of ``total`` units of ``stage`` (throttled to a few a second)."""
        fraction = 1.0 if not total else min(max(done / total, 0.0), 1.0)
        with self._lock:
            self._done[stage] = fraction
            self._counts[stage] = (done, total)
            self.value = round(100.0 * self._fraction(), 1)
            now = time.monotonic()
            if not force and now - self._last_sent < PROGRESS_MIN_INTERVAL_SECONDS:
                return
            self._send(self._describe(stage))
            self._last_sent = now

    @contextmanager
    def attempt(self, stage: str) -> Iterator[Attempt]:
        """Count one try of a retrying step; wrap the body of the step's Prefect task.

        The try's number comes from Prefect (the task run's ``run_count``). The
        outcome's ``attempts`` becomes the highest try seen; once a second try
        starts, the first try's error becomes the outcome's ``first_error`` (a try
        that Prefect does not retry leaves none). The progress description says which
        try runs, or that one failed and a retry may follow.
        """
        attempt = current_attempt(stage)
        with self._lock:
            self._attempt = attempt
            if self._outcome is not None:
                self._outcome.attempts = max(self._outcome.attempts, attempt.number)
                if attempt.number > 1 and self._outcome.first_error is None:
                    self._outcome.first_error = self._failed_try
            if attempt.number > 1:
                self._send(self._describe(stage))
        try:
            yield attempt
        except Exception as exc:
            if attempt.retries_left:
                with self._lock:
                    self._failed_try = self._failed_try or error_text(exc)
                    self._send(
                        f"{self._description}: {stage}, attempt {attempt.number} of "
                        f"{attempt.of} failed"
                    )
            raise

    def _describe(self, stage: str) -> str:
        parts = [stage]
        done, total = self._counts.get(stage, (0.0, None))
        unit = self._units.get(stage)
        if unit and total:
            parts.append(f"{_amount(done, unit)} of {_amount(total, unit)}")
        attempt = self._attempt
        if attempt is not None and attempt.stage == stage and attempt.of > 1:
            parts.append(f"attempt {attempt.number} of {attempt.of}")
        return f"{self._description}: {', '.join(parts)}"

    def _fraction(self) -> float:
        """The weighted sum of the stages' parts. Stages may overlap (a load that reads a
        download as it arrives); a stage that never reported counts as done once a
        later one has."""
        total, later_started = 0.0, False
        for name in reversed(self._weights):
            if name in self._done:
                total += self._weights[name] * self._done[name]
                later_started = True
            elif later_started:
                total += self._weights[name]
        return total

    def finish(self) -> None:
        """Mark the run's progress complete, naming the stages that ran
        (``Spring Leads · import: fetch, load done``)."""
        with self._lock:
            self.value = 100.0
            stages = ", ".join(name for name in self._weights if name in self._done)
            self._send(f"{self._description}: {stages + ' ' if stages else ''}done")

    def _send(self, description: str) -> None:
        if not _in_flow_run():
            return
        if self._artifact_id is None:
            self._artifact_id = cast(
                UUID, create_progress_artifact(progress=self.value, description=description)
            )
        else:
            update_progress_artifact(self._artifact_id, self.value, description=description)


def _amount(value: float, unit: str) -> str:
    """``12.5 MB`` for bytes, ``120,000 rows`` for rows."""
    if unit == "bytes":
        size = float(value)
        for name in ("bytes", "KB", "MB", "GB"):
            if size < 1024 or name == "GB":
                return f"{size:.0f} bytes" if name == "bytes" else f"{size:.1f} {name}"
            size /= 1024
    return f"{value:,.0f} {unit}"
