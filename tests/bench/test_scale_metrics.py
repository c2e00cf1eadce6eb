"""The load test's figures from run records: lost, duplicated, lateness and overlaps."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from bench.scale_metrics import (
    RunRecord,
    Span,
    backlog,
    duplicated,
    expected_slots,
    lateness_seconds,
    lost,
    overlaps,
    percentile,
)

T0 = datetime(2026, 12, 7, 3, 0, tzinfo=UTC)
MINUTE = timedelta(minutes=1)


def _run(
    dep: str, minute: int, late: float | None, auto: bool = True, state: str = ""
) -> RunRecord:
    scheduled = T0 + minute * MINUTE
    start = None if late is None else scheduled + timedelta(seconds=late)
    state = state or ("COMPLETED" if start else "SCHEDULED")
    return RunRecord(dep, scheduled, auto, state, start,
                     None if start is None else start + timedelta(seconds=5))


def test_expected_slots_are_the_schedule_times_in_the_window() -> None:
    anchor = T0 + timedelta(seconds=15)
    slots = expected_slots(anchor, MINUTE, T0 + timedelta(seconds=20), T0 + 3 * MINUTE)
    assert slots == [anchor + MINUTE, anchor + 2 * MINUTE]
    assert expected_slots(anchor, MINUTE, T0, anchor) == []


def test_lost_duplicated_and_lateness() -> None:
    runs = [
        _run("a", 0, 2.0),
        _run("a", 1, 40.0),
        _run("a", 1, 41.0),  # a second run for one scheduled time
        _run("b", 0, None, state="CANCELLED"),  # ended without running
        _run("b", 1, 1.0, auto=False),  # ad-hoc: no slot of the schedule
        _run("c", 0, None),  # still queued: backlog, not lost
    ]
    owed = {"a": [T0, T0 + MINUTE], "b": [T0, T0 + MINUTE], "c": [T0]}
    assert lost(owed, runs) == [("b", T0), ("b", T0 + MINUTE)]
    assert backlog(runs) == 1
    assert duplicated(runs) == 1
    assert lateness_seconds(runs) == [2.0, 40.0, 41.0]
    assert lateness_seconds(runs, auto=False) == [1.0]
    assert percentile([2.0, 40.0, 41.0], 50) == 40.0
    assert percentile(list(map(float, range(1, 101))), 95) == 95.0
    assert percentile([], 95) is None


def test_overlaps_are_per_object_and_touching_ends_do_not_count() -> None:
    s = timedelta(seconds=1)
    spans = [
        Span("L1", T0, T0 + 10 * s, "r1"),
        Span("L1", T0 + 10 * s, T0 + 20 * s, "r2"),  # starts as r1 ends
        Span("L2", T0 + 5 * s, T0 + 15 * s, "r3"),  # another object
        Span("L1", T0 + 19 * s, T0 + 30 * s, "r4"),  # starts before r2 ends
    ]
    found = overlaps(spans)
    assert [(a.what, b.what) for a, b in found] == [("r2", "r4")]
