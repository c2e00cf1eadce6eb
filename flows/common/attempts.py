"""Which try of a retrying step is running: read from Prefect's own task-run context.

Only the network steps retry (the fetch, the delivery, the webhook, the email). Each
wraps its body in :meth:`flows.common.outcome.RunProgress.attempt`, which uses this
module to learn the try's number (Prefect's ``run_count``) and how many tries the
task has (``retries + 1``), so that the outcome and the progress artifact can say
"attempt 2 of 3" and keep the first try's error.
"""

from __future__ import annotations

from dataclasses import dataclass

from prefect.context import TaskRunContext

__all__ = ["Attempt", "current_attempt", "error_text"]

# The first error is kept in the outcome artifact and shown in the task log; a long
# one (a wide header quoted in full) is cut here.
FIRST_ERROR_MAX_CHARS = 500


@dataclass(frozen=True)
class Attempt:
    """One try of a step.

    Attributes:
        stage: the progress stage of the step (``fetch``, ``deliver``, ``notify``...).
        number: the try's number, from 1.
        of: how many tries the step has in all.
    """

    stage: str
    number: int
    of: int

    @property
    def retries_left(self) -> bool:
        """Whether Prefect may run the step again after this try fails."""
        return self.number < self.of


def current_attempt(stage: str) -> Attempt:
    """The try of the Prefect task running now (1 of 1 outside a task run)."""
    context = TaskRunContext.get()
    if context is None:
        return Attempt(stage=stage, number=1, of=1)
    return Attempt(
        stage=stage,
        number=max(context.task_run.run_count, 1),
        of=max(context.task.retries, 0) + 1,
    )


def error_text(exc: BaseException) -> str:
    """``Type: message`` on one line, cut to :data:`FIRST_ERROR_MAX_CHARS`."""
    text = " ".join(f"{type(exc).__name__}: {exc}".split())
    if len(text) > FIRST_ERROR_MAX_CHARS:
        text = text[: FIRST_ERROR_MAX_CHARS - 1] + "…"
    return text
