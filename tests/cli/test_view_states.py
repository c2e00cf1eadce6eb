"""Results and states that say what happened, read through the CLI as CSV and JSON.

- a skipped import: Prefect state ``Skipped`` (Completed type), Result ``completed
  (skipped)``, the reason as its Error, no Size;
- a paused task (``cctasks pause``/``resume``, Prefect's own deployment pause);
- a run waiting for its deployment's concurrency slot: ``waiting``, and for what;
- a late run: ``late``;
- an ANSI escape in a list name never reaches the output.
"""

from __future__ import annotations

import csv
import io
import json
from datetime import timedelta
from typing import Any
from uuid import UUID

import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.actions import DeploymentScheduleCreate
from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey
from prefect.client.schemas.objects import StateType
from prefect.client.schemas.schedules import CronSchedule
from prefect.client.schemas.sorting import ArtifactSort
from prefect.states import Completed, Late, Pending, Running, Scheduled
from support.tasklog_support import (
    call,
    campaign_trigger,
    deploy,
    fast_flows,
    import_calling_list,
    read_run,
    run_report,
    unique,
    utcnow,
)
from typer.testing import CliRunner

from cli.main import app
from contact_center.settings import TASK_LOG_ARTIFACT_KEY
from flows.calling_list_import import import_calling_list as real_import
from runlog.mapping import LOG_COLUMNS, SCHEDULED_COLUMNS

runner = CliRunner()
ENV = {"COLUMNS": "250"}


def cctasks(*args: str, env: dict[str, str] | None = None) -> Any:
    result = runner.invoke(app, list(args), env={**ENV, **(env or {})})
    assert result.exit_code == 0, result.output
    return result


def csv_rows(*args: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(cctasks(*args, "--format", "csv").stdout)))


def json_rows(*args: str) -> list[dict[str, Any]]:
    return list(json.loads(cctasks(*args, "--format", "json").stdout))


# --- a skipped run ----------------------------------------------------------------------


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_a_skipped_import_says_so(sshd: Any, sftp_block: str, db_url: str) -> None:
    name = unique("Same Leads")
    path = sshd.home / "same" / f"{name}.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("account,phone1\nA1,2127365000\n", encoding="utf-8")
    source = f"sftp://{sftp_block}/same/{name}.csv"
    with fast_flows():
        first = real_import(list_name=name, source=source, return_state=True)
        again = real_import(list_name=name, source=source, return_state=True)
    assert first.is_completed() and again.is_completed()
    run = read_run(again.state_details.flow_run_id)
    assert run.state is not None
    assert (run.state.type, run.state.name) == (StateType.COMPLETED, "Skipped")
    reason = again.result().message
    assert f"{name}.csv is the same file as the last import (sha256 " in reason

    rows = {r["Result"]: r for r in csv_rows("log", "--object", name)}
    assert set(rows) == {"completed", "completed (skipped)"}
    skipped = rows["completed (skipped)"]
    assert (skipped["Error"], skipped["Size (KB)"]) == (reason, "")
    assert skipped["Duration"].count(":") == 1
    assert rows["completed"]["Size (KB)"] != "" and rows["completed"]["Error"] == ""
    as_json = {r["result"]: r for r in json_rows("log", "--object", name)}
    assert as_json["completed (skipped)"]["size_kb"] is None
    assert as_json["completed (skipped)"]["error"] == reason
    # `--result completed` still finds it: the seed's results stay completed and failed
    assert len(json_rows("log", "--object", name, "--result", "completed")) == 2
    # the UI's task-log artifact, republished by the skipped run as it ended, agrees
    with get_client(sync_client=True) as client:
        [artifact] = client.read_artifacts(
            artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[TASK_LOG_ARTIFACT_KEY])),
            sort=ArtifactSort.CREATED_DESC,
            limit=1,
        )
    published = [r for r in json.loads(str(artifact.data)) if r["Object name"] == name]
    assert [(r["Result"], r["Size (KB)"], r["Error"]) for r in published][0] == (
        "completed (skipped)",
        "",
        reason,
    )


def test_failed_crashed_and_cancelled_runs_have_a_duration() -> None:
    report = unique("Timed Report")
    with fast_flows():
        failed = call(run_report, report=report, error="nothing to report")
    run = read_run(failed)
    assert run.start_time is not None and run.end_time is not None
    seconds = int((run.end_time - run.start_time).total_seconds())
    [row] = csv_rows("log", "--object", report)
    assert row["Result"] == "failed"
    assert row["Duration"] == f"{seconds // 60:02d}:{seconds % 60:02d}"
    [item] = json_rows("log", "--object", report)
    assert item["duration"] == row["Duration"]


# --- the Scheduled view: paused, waiting, late ---------------------------------------------


def _mine(rows: list[dict[str, Any]], key: str, name: str) -> list[dict[str, Any]]:
    return [r for r in rows if r[key] == name]


def test_pause_and_resume_a_task() -> None:
    campaign = unique("Held Drive")
    name = unique("held-trigger")
    deployment_id = deploy(
        campaign_trigger,
        name,
        {"campaign": campaign, "step": "start"},
        schedules=[
            DeploymentScheduleCreate(
                schedule=CronSchedule(cron="0 8 * * 1-5", timezone="America/New_York"),
                parameters={"step": "start"},
                slug="start",
            ),
            DeploymentScheduleCreate(
                schedule=CronSchedule(cron="0 20 * * 1-5", timezone="America/New_York"),
                parameters={"step": "stop"},
                slug="stop",
            ),
        ],
    )
    paused = cctasks("pause", name)
    assert paused.stdout.strip() == (
        f"campaign-trigger/{name} paused: its 2 schedules create no runs until "
        f"`cctasks resume campaign-trigger/{name}`"
    )
    with get_client(sync_client=True) as client:
        assert client.read_deployment(deployment_id).paused  # Prefect's own pause
    assert "was already paused" in cctasks("pause", f"campaign-trigger/{name}").stdout

    rows = _mine(csv_rows("scheduled"), "Task name", name)
    assert [(r["State"], r["Step"], r["Start time"], r["Object name"]) for r in rows] == [
        ("paused", "start", "", campaign),
        ("paused", "stop", "", campaign),
    ]
    assert rows[0]["Note"] == "task paused; start: cron 0 8 * * 1-5 (America/New_York)"
    items = _mine(json_rows("scheduled"), "task_name", name)
    assert [(r["state"], r["step"], r["start_time"], r["attempts"]) for r in items] == [
        ("paused", "start", None, 0),
        ("paused", "stop", None, 0),
    ]
    table = cctasks("scheduled").stdout
    assert name in table and "paused" in table

    resumed = cctasks("resume", name)
    assert resumed.stdout.startswith(f"campaign-trigger/{name} resumed")
    with get_client(sync_client=True) as client:
        assert not client.read_deployment(deployment_id).paused
    assert _mine(json_rows("scheduled"), "task_name", name) == []


def test_a_run_waiting_for_its_slot_and_a_late_run() -> None:
    report = unique("Slot Report")
    name = unique("slot-report")
    schema = run_report.parameters.model_dump_for_openapi()
    with get_client(sync_client=True) as client:
        deployment_id = client.create_deployment(
            flow_id=client.create_flow_from_name(run_report.name),
            name=name,
            parameters={"report": report},
            parameter_openapi_schema=schema,
            concurrency_limit=1,
        )
        holder = client.create_flow_run_from_deployment(deployment_id)
        assert client.set_flow_run_state(holder.id, Pending()).state.type == StateType.PENDING
        client.set_flow_run_state(holder.id, Running())
        waiting = client.create_flow_run_from_deployment(deployment_id)
        refused = client.set_flow_run_state(waiting.id, Pending()).state
        assert refused is not None and refused.name == "AwaitingConcurrencySlot"
        late = client.create_flow_run_from_deployment(
            deployment_id, state=Scheduled(scheduled_time=utcnow() - timedelta(minutes=5))
        )
        client.set_flow_run_state(late.id, Late(scheduled_time=late.expected_start_time))
        holder_name = client.read_flow_run(holder.id).name
    try:
        by_state = {r["State"]: r for r in _mine(csv_rows("scheduled"), "Task name", name)}
        assert set(by_state) == {"in progress", "waiting", "late"}
        note = f"waits for a slot of {name} (1 run at a time; held by {holder_name})"
        assert by_state["waiting"]["Note"] == note
        assert by_state["late"]["Object name"] == report
        items = {r["state"]: r for r in _mine(json_rows("scheduled"), "task_name", name)}
        assert set(items) == {"in progress", "waiting", "late"}
        assert items["waiting"]["note"] == note and items["late"]["note"] == ""
        assert list(items["late"]) == [k for k, _ in SCHEDULED_COLUMNS]
    finally:
        _end([holder.id, waiting.id, late.id])


def _end(run_ids: list[UUID]) -> None:
    """End the runs so that the slot is free again and the view stays short."""
    with get_client(sync_client=True) as client:
        for run_id in run_ids:
            client.set_flow_run_state(run_id, Completed(), force=True)


# --- names that try to reach the terminal -------------------------------------------------


def test_an_ansi_escape_in_a_list_name_never_reaches_the_output() -> None:
    tag = unique("Esc")
    hostile = f"\x1b[2J\x1b[31m{tag} Red\x1b[0m Leads\x1b]0;owned\x07 [bold]x[/]"
    shown = f"{tag} Red Leads [bold]x[/]"
    since = utcnow().isoformat()
    with fast_flows():
        call(import_calling_list, list_name=hostile, nbytes=1024)
    table = cctasks("log", "--since", since).stdout
    assert "\x1b" not in table and "\x07" not in table
    assert shown in table  # rich markup in a name is shown as written, not applied
    [row] = [r for r in csv_rows("log", "--since", since) if tag in r["Object name"]]
    assert (row["Object name"], row["Task name"]) == (shown, f"{shown} · import")
    text = cctasks("log", "--since", since, "--format", "json").stdout
    assert "\\u001b" not in text and "\x1b" not in text
    assert list(json.loads(text)[0]) == [k for k, _ in LOG_COLUMNS]


def test_the_task_log_report_counts_a_skipped_run_as_completed() -> None:
    from datetime import UTC, datetime

    import pandas as pd

    from contact_center.reports.periods import resolve_period
    from contact_center.reports.runs import RUN_COLUMNS, task_log_content

    period = resolve_period("yesterday", "UTC", now=datetime(2026, 11, 30, 12, tzinfo=UTC))
    start = datetime(2026, 11, 29, 8, tzinfo=UTC)
    results = ["completed", "completed (skipped)", "failed"]
    runs = pd.DataFrame(
        [
            {
                "start_time": start,
                "end_time": start,
                "type": "Calling list import",
                "object_name": "Spring Leads",
                "task_name": "spring-leads-nightly",
                "step": "import",
                "attempts": 1,
                "duration_seconds": 1.0,
                "size_kb": None,
                "result": result,
                "error": "",
            }
            for result in results
        ],
        columns=list(RUN_COLUMNS),
    )
    content = task_log_content(runs, period)
    assert (content.highlights["Completed"], content.highlights["Failed"]) == (2, 1)
    assert list(content.tables["Runs"]["Result"]) == results


def test_a_pause_outlasts_the_redeploy_of_cctasks_up() -> None:
    from runlog import pause_task
    from runlog.pausing import pause_again, paused_tasks

    name = unique("held-export")
    schema = run_report.parameters.model_dump_for_openapi()
    deployment_id = deploy(run_report, name, {"report": unique("Held")})
    pause_task(name)
    held = paused_tasks()
    assert deployment_id in held
    with get_client(sync_client=True) as client:
        # what `prefect deploy` does with a prefect.yaml entry that says nothing of pausing
        client.create_deployment(
            flow_id=client.create_flow_from_name(run_report.name),
            name=name,
            parameters={"report": "Held"},
            parameter_openapi_schema=schema,
            paused=False,
        )
        assert not client.read_deployment(deployment_id).paused
        assert pause_again(held) == 1
        assert client.read_deployment(deployment_id).paused
    assert pause_again(held) == 0  # nothing to do twice
