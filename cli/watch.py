"""What ``cctasks run --watch`` shows while it follows a run, and at its end.

- On a terminal: a rich progress bar with the state, the percent, what the run does
  (the step, bytes or rows) and the attempt, redrawn in place.
- In a pipe or a file: one line per change of state, attempt, percent or the
  server's reachability, e.g. ``00:02  Running  attempt 1  progress 40%  fetch,
  12.5 MB of 125.0 MB``.
- A server that stops answering is said on stderr at once, and again when it
  answers.
- At the end: the counts of the run's outcome (read, loaded, updated, rejected by
  reason, excluded) and the run's page in the Prefect UI.
"""

from __future__ import annotations

import re
import time
from datetime import timedelta
from types import TracebackType
from typing import Protocol

from rich.console import Console
from rich.progress import BarColumn, Progress, TaskID, TaskProgressColumn, TextColumn

from contact_center.outcome import Outcome
from runlog.mapping import format_duration
from runlog.runs import RunStatus
from runlog.text import clean

__all__ = ["BarWatch", "LineWatch", "Watch", "outcome_lines", "watch_display"]


class Watch(Protocol):
    """A display of the statuses ``follow_run`` yields."""

    def __enter__(self) -> Watch: ...

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None: ...

    def show(self, status: RunStatus) -> None:
        """Show one status."""


# The progress description names the try too; the watch shows Prefect's count once.
_DESCRIBED_ATTEMPT = re.compile(r",\s*attempt \d+ of \d+")


def _attempt(status: RunStatus) -> str:
    return f"attempt {status.attempts_text}"


def _step(status: RunStatus) -> str:
    return _DESCRIBED_ATTEMPT.sub("", status.step) if not status.final else ""


class _Reachability:
    """Says on stderr when the server stops answering, and when it answers again."""

    def __init__(self, err: Console) -> None:
        self._err = err
        self._down = False

    def check(self, status: RunStatus) -> bool:
        """Report a change of reachability; True while the server does not answer."""
        if not status.reachable and not self._down:
            self._down = True
            self._err.print(
                f"warning: {status.problem}; still trying until the run ends or --timeout",
                highlight=False,
                markup=False,
            )
        elif status.reachable and self._down:
            self._down = False
            self._err.print("the Prefect server answers again", highlight=False, markup=False)
        return self._down


class LineWatch:
    """One line per change, for a pipe or a file."""

    def __init__(self, out: Console, err: Console) -> None:
        self._out = out
        self._reach = _Reachability(err)
        self._started = time.monotonic()

    def __enter__(self) -> LineWatch:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        return None

    def show(self, status: RunStatus) -> None:
        """Print the status as one line (or the server's reachability on stderr)."""
        if self._reach.check(status) or not status.state:
            return
        elapsed = format_duration(timedelta(seconds=time.monotonic() - self._started))
        progress = "" if status.progress is None else f"  progress {status.progress:.0f}%"
        step = f"  {_step(status)}" if _step(status) else ""
        self._out.print(
            f"{elapsed}  {status.state}  {_attempt(status)}{progress}{step}",
            highlight=False,
            markup=False,
            soft_wrap=True,
        )


class BarWatch:
    """A progress bar redrawn in place, for a terminal."""

    def __init__(self, out: Console, err: Console, name: str) -> None:
        self._reach = _Reachability(err)
        self._progress = Progress(
            TextColumn("{task.description}", markup=False),
            BarColumn(),
            TaskProgressColumn(),
            TextColumn("{task.fields[detail]}", markup=False),
            console=out,
            redirect_stderr=True,
        )
        self._task: TaskID = self._progress.add_task(clean(name), total=100, detail="")

    def __enter__(self) -> BarWatch:
        self._progress.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self._progress.stop()

    def show(self, status: RunStatus) -> None:
        """Move the bar; its text says the state, the step and the attempt."""
        if self._reach.check(status) or not status.state:
            return
        parts = [status.state, _step(status), _attempt(status)]
        self._progress.update(
            self._task,
            completed=status.progress or (100.0 if status.completed else 0.0),
            detail="  ".join(p for p in parts if p),
            description=clean(status.name) or "run",
        )


def watch_display(out: Console, err: Console, name: str) -> Watch:
    """A bar on a terminal, else one line per change."""
    return BarWatch(out, err, name) if out.is_terminal else LineWatch(out, err)


def outcome_lines(outcome: Outcome) -> list[str]:
    """The outcome's counts as a person reads them: read, loaded, updated, rejected
    by reason, excluded (and removed, when the run removed records)."""
    rejected = f"{outcome.rejected:,} rejected"
    if outcome.rejects_by_reason:
        reasons = ", ".join(
            f"{clean(str(reason))} {count:,}"
            for reason, count in sorted(outcome.rejects_by_reason.items())
        )
        rejected += f" ({reasons})"
    counts = [
        f"{outcome.rows_read:,} read",
        f"{outcome.loaded:,} loaded",
        f"{outcome.updated:,} updated",
        rejected,
        f"{outcome.excluded:,} excluded",
    ]
    if outcome.removed:
        counts.append(f"{outcome.removed:,} removed")
    lines = ["counts: " + ", ".join(counts)]
    if outcome.attempts > 1:
        lines.append(f"attempts: {outcome.attempts}")
    return lines
