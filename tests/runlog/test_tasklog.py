"""The Task Log view against a real Prefect server (the test harness).

One module-scoped history holds a run of every kind: completed, failed with an error,
retried (3 attempts), crashed, cancelled, a deployment run, a run of a non-cctasks
flow; each test reads it through the library API with real server-side queries.
The Scheduled view is in ``test_scheduled_view.py``; the task-log artifact as runs end
in ``test_tasklog_publish.py``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any
from uuid import UUID

import pandas as pd
import pytest
from prefect.client.orchestration import get_client
from prefect.flow_engine import run_flow
from prefect.states import Pending
from support.tasklog_support import (
    call,
    campaign_trigger,
    deploy,
    ended_run,
    export_campaign_results,
    fast_flows,
    import_calling_list,
    import_exclusions,
    latest_task_log,
    other_flow,
    read_run,
    run_report,
    unique,
    utcnow,
)

from contact_center.exceptions import InvalidParameter, ObjectNotFound
from runlog import TaskLogRow, task_log, to_frame
from runlog.mapping import LOG_COLUMNS


@dataclass
class History:
    """The runs made for this module, by kind."""

    since: Any
    tag: str
    ids: dict[str, UUID]
    objects: dict[str, str]
    deployment: str


@pytest.fixture(scope="module")
def history() -> History:
    tag = unique("TL")
    since = utcnow()
    objects = {
        kind: f"{tag} {kind}"
        for kind in (
            "completed",
            "failed",
            "retried",
            "crashed",
            "cancelled",
            "reset",
            "start",
            "slow",
            "deployed",
        )
    }
    ids: dict[str, UUID] = {}
    with fast_flows():
        ids["completed"] = call(import_calling_list, list_name=objects["completed"], nbytes=2048)
        ids["failed"] = call(
            run_report,
            report=objects["failed"],
            nbytes=512,
            error="cannot fetch sftp://bob:hunter2@drop.example/out",
        )
        ids["retried"] = call(
            import_calling_list, list_name=objects["retried"], nbytes=1_000_000, fail_attempts=2
        )
        ids["reset"] = call(
            import_exclusions, exclusion_list=objects["reset"], step="reset", nbytes=100
        )
        ids["start"] = call(campaign_trigger, campaign=objects["start"], step="start")
        ids["slow"] = call(
            export_campaign_results, campaign=objects["slow"], nbytes=3 * 1024, delay=1.2
        )
        ids["other"] = call(other_flow, x=2)
        deployment = unique("nightly-export")
        deployment_id = deploy(
            export_campaign_results, deployment, {"campaign": objects["deployed"]}
        )
        with get_client(sync_client=True) as client:
            run = client.create_flow_run_from_deployment(
                deployment_id, parameters={"nbytes": 10240}
            )
            run_flow(export_campaign_results, flow_run=run, parameters=run.parameters)
            ids["deployed"] = run.id
            # A deployment run that crashes before its flow starts keeps Prefect's random name.
            early = client.create_flow_run_from_deployment(deployment_id)
            client.set_flow_run_state(early.id, Pending())
            client.set_flow_run_state(early.id, Crashed_(message="infrastructure exited 137"))
            ids["crashed-early"] = early.id
    ids["crashed"] = ended_run(
        export_campaign_results,
        "crashed",
        "Flow run infrastructure exited with code 137.",
        name=f"{objects['crashed']} · export",
        campaign=objects["crashed"],
    )
    ids["cancelled"] = ended_run(
        run_report,
        "cancelled",
        "Cancelled by admin",
        name=f"{objects['cancelled']} · generate",
        report=objects["cancelled"],
    )
    return History(since=since, tag=tag, ids=ids, objects=objects, deployment=deployment)


def Crashed_(message: str) -> Any:  # noqa: N802 - a state constructor, like Prefect's
    from prefect.states import Crashed

    return Crashed(message=message)


def mine(rows: list[TaskLogRow], h: History) -> list[TaskLogRow]:
    ids = set(h.ids.values())
    return [r for r in rows if r.run_id in ids]


def only(h: History, kind: str, **kwargs: Any) -> TaskLogRow:
    rows = task_log(object_name=h.objects[kind], since=h.since, **kwargs)
    assert len(rows) == 1, rows
    return rows[0]


def test_completed_row_is_exactly_right(history: History) -> None:
    run = read_run(history.ids["completed"])
    assert only(history, "completed") == TaskLogRow(
        start_time=run.start_time,
        end_time=run.end_time,
        object_name=history.objects["completed"],
        task_name=f"{history.objects['completed']} · import",
        duration=run.end_time - run.start_time,
        size_kb=2.0,
        result="completed",
        error="",
        type="Calling list import",
        step="import",
        run_id=run.id,
        flow_name="import-calling-list",
        state="Completed",
        attempts=1,
        started_by="manual",  # called, neither scheduled nor triggered
    )


def test_failed_row_carries_the_error_without_the_password(history: History) -> None:
    run = read_run(history.ids["failed"])
    row = only(history, "failed")
    assert row == TaskLogRow(
        start_time=run.start_time,
        end_time=run.end_time,
        object_name=history.objects["failed"],
        task_name=f"{history.objects['failed']} · generate",
        duration=run.end_time - run.start_time,  # failed runs have a Duration too
        size_kb=0.5,
        result="failed",
        error="InvalidFile: file 'report.csv': cannot fetch sftp://bob:***@drop.example/out",
        type="Report execution",
        step="generate",
        run_id=run.id,
        flow_name="run-report",
        state="Failed",
        attempts=1,
        started_by="manual",  # called, neither scheduled nor triggered
    )
    assert "hunter2" in (run.state.message or "")  # Prefect keeps it; the view does not


def test_retried_row_counts_three_attempts(history: History) -> None:
    run = read_run(history.ids["retried"])
    row = only(history, "retried")
    assert (row.result, row.state, row.attempts) == ("completed", "Completed", 3)
    # the flow's own retries: the first attempt's error comes from its outcome artifact
    first = f"InvalidFile: file '{history.objects['retried']}.csv', row 1: no header row"
    assert row.error == f"completed after 3 attempts (first: {first})"
    assert row.size_kb == round(1_000_000 / 1024, 1)  # the newest of its 3 outcomes
    assert row.duration == run.end_time - run.start_time
    assert row.task_name == f"{history.objects['retried']} · import"


def test_crashed_and_cancelled_rows_are_failed_with_their_reason(history: History) -> None:
    crashed = only(history, "crashed")
    run = read_run(history.ids["crashed"])
    assert crashed == TaskLogRow(
        start_time=run.start_time,
        end_time=run.end_time,
        object_name=history.objects["crashed"],
        task_name=f"{history.objects['crashed']} · export",
        duration=run.end_time - run.start_time,
        size_kb=None,
        result="failed",
        error="Crashed: Flow run infrastructure exited with code 137.",
        type="Campaign results export",
        step="export",
        run_id=run.id,
        flow_name="export-campaign-results",
        state="Crashed",
        attempts=1,
        started_by="manual",  # called, neither scheduled nor triggered
    )
    cancelled = only(history, "cancelled")
    assert (cancelled.result, cancelled.error, cancelled.state, cancelled.type) == (
        "failed",
        "Cancelled: Cancelled by admin",
        "Cancelled",
        "Report execution",
    )


def test_step_comes_from_the_step_parameter(history: History) -> None:
    assert only(history, "reset").step == "reset"
    assert only(history, "reset").type == "Import exclusions by account"
    assert only(history, "reset").size_kb == 0.1
    assert only(history, "start").step == "start"
    assert only(history, "start").type == "Campaign trigger"


def test_deployment_runs_show_the_deployment_name(history: History) -> None:
    rows = task_log(object_name=history.objects["deployed"], since=history.since)
    assert [r.run_id for r in rows] == [history.ids["crashed-early"], history.ids["deployed"]]
    early, row = rows
    assert (row.task_name, row.object_name, row.size_kb, row.result) == (
        history.deployment,
        history.objects["deployed"],
        10.0,
        "completed",
    )
    # found by its deployment although the run was never named "<object> · export"
    assert read_run(early.run_id).name != f"{history.objects['deployed']} · export"
    assert (early.task_name, early.object_name, early.result) == (
        history.deployment,
        history.objects["deployed"],
        "failed",
    )
    assert early.error == "Crashed: infrastructure exited 137"
    assert early.duration == timedelta(0)  # it ended before it started
    by_task = task_log(task=history.deployment, since=history.since)
    assert {r.run_id for r in by_task} == {history.ids["deployed"], history.ids["crashed-early"]}


def test_non_cctasks_flows_only_with_all(history: History) -> None:
    rows = task_log(since=history.since, limit=200)
    assert history.ids["other"] not in {r.run_id for r in rows}
    rows = task_log(since=history.since, limit=200, include_all=True)
    other = next(r for r in rows if r.run_id == history.ids["other"])
    assert (other.type, other.object_name, other.step, other.result) == (
        "not-a-cctasks-flow",
        "",
        "",
        "completed",
    )


def test_filters(history: History) -> None:
    rows = mine(task_log(since=history.since, limit=200, result="failed"), history)
    assert {r.object_name for r in rows} == {
        history.objects[k] for k in ("failed", "crashed", "cancelled", "deployed")
    }
    rows = mine(task_log(since=history.since, limit=200, result="completed"), history)
    assert all(r.result == "completed" for r in rows) and len(rows) == 6
    rows = mine(task_log(since=history.since, limit=200, types=["Report execution"]), history)
    assert {r.run_id for r in rows} == {history.ids["failed"], history.ids["cancelled"]}
    rows = mine(
        task_log(since=history.since, limit=200, types=["campaign-trigger", "import-exclusions"]),
        history,
    )
    assert {r.run_id for r in rows} == {history.ids["start"], history.ids["reset"]}
    assert task_log(object_name=history.objects["completed"].upper(), since=history.since)
    assert task_log(object_name=f"{history.tag} nothing", since=history.since) == []
    failed = read_run(history.ids["failed"])
    assert failed.start_time is not None
    after = task_log(since=failed.start_time, limit=200)
    before = task_log(since=history.since, until=failed.start_time, limit=200)
    assert history.ids["failed"] in {r.run_id for r in after}
    assert history.ids["completed"] not in {r.run_id for r in after}
    assert history.ids["completed"] in {r.run_id for r in before}
    assert history.ids["retried"] not in {r.run_id for r in before}
    assert len(task_log(since=history.since, limit=3)) == 3


def test_unknown_task_column_and_result_name_what_is_valid(history: History) -> None:
    # The list of known tasks is capped with the message (the shared test server holds
    # many deployments), so only its start is pinned.
    with pytest.raises(ObjectNotFound, match=r"unknown task 'nope'; known tasks: [a-z]"):
        task_log(task="nope")
    with pytest.raises(InvalidParameter, match=r"unknown column 'colour'; valid columns"):
        task_log(sort="colour")
    with pytest.raises(InvalidParameter, match=r"unknown result 'ok'; valid results: completed"):
        task_log(result="ok")
    # an ad-hoc run is a task by its flow-run name
    name = f"{history.objects['completed']} · import"
    assert [r.run_id for r in task_log(task=name)] == [history.ids["completed"]]


def _expected_order(rows: list[TaskLogRow], key: str, descending: bool) -> list[UUID]:
    def value(row: TaskLogRow) -> Any:
        v = getattr(row, key)
        return v.casefold() if isinstance(v, str) else v

    present = [r for r in rows if value(r) not in (None, "")]
    missing = [r for r in rows if value(r) in (None, "")]
    ordered = sorted(present, key=value, reverse=descending) + missing
    return [r.run_id for r in ordered]


@pytest.mark.parametrize("descending", [True, False], ids=["desc", "asc"])
@pytest.mark.parametrize("key", [k for k, _ in LOG_COLUMNS])
def test_sort_on_every_column(history: History, key: str, descending: bool) -> None:
    rows = mine(task_log(since=history.since, sort=key, descending=descending, limit=500), history)
    assert len(rows) == len(history.ids) - 1  # all but the non-cctasks run
    values = [getattr(r, key) for r in rows]
    # The fixture's runs are all called directly: Started by is "manual" for each.
    assert len({str(v) for v in values}) > 1 or key == "started_by", f"{key}: nothing to sort"
    if key in ("start_time", "end_time"):
        # server-side: ties (equal times) may come in either order
        assert values == sorted(values, reverse=descending)
    else:
        assert [r.run_id for r in rows] == _expected_order(rows, key, descending)


@pytest.mark.parametrize("key", ["start_time", "end_time"])
@pytest.mark.parametrize("descending", [True, False], ids=["desc", "asc"])
def test_server_side_sorts_page_correctly(history: History, key: str, descending: bool) -> None:
    full = task_log(since=history.since, sort=key, descending=descending, limit=500)
    top = task_log(since=history.since, sort=key, descending=descending, limit=4)
    assert [getattr(r, key) for r in top] == [getattr(r, key) for r in full[:4]]


def test_frame_has_the_seed_columns_typed(history: History) -> None:
    frame = to_frame(task_log(since=history.since, object_name=history.objects["slow"]))
    assert list(frame.columns) == [h for _, h in LOG_COLUMNS]
    assert isinstance(frame.loc[0, "Start time"], pd.Timestamp)
    assert frame.loc[0, "Duration"] >= pd.Timedelta(seconds=1.2)
    assert frame.loc[0, "Size (KB)"] == 3.0


# --- the task-log artifact ------------------------------------------------------------


def test_task_log_artifact_after_a_run(history: History) -> None:
    report = unique("Agent Summary")
    with fast_flows():
        run_id = call(run_report, report=report, nbytes=2560)
    table = latest_task_log()
    assert len(table) <= 100
    assert list(table[0]) == [h for _, h in LOG_COLUMNS]
    row = next(r for r in table if r["Object name"] == report)
    run = read_run(run_id)
    assert run.start_time is not None
    assert row["Start time"] == run.start_time.strftime("%Y-%m-%d %H:%M:%S UTC")
    assert (row["Task name"], row["Size (KB)"], row["Result"], row["Error"]) == (
        f"{report} · generate",
        "2.5",
        "completed",
        "",
    )
    assert (row["Type"], row["Step"]) == ("Report execution", "generate")
    assert row["Duration"].count(":") == 1 and row["End time"].endswith("UTC")
    # older runs are there too, newest first
    starts = [r["Start time"] for r in table]
    assert starts == sorted(starts, reverse=True)
    assert any(r["Object name"] == history.objects["completed"] for r in table)

    failing = unique("Broken Report")
    with fast_flows():
        call(run_report, report=failing, error="no data for sftp://u:pw@h/x")
    row = next(r for r in latest_task_log() if r["Object name"] == failing)
    assert row["Result"] == "failed" and row["Duration"].count(":") == 1
    assert row["Error"] == "InvalidFile: file 'report.csv': no data for sftp://u:***@h/x"
