"""The task-log artifact as runs end, against a real Prefect server (the test harness):
a retried attempt adds no row until its run ends, and a failing republish never fails a
run or hides its error. (``test_tasklog.py`` reads a run's row in the artifact.)"""

from __future__ import annotations

from typing import Any

import pytest
from support.tasklog_support import (
    call,
    fast_flows,
    import_calling_list,
    latest_task_log,
    read_run,
    run_report,
    unique,
)


def test_a_retried_attempt_adds_no_row_until_the_run_ends() -> None:
    name = unique("Retry Leads")
    with fast_flows():
        call(import_calling_list, list_name=name, nbytes=1024, fail_attempts=2)
    rows = [r for r in latest_task_log() if r["Object name"] == name]
    assert [(r["Result"], r["Size (KB)"]) for r in rows] == [("completed", "1.0")]


def test_a_failing_republish_never_fails_a_run_or_hides_its_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The server cannot be made to fail on cue here, so the publisher is replaced by
    # one that raises: the only stand-in in these tests.
    import runlog.publish

    def broken(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("server went away")

    monkeypatch.setattr(runlog.publish, "publish_task_log", broken)
    with fast_flows():
        ok = read_run(call(run_report, report=unique("Still Fine"), nbytes=10))
        bad = read_run(call(run_report, report=unique("Still Failing"), error="bad input"))
    assert ok.state is not None and ok.state.name == "Completed"
    assert bad.state is not None and bad.state.name == "Failed"
    assert "InvalidFile: file 'report.csv': bad input" in (bad.state.message or "")
    assert "server went away" not in (bad.state.message or "")
