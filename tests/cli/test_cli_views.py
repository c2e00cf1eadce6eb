"""`cctasks log`, `cctasks scheduled` and `cctasks run` through typer's CliRunner.

The commands talk to the real Prefect test server (PREFECT_API_URL of the harness);
`run --watch` is followed while a thread plays the worker and executes the run.
"""

from __future__ import annotations

import csv
import io
import json
import socket
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
from openpyxl import load_workbook
from prefect.client.orchestration import get_client
from prefect.client.schemas.actions import DeploymentScheduleCreate
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterDeploymentId
from prefect.client.schemas.schedules import IntervalSchedule
from prefect.settings import PREFECT_API_URL, temporary_settings
from support.tasklog_support import (
    call,
    campaign_trigger,
    deploy,
    execute_next_run,
    export_campaign_results,
    fast_flows,
    import_exclusions,
    read_run,
    run_report,
    unique,
    utcnow,
)
from typer.testing import CliRunner

from cli.main import app
from runlog import task_log
from runlog.mapping import LOG_COLUMNS, SCHEDULED_COLUMNS

runner = CliRunner()
ENV = {"COLUMNS": "250"}


def cctasks(*args: str) -> Any:
    return runner.invoke(app, list(args), env=ENV)


def one_line_error(result: Any, code: int = 2) -> str:
    assert result.exit_code == code, result.output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.output
    return lines[0]


@pytest.fixture(scope="module")
def runs() -> dict[str, Any]:
    tag = unique("CLI")
    since = utcnow().isoformat()
    with fast_flows():
        ok = call(import_exclusions, exclusion_list=f"{tag} dnc", nbytes=1536)
        bad = call(run_report, report=f"{tag} broken", error="no rows")
        slow = call(export_campaign_results, campaign=f"{tag} slow", nbytes=5120, delay=1.1)
    return {"tag": tag, "since": since, "ok": ok, "bad": bad, "slow": slow}


def test_log_json(runs: dict[str, Any]) -> None:
    result = cctasks("log", "--since", runs["since"], "--format", "json", "--utc")
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    mine = {r["object_name"]: r for r in rows if r["object_name"].startswith(runs["tag"])}
    assert set(mine) == {f"{runs['tag']} dnc", f"{runs['tag']} broken", f"{runs['tag']} slow"}
    dnc = mine[f"{runs['tag']} dnc"]
    assert list(dnc) == [k for k, _ in LOG_COLUMNS]
    run = read_run(runs["ok"])
    assert run.start_time is not None
    started = datetime.fromtimestamp(int(run.start_time.timestamp()), UTC)
    assert datetime.fromisoformat(dnc["start_time"]) == started
    assert dnc["start_time"].endswith("+00:00")
    assert (dnc["size_kb"], dnc["result"], dnc["type"], dnc["step"], dnc["error"]) == (
        1.5,
        "completed",
        "Import exclusions by account",
        "import",
        "",
    )
    broken = mine[f"{runs['tag']} broken"]
    # A failed run has its Duration too: Prefect's own end minus start (a second or two
    # on a busy machine, so read from the run rather than written out).
    failed = read_run(runs["bad"])
    assert failed.start_time is not None and failed.end_time is not None
    took = int((failed.end_time - failed.start_time).total_seconds())
    assert broken["result"] == "failed" and broken["duration"] == f"00:{took:02d}"
    assert broken["error"] == "InvalidFile: file 'report.csv': no rows"


def test_log_csv_local_and_utc(runs: dict[str, Any]) -> None:
    obj = f"{runs['tag']} slow"
    local = cctasks("log", "--object", obj, "--format", "csv")
    utc = cctasks("log", "--object", obj, "--format", "csv", "--utc")
    assert local.exit_code == 0 and utc.exit_code == 0, local.output + utc.output
    local_rows = list(csv.reader(io.StringIO(local.stdout)))
    utc_rows = list(csv.reader(io.StringIO(utc.stdout)))
    assert local_rows[0] == [h for _, h in LOG_COLUMNS]
    assert len(local_rows) == 2
    run = read_run(runs["slow"])
    assert run.start_time is not None and run.end_time is not None
    assert utc_rows[1][0] == run.start_time.strftime("%Y-%m-%d %H:%M:%S")
    assert local_rows[1][0] == run.start_time.astimezone().strftime("%Y-%m-%d %H:%M:%S")
    seconds = int((run.end_time - run.start_time).total_seconds())
    assert local_rows[1][4] == f"{seconds // 60:02d}:{seconds % 60:02d}" and seconds >= 1
    assert local_rows[1][5:7] == ["5.0", "completed"]


def test_log_xlsx(runs: dict[str, Any], tmp_path: Path) -> None:
    target = tmp_path / "log.xlsx"
    result = cctasks("log", "--since", runs["since"], "--format", "xlsx", "--output", str(target))
    assert result.exit_code == 0, result.output
    sheet = load_workbook(target).active
    assert sheet is not None
    values = list(sheet.iter_rows(values_only=True))
    assert list(values[0]) == [h for _, h in LOG_COLUMNS]
    mine = [v for v in values[1:] if str(v[2]).startswith(runs["tag"])]
    assert len(mine) == 3
    assert all(isinstance(v[0], datetime) and isinstance(v[1], datetime) for v in mine)
    assert {v[5] for v in mine} == {1.5, 0.0, 5.0}


def test_log_table_and_output_file(runs: dict[str, Any], tmp_path: Path) -> None:
    result = cctasks("log", "--object", f"{runs['tag']} dnc")
    assert result.exit_code == 0, result.output
    for header in ("Start time", "End time", "Object name", "Task name", "Duration", "Size (KB)"):
        assert header in result.stdout
    assert f"{runs['tag']} dnc · import" in result.stdout
    target = tmp_path / "log.txt"
    assert cctasks("log", "--object", f"{runs['tag']} dnc", "-o", str(target)).exit_code == 0
    assert "Import exclusions by account" in target.read_text()


def test_log_sort_filters_and_limit(runs: dict[str, Any]) -> None:
    def objects(*args: str) -> list[str]:
        result = cctasks("log", "--since", runs["since"], "--format", "json", *args)
        assert result.exit_code == 0, result.output
        return [
            r["object_name"]
            for r in json.loads(result.stdout)
            if r["object_name"].startswith(runs["tag"])
        ]

    tag = runs["tag"]
    assert objects("--sort", "size", "--asc") == [f"{tag} broken", f"{tag} dnc", f"{tag} slow"]
    assert objects("--sort", "Size (KB)", "--desc") == [
        f"{tag} slow",
        f"{tag} dnc",
        f"{tag} broken",
    ]
    assert objects("--sort", "start_time", "--asc") == [
        f"{tag} dnc",
        f"{tag} broken",
        f"{tag} slow",
    ]
    assert objects("--result", "failed") == [f"{tag} broken"]
    assert objects("--type", "Campaign results export") == [f"{tag} slow"]
    assert objects("--task", f"{tag} dnc · import") == [f"{tag} dnc"]
    assert len(objects("--limit", "1")) <= 1
    assert objects("--since", "1h") == [f"{tag} slow", f"{tag} broken", f"{tag} dnc"]
    assert objects("--until", "2000-01-01") == []


@pytest.mark.parametrize(
    "args, message",
    [
        (
            ["log", "--sort", "colour"],
            "unknown column 'colour'; valid columns: start_time, end_time",
        ),
        (["log", "--since", "yesterday"], "bad time 'yesterday'; use an ISO time"),
        (["log", "--task", "no-such-task"], "unknown task 'no-such-task'; known tasks:"),
        (["log", "--type", "dialler"], "unknown type 'dialler'; valid types:"),
        # rich markup in what was typed is shown as written, not parsed (it crashed)
        (["log", "--type", "[/]"], "unknown type '[/]'; valid types:"),
        (["pause", "no-such-task"], "unknown task 'no-such-task'; known tasks:"),
        (["log", "--result", "ok"], "unknown result 'ok'; valid results: completed, failed"),
        (["log", "--format", "pdf"], "unknown format 'pdf'; valid formats: table, csv, json, xlsx"),
        (["log", "--format", "xlsx"], "--format xlsx needs --output FILE.xlsx"),
        (["scheduled", "--horizon", "soon"], "bad time span 'soon'"),
        (["run", "no-such-task"], "unknown task 'no-such-task'; known tasks:"),
    ],
)
def test_bad_input_is_one_line_with_exit_2(args: list[str], message: str) -> None:
    assert message in one_line_error(cctasks(*args))


def test_unreachable_server_names_its_url() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"http://127.0.0.1:{port}/api"
    with temporary_settings(updates={PREFECT_API_URL: url}):
        for command in (["log"], ["scheduled"], ["run", "x"]):
            line = one_line_error(cctasks(*command))
            assert f"the Prefect server at {url} is not reachable" in line


def test_scheduled_json_table_and_watch() -> None:
    campaign = unique("Winter Drive")
    name = unique("winter-trigger")
    deployment_id = deploy(
        campaign_trigger,
        name,
        {"campaign": campaign, "step": "start"},
        schedules=[
            DeploymentScheduleCreate(
                schedule=IntervalSchedule(interval=21600),  # 6 h
                parameters={"step": "stop"},
                slug="stop",
            )
        ],
    )
    with get_client(sync_client=True) as client:
        client.request(
            "POST",
            "/deployments/{id}/schedule",
            path_params={"id": deployment_id},
            json={"min_time": 86400.0, "max_runs": 10},
        )
    result = cctasks("scheduled", "--format", "json", "--horizon", "13h")
    assert result.exit_code == 0, result.output
    rows = [r for r in json.loads(result.stdout) if r["task_name"] == name]
    assert 2 <= len(rows) <= 3  # every 6 h within 13 h
    assert list(rows[0]) == [k for k, _ in SCHEDULED_COLUMNS]
    assert {(r["state"], r["step"], r["object_name"], r["attempts"]) for r in rows} == {
        ("scheduled", "stop", campaign, 0)
    }
    table = cctasks("scheduled", "--horizon", "13h")
    assert table.exit_code == 0 and name in table.stdout and "Number of attempts" in table.stdout
    watched = cctasks("scheduled", "--watch", "--interval", "0.1", "--refreshes", "2")
    assert watched.exit_code == 0, watched.output
    assert "Scheduled and In-Progress Tasks" in watched.stdout and name in watched.stdout
    assert "--watch shows a table" in one_line_error(
        cctasks("scheduled", "--watch", "--format", "csv")
    )


def _runs_of(deployment_id: UUID) -> int:
    with get_client(sync_client=True) as client:
        return len(
            client.read_flow_runs(
                flow_run_filter=FlowRunFilter(
                    deployment_id=FlowRunFilterDeploymentId(any_=[deployment_id])
                )
            )
        )


def test_run_watch_follows_a_run_to_completion() -> None:
    campaign = unique("Summer Results")
    name = unique("summer-export")
    deployment_id = deploy(export_campaign_results, name, {"campaign": campaign})
    worker = execute_next_run(export_campaign_results, deployment_id)
    result = cctasks(
        "run",
        name,
        *("--param", "nbytes=3072", "--param", "delay=1.5"),  # Running lasts past a poll
        *("--watch", "--interval", "0.2", "--timeout", "240"),
    )
    worker.join(30)
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    run_id = UUID(lines[0].split()[2])
    assert lines[0] == f"requested run {run_id} of export-campaign-results/{name}"
    assert lines[1].startswith("view it at http") and lines[1].endswith(f"/runs/flow-run/{run_id}")
    assert any("Running" in line for line in lines) and "Completed" in result.stdout
    assert lines[-1] == f"run {campaign} · export completed"
    row = task_log(task=name)[0]
    assert (row.run_id, row.size_kb, row.result, row.object_name) == (
        run_id,
        3.0,
        "completed",
        campaign,
    )


def test_run_watch_exits_non_zero_when_the_run_fails() -> None:
    report = unique("Failing Report")
    name = unique("failing-report")
    deployment_id = deploy(run_report, name, {"report": report})
    worker = execute_next_run(run_report, deployment_id)
    result = cctasks(
        "run",
        f"run-report/{name}",
        "-p",
        "error=no data today",
        "--watch",
        "--interval",
        "0.2",
        "--timeout",
        "240",
    )
    worker.join(30)
    line = one_line_error(result, code=1)
    assert line.endswith(
        f"run {report} · generate failed: InvalidFile: file 'report.csv': no data today"
    )


def test_run_validates_parameters_before_creating_a_run() -> None:
    name = unique("checked-export")
    deployment_id = deploy(export_campaign_results, name, {"campaign": unique("Checked")})
    line = one_line_error(cctasks("run", name, "--param", "colour=blue"))
    assert "unknown parameter 'colour' for export-campaign-results/" in line
    assert "valid parameters: campaign, delay, nbytes" in line
    line = one_line_error(cctasks("run", name, "--param", "nbytes=lots"))
    assert "bad value for parameter 'nbytes'" in line
    assert "name=value" in one_line_error(cctasks("run", name, "--param", "nbytes"))
    assert _runs_of(deployment_id) == 0
    ok = cctasks("run", name, "--param", "nbytes=12", "--param", "delay=0.5")
    assert ok.exit_code == 0, ok.output
    assert _runs_of(deployment_id) == 1
    with get_client(sync_client=True) as client:
        created = client.read_flow_runs(
            flow_run_filter=FlowRunFilter(
                deployment_id=FlowRunFilterDeploymentId(any_=[deployment_id])
            )
        )[0]
        client.delete_flow_run(created.id)  # nobody will execute it
    assert created.parameters["nbytes"] == 12 and created.parameters["delay"] == 0.5
