"""The Scheduled view against a real Prefect server (the test harness): the runs to
come with the step each schedule gives them, late, pending and retrying runs, flows that
are not cctasks', and the progress of a run in flight."""

from __future__ import annotations

import time
from datetime import timedelta
from uuid import UUID

from prefect.client.orchestration import get_client
from prefect.client.schemas.actions import DeploymentScheduleCreate
from prefect.client.schemas.schedules import CronSchedule
from prefect.states import AwaitingRetry, Late, Pending, Running, Scheduled
from support.tasklog_support import (
    GATES,
    campaign_trigger,
    deploy,
    fast_flows,
    import_calling_list,
    in_thread,
    other_flow,
    run_report,
    unique,
    utcnow,
)

from runlog import ScheduledRow, scheduled, task_log


def _schedule_runs(deployment_id: UUID) -> None:
    """Ask the server to create the schedules' next runs, as its scheduler does."""
    with get_client(sync_client=True) as client:
        client.request(
            "POST",
            "/deployments/{id}/schedule",
            path_params={"id": deployment_id},
            json={"min_time": 2 * 86400.0, "max_runs": 10},
        )


def test_scheduled_rows_take_their_step_from_each_schedule() -> None:
    campaign = unique("Spring Drive")
    name = unique("spring-drive-trigger")
    deployment_id = deploy(
        campaign_trigger,
        name,
        {"campaign": campaign, "step": "start"},
        schedules=[
            DeploymentScheduleCreate(
                schedule=CronSchedule(cron="0 8 * * *", timezone="UTC"),
                parameters={"step": "start"},
                slug="start",
            ),
            DeploymentScheduleCreate(
                schedule=CronSchedule(cron="0 20 * * *", timezone="UTC"),
                parameters={"step": "stop"},
                slug="stop",
            ),
        ],
    )
    _schedule_runs(deployment_id)
    now = utcnow()
    rows = [r for r in scheduled(horizon=timedelta(hours=24)) if r.task_name == name]
    assert len(rows) == 2, rows  # one 08:00 start and one 20:00 stop within 24 h
    for row in rows:
        assert row.start_time is not None and now <= row.start_time <= now + timedelta(hours=24)
        expected_step = "start" if row.start_time.hour == 8 else "stop"
        assert row == ScheduledRow(
            start_time=row.start_time,
            object_name=campaign,
            task_name=name,
            attempts=0,
            state="scheduled",
            progress=None,
            type="Campaign trigger",
            step=expected_step,
            run_id=row.run_id,
            flow_name="campaign-trigger",
        )
    assert [r.start_time for r in rows] == sorted(r.start_time for r in rows)
    longer = [r for r in scheduled(horizon=timedelta(hours=48)) if r.task_name == name]
    assert len(longer) == 4 and {r.step for r in longer} == {"start", "stop"}


def test_scheduled_states_late_pending_retrying_and_ignored_flows() -> None:
    report = unique("Daily Calls")
    name = unique("daily-calls")
    deployment_id = deploy(run_report, name, {"report": report})
    with get_client(sync_client=True) as client:
        late = client.create_flow_run_from_deployment(
            deployment_id, state=Scheduled(scheduled_time=utcnow() - timedelta(minutes=5))
        )
        client.set_flow_run_state(late.id, Late(scheduled_time=late.expected_start_time))
        pending = client.create_flow_run_from_deployment(deployment_id)
        client.set_flow_run_state(pending.id, Pending())
        retrying = client.create_flow_run_from_deployment(deployment_id)
        client.set_flow_run_state(retrying.id, Pending())
        client.set_flow_run_state(retrying.id, Running())
        client.set_flow_run_state(
            retrying.id, AwaitingRetry(scheduled_time=utcnow() + timedelta(minutes=1)), force=True
        )
        other = client.create_flow_run(other_flow, state=Pending())
    rows = {r.run_id: r for r in scheduled()}
    assert rows[late.id].state == "late"
    assert rows[late.id].start_time == late.expected_start_time
    assert rows[pending.id].state == "pending"
    # it ran once and waits for its second attempt
    assert (rows[retrying.id].state, rows[retrying.id].attempts) == ("retrying", 2)
    assert rows[retrying.id].note == "the run failed; waits to retry: attempt 2"
    assert all(
        rows[i].task_name == name and rows[i].object_name == report
        for i in rows
        if i in (late.id, pending.id)
    )
    assert rows[pending.id].step == "generate"
    assert other.id not in rows
    assert other.id in {r.run_id for r in scheduled(include_all=True)}


def test_progress_is_read_while_a_run_is_in_flight() -> None:
    name = unique("Autumn Leads")
    GATES[name] = __import__("threading").Event()
    with fast_flows():
        thread = in_thread(import_calling_list, list_name=name, nbytes=4096, gate=name)
        try:
            deadline = time.monotonic() + 30
            row = None
            while time.monotonic() < deadline:
                row = next((r for r in scheduled() if r.object_name == name), None)
                if row is not None and row.progress == 75.0:
                    break
                time.sleep(0.2)
            assert row is not None
            assert (row.state, row.progress, row.attempts, row.step) == (
                "in progress",
                75.0,
                1,
                "import",
            )
            assert row.task_name == f"{name} · import"
            assert task_log(object_name=name) == []  # not in the log until it ends
        finally:
            GATES[name].set()
            thread.join(30)
    done = task_log(object_name=name)
    assert [(r.result, r.size_kb) for r in done] == [("completed", 4.0)]
    assert not [r for r in scheduled() if r.object_name == name]
