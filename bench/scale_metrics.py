"""The figures of ``bench.scale_load``, computed from run records alone: pure, no I/O.

A scheduled slot is one (deployment, scheduled time) that a one-minute schedule owes
during the test window. From the flow runs the server recorded:

- **lost**: a slot whose run never ran and never will: no run at all, or one that
  ended (cancelled, crashed) without starting;
- **backlog**: a slot whose run has not started yet when the test ends (the stack
  was too slow for the load; it would still run);
- **duplicated**: a slot with more than one scheduled run (extra runs are counted);
- **lateness**: start minus scheduled time of each scheduled run that started;
- **overlaps**: two spans on one object (a list) that intersect; the spans are the
  loads' own start and end times (task runs, or the database's import rows).
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

__all__ = [
    "RunRecord",
    "Span",
    "backlog",
    "duplicated",
    "expected_slots",
    "lateness_seconds",
    "lost",
    "overlaps",
    "percentile",
]


@dataclass(frozen=True)
class RunRecord:
    """One flow run of the test, as the server recorded it.

    Attributes:
        deployment: the deployment's name.
        scheduled: the run's expected start time (aware).
        auto: made by the scheduler (not an ad-hoc run).
        state: the Prefect state type (COMPLETED, FAILED, CRASHED, ...).
        start: when it started running; None if it never did.
        end: when it ended; None if it has not.
    """

    deployment: str
    scheduled: datetime
    auto: bool
    state: str
    start: datetime | None
    end: datetime | None


@dataclass(frozen=True)
class Span:
    """Something that held an object from ``start`` to ``end`` (a load of a list)."""

    obj: str
    start: datetime
    end: datetime
    what: str = ""


def expected_slots(
    anchor: datetime, interval: timedelta, since: datetime, until: datetime
) -> list[datetime]:
    """The times a schedule ``anchor + k * interval`` owes in ``[since, until)``."""
    first = math.ceil((since - anchor) / interval)
    slots = []
    k = first
    while (t := anchor + k * interval) < until:
        slots.append(t)
        k += 1
    return slots


_ENDED = ("COMPLETED", "FAILED", "CRASHED", "CANCELLED")


def lost(owed: dict[str, list[datetime]], runs: Iterable[RunRecord]) -> list[tuple[str, datetime]]:
    """The owed slots with no scheduled run that started or may still start."""
    alive = {
        (r.deployment, r.scheduled)
        for r in runs
        if r.auto and (r.start is not None or r.state not in _ENDED)
    }
    return [(d, t) for d, times in owed.items() for t in times if (d, t) not in alive]


def backlog(runs: Iterable[RunRecord]) -> int:
    """Scheduled runs that have neither started nor ended (still queued)."""
    return sum(1 for r in runs if r.auto and r.start is None and r.state not in _ENDED)


def duplicated(runs: Iterable[RunRecord]) -> int:
    """Scheduled runs beyond the first for one (deployment, scheduled time)."""
    count: dict[tuple[str, datetime], int] = defaultdict(int)
    for run in runs:
        if run.auto:
            count[(run.deployment, run.scheduled)] += 1
    return sum(n - 1 for n in count.values() if n > 1)


def lateness_seconds(runs: Iterable[RunRecord], auto: bool = True) -> list[float]:
    """Start minus scheduled time, in seconds, of the runs that started (scheduled ones,
    or with ``auto=False`` the ad-hoc ones)."""
    return sorted(
        (r.start - r.scheduled).total_seconds()
        for r in runs
        if r.auto == auto and r.start is not None
    )


def percentile(values: list[float], q: float) -> float | None:
    """The nearest-rank ``q`` percentile (0 < q <= 100) of ``values``; None when empty."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(math.ceil(q / 100 * len(ordered)), 1)
    return ordered[rank - 1]


def overlaps(spans: Iterable[Span]) -> list[tuple[Span, Span]]:
    """Pairs of spans on one object that intersect (touching ends do not)."""
    by_object: dict[str, list[Span]] = defaultdict(list)
    for span in spans:
        by_object[span.obj].append(span)
    found = []
    for items in by_object.values():
        items.sort(key=lambda s: (s.start, s.end))
        for i, first in enumerate(items):
            for second in items[i + 1 :]:
                if second.start >= first.end:
                    break
                found.append((first, second))
    return found
