"""Attempts count real tries: the real list import, whose fetch fails twice and then succeeds.

The file appears on the real sshd only after the fetch's second try has failed. While
the fetch waits for its retries, the Scheduled view says ``retrying``, "2 of 3" and
then "3 of 3"; once the run has completed, both views, the CLI's CSV and JSON and
the outcome artifact count 3 attempts, and the Task Log's Error column says
"completed after 3 attempts (first: ...)".
"""

from __future__ import annotations

import csv
import io
import json
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import (
    ArtifactFilter,
    ArtifactFilterFlowRunId,
    ArtifactFilterKey,
    TaskRunFilter,
    TaskRunFilterFlowRunId,
)
from prefect.client.schemas.objects import State
from typer.testing import CliRunner

import flows.calling_list_import as list_flow
from cli.main import app
from contact_center.outcome import Outcome
from contact_center.settings import OUTCOME_ARTIFACT_KEY
from runlog import ScheduledRow, scheduled, task_log

# Long enough for the test to see each wait in the Scheduled view under load.
RETRY_WAIT_SECONDS = 5.0


def _row(name: str) -> ScheduledRow | None:
    return next((r for r in scheduled() if r.object_name == name), None)


def _wait_for(name: str, attempts: int, deadline: float) -> ScheduledRow:
    """The Scheduled view's row of the run once it waits for attempt ``attempts``."""
    row = None
    while time.monotonic() < deadline:
        row = _row(name)
        if row is not None and row.state == "retrying" and row.attempts == attempts:
            return row
        time.sleep(0.2)
    raise AssertionError(f"the run never waited for attempt {attempts}; last row: {row}")


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_a_fetch_that_fails_twice_shows_three_attempts_in_both_views(
    sshd: Any, sftp_block: str, db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    slow_retries = list_flow.fetch_list_file.with_options(
        retry_delay_seconds=[RETRY_WAIT_SECONDS, RETRY_WAIT_SECONDS]
    )
    monkeypatch.setattr(list_flow, "fetch_list_file", slow_retries)
    name = f"Late Leads {uuid.uuid4().hex[:8]}"
    path = sshd.home / "late" / f"{name}.csv"
    states: list[State] = []
    run = threading.Thread(
        target=lambda: states.append(
            list_flow.import_calling_list(
                list_name=name,
                source=f"sftp://{sftp_block}/late/{name}.csv",
                return_state=True,
            )
        ),
        daemon=True,
    )
    run.start()
    deadline = time.monotonic() + 120
    second = _wait_for(name, 2, deadline)
    assert (second.attempts_text, second.max_attempts) == ("2 of 3", 3)
    assert second.note == "fetch_list_file failed; waits to retry: attempt 2 of 3"
    third = _wait_for(name, 3, deadline)
    assert third.attempts_text == "3 of 3" and third.type == "Calling list import"
    _write_list(path)  # the partner's file arrives: the third try finds it
    run.join(120)
    assert states and states[0].is_completed(), states
    outcome: Outcome = states[0].result()
    assert (outcome.loaded, outcome.attempts) == (2, 3)
    assert outcome.first_error is not None
    assert outcome.first_error.startswith("SourceUnavailable: ") and name in outcome.first_error

    run_id = states[0].state_details.flow_run_id
    assert run_id is not None
    with get_client(sync_client=True) as client:
        task_runs = client.read_task_runs(
            task_run_filter=TaskRunFilter(flow_run_id=TaskRunFilterFlowRunId(any_=[run_id]))
        )
        stored = client.read_artifacts(
            artifact_filter=ArtifactFilter(
                flow_run_id=ArtifactFilterFlowRunId(any_=[run_id]),
                key=ArtifactFilterKey(any_=[OUTCOME_ARTIFACT_KEY]),
            )
        )
    # Prefect's own count agrees, and so does the outcome artifact.
    fetches = [t for t in task_runs if t.name.startswith("fetch_list_file")]
    assert [t.run_count for t in fetches] == [3]
    recorded = Outcome.from_row(json.loads(str(stored[0].data))[0])
    assert (recorded.attempts, recorded.first_error) == (3, outcome.first_error)

    expected_error = f"completed after 3 attempts (first: {outcome.first_error})"
    [row] = task_log(object_name=name)
    assert (row.result, row.attempts, row.error) == ("completed", 3, expected_error)
    assert _row(name) is None  # ended: no longer planned or waiting

    runner = CliRunner()
    as_csv = runner.invoke(app, ["log", "--object", name, "--format", "csv"])
    assert as_csv.exit_code == 0, as_csv.output
    [header, line] = list(csv.reader(io.StringIO(as_csv.stdout)))
    assert dict(zip(header, line, strict=True))["Error"] == expected_error
    as_json = runner.invoke(app, ["log", "--object", name, "--format", "json"])
    assert json.loads(as_json.stdout)[0]["error"] == expected_error


def _write_list(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("account,phone1\nA1,2127365000\nA2,2127365001\n", encoding="utf-8")
