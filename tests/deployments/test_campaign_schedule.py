"""Campaign deployments as Prefect schedules them: two schedules (slugs ``start``/``stop``),
DST in America/New_York, holidays by scheduled date, and manual steps leaving the
automation alone.

The deployments are real, on the harness server (one of them built from the documented
``prefect.yaml`` example), and runs are created by the server's own scheduling
(``POST /deployments/{id}/schedule``, what the scheduler service calls), never computed here.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, cast
from uuid import UUID
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa
import yaml
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import (
    FlowRunFilter,
    FlowRunFilterDeploymentId,
    FlowRunFilterExpectedStartTime,
)
from prefect.client.schemas.objects import FlowRun
from prefect.client.schemas.sorting import FlowRunSort
from prefect.deployments.runner import RunnerDeployment
from prefect.flow_engine import run_flow
from prefect.schedules import Cron
from prefect.settings import PREFECT_FLOWS_HEARTBEAT_FREQUENCY, temporary_settings
from test_campaigns import add_records

from contact_center.storage.campaign_steps import campaign_events
from contact_center.storage.campaigns import ensure_campaign, get_campaign, link_list
from flows.campaign_trigger import campaign_trigger
from runlog import scheduled, task_log

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "campaign-trigger.md"
NY = ZoneInfo("America/New_York")


@pytest.fixture(autouse=True)
def _no_heartbeat_delay() -> Iterator[None]:
    with temporary_settings(updates={PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None}):
        yield


def documented_deployment() -> dict[str, Any]:
    """The ``prefect.yaml`` example of docs/campaign-trigger.md, parsed."""
    block = re.search(r"```yaml\n(.*?)```", DOC.read_text(), re.S)
    assert block, "docs/campaign-trigger.md has no yaml example"
    (deployment,) = yaml.safe_load(block.group(1))["deployments"]
    return dict(deployment)


def schedule_runs(deployment_id: UUID, start: datetime, end: datetime) -> list[FlowRun]:
    """Let the server create the deployment's runs in [start, end]; return them in order."""
    with get_client(sync_client=True) as client:
        response = client.request(
            "POST",
            "/deployments/{id}/schedule",
            path_params={"id": deployment_id},
            json={
                "start_time": start.isoformat(),
                "end_time": end.isoformat(),
                # Fill the whole window: the server stops early once it has min_runs
                # runs reaching start + min_time.
                "min_time": (end - start).total_seconds(),
                "min_runs": 100,
                "max_runs": 100,
            },
        )
        response.raise_for_status()
        return client.read_flow_runs(
            flow_run_filter=FlowRunFilter(
                deployment_id=FlowRunFilterDeploymentId(any_=[deployment_id]),
                expected_start_time=FlowRunFilterExpectedStartTime(
                    after_=start,  # type: ignore[arg-type]
                    before_=end,  # type: ignore[arg-type]
                ),
            ),
            sort=FlowRunSort.EXPECTED_START_TIME_ASC,
        )


def deploy(deployment: dict[str, Any], name: str) -> UUID:
    """Create ``deployment`` (a ``prefect.yaml`` entry) on the server, schedules and all.

    The fields map one to one onto Prefect's own deployment API; ``prefect deploy`` itself
    (a CLI start-up of a minute on a loaded machine) is exercised by the stack test.
    """
    entrypoint = deployment["entrypoint"]
    assert entrypoint == "flows/campaign_trigger.py:campaign_trigger"
    schedules = [
        Cron(s["cron"], timezone=s["timezone"], slug=s["slug"], parameters=s["parameters"])
        for s in deployment["schedules"]
    ]
    runner_deployment = campaign_trigger.to_deployment(
        name=name,
        description=deployment.get("description"),
        tags=deployment.get("tags"),
        parameters=deployment["parameters"],
        schedules=schedules,
    )
    assert isinstance(runner_deployment, RunnerDeployment)
    return cast(UUID, runner_deployment.apply())


@pytest.fixture(scope="module")
def deployed_example() -> UUID:
    """The documented deployment, on the harness server."""
    deployment = documented_deployment()
    return deploy(deployment, f"{deployment['name']}-{uuid.uuid4().hex[:6]}")


def test_documented_deployment_has_two_schedules_with_their_steps(deployed_example: UUID) -> None:
    with get_client(sync_client=True) as client:
        deployment = client.read_deployment(deployed_example)
        schedules = client.read_deployment_schedules(deployed_example)
    assert deployment.parameters["campaign"] == "Spring Sale"
    by_slug = {s.slug: s for s in schedules}
    assert set(by_slug) == {"start", "stop"}
    for slug, cron in (("start", "0 8 * * 1-5"), ("stop", "0 20 * * 1-5")):
        assert by_slug[slug].parameters == {"step": slug}
        assert by_slug[slug].schedule.cron == cron  # type: ignore[union-attr]
        assert by_slug[slug].schedule.timezone == "America/New_York"  # type: ignore[union-attr]
        assert by_slug[slug].active


@pytest.mark.parametrize(
    "change, before_offset, after_offset",
    [(datetime(2026, 3, 8), -5, -4), (datetime(2026, 11, 1), -4, -5)],
    ids=["spring-forward", "fall-back"],
)
def test_weekday_start_0800_stop_2000_across_dst(
    deployed_example: UUID, change: datetime, before_offset: int, after_offset: int
) -> None:
    start = (change - timedelta(days=6)).replace(tzinfo=UTC)
    end = (change + timedelta(days=6, hours=12)).replace(tzinfo=UTC)  # a Saturday
    runs = schedule_runs(deployed_example, start, end)
    # Two weeks of five weekdays, a start and a stop each (the window cuts no weekday).
    assert len(runs) == 20
    offsets = set()
    for flow_run in runs:
        local = flow_run.expected_start_time.astimezone(NY)  # type: ignore[union-attr]
        step = flow_run.parameters["step"]
        assert flow_run.parameters["campaign"] == "Spring Sale"
        assert (local.hour, local.minute) == ((8, 0) if step == "start" else (20, 0))
        assert local.weekday() < 5
        assert flow_run.state is not None and flow_run.state.is_scheduled()
        offset = local.utcoffset()
        assert offset is not None
        expected = before_offset if local.date() < change.date() else after_offset
        assert offset == timedelta(hours=expected), local
        offsets.add(offset)
    assert offsets == {timedelta(hours=before_offset), timedelta(hours=after_offset)}
    steps = [(r.expected_start_time.astimezone(NY).date(), r.parameters["step"]) for r in runs]  # type: ignore[union-attr]
    assert steps[:2] == [(steps[0][0], "start"), (steps[0][0], "stop")]
    # In UTC the same local 08:00 moves by an hour.
    utc_starts = {
        r.expected_start_time.astimezone(UTC).hour  # type: ignore[union-attr]
        for r in runs
        if r.parameters["step"] == "start"
    }
    assert utc_starts == {8 - before_offset, 8 - after_offset}


# --- scheduled runs, executed ------------------------------------------------------------


@pytest.fixture
def holiday_deployment(engine: sa.Engine) -> UUID:
    """A campaign with dialable records, and its deployment skipping US holidays."""
    ensure_campaign(engine, "Summer Sale", time_zone="America/New_York")
    link_list(engine, "Summer Sale", "Summer Leads")
    add_records(engine, "Summer Leads", ["S1"])
    # The documented schedules, for another campaign that skips US holidays.
    deployment = documented_deployment()
    deployment["parameters"] = {"campaign": "Summer Sale", "holidays": "US"}
    return deploy(deployment, f"summer-sale-hours-{uuid.uuid4().hex[:6]}")


def execute(flow_run: FlowRun) -> Any:
    """Execute a scheduled run in this process, as a worker's child process would."""
    state = run_flow(
        campaign_trigger, flow_run=flow_run, parameters=flow_run.parameters, return_type="state"
    )
    assert state.is_completed(), state.message  # type: ignore[union-attr]
    return state.result()  # type: ignore[union-attr]


def test_holiday_is_judged_by_the_runs_scheduled_date(
    engine: sa.Engine, holiday_deployment: UUID
) -> None:
    # 2026-07-03 is Independence Day (observed). The runs execute now, months later:
    # what counts is the date each was scheduled for.
    runs = schedule_runs(
        holiday_deployment,
        datetime(2026, 7, 2, tzinfo=NY),
        datetime(2026, 7, 4, tzinfo=NY),
    )
    plan = [(r.expected_start_time.astimezone(NY), r.parameters["step"]) for r in runs]  # type: ignore[union-attr]
    assert [(t.strftime("%m-%d %H:%M"), s) for t, s in plan] == [
        ("07-02 08:00", "start"),
        ("07-02 20:00", "stop"),
        ("07-03 08:00", "start"),
        ("07-03 20:00", "stop"),
    ]
    outcomes = [execute(r) for r in runs]
    assert [o.message for o in outcomes] == [
        "started",
        "stopped",
        "skipped (holiday): 2026-07-03 is a holiday in US: Independence Day (observed)",
        "skipped (holiday): 2026-07-03 is a holiday in US: Independence Day (observed)",
    ]
    with engine.connect() as conn:
        assert get_campaign(conn, "Summer Sale").state == "stopped"
        events = campaign_events(conn, "Summer Sale")
    assert [(e.action, e.source, e.result, e.flow_run_id) for e in events] == [
        (step, "schedule", result, str(r.id))
        for r, (_, step), result in zip(
            runs,
            plan,
            ["started", "stopped", "skipped (holiday)", "skipped (holiday)"],
            strict=True,
        )
    ]
    with get_client(sync_client=True) as client:
        names = [client.read_flow_run(r.id).name for r in runs]
        deployment_name = client.read_deployment(holiday_deployment).name
    assert names == ["Summer Sale · start", "Summer Sale · stop"] * 2
    # The task log shows each trigger (the result text is in the run's state message);
    # the holiday's runs are skipped, with the reason in the Error column.
    rows = task_log(task=deployment_name, sort="start_time", descending=False)
    assert [(r.object_name, r.type, r.step, r.result, r.state) for r in rows] == [
        ("Summer Sale", "Campaign trigger", step, result, state)
        for (_, step), (result, state) in zip(
            plan,
            [("completed", "Completed")] * 2 + [("completed (skipped)", "Skipped")] * 2,
            strict=True,
        )
    ]
    assert [r.error for r in rows] == ["", ""] + [outcomes[2].message] * 2


def test_manual_steps_leave_the_automation_alone(
    engine: sa.Engine, holiday_deployment: UUID
) -> None:
    later = datetime.now(UTC) + timedelta(days=1)
    scheduled_runs = schedule_runs(holiday_deployment, later, later + timedelta(days=7))
    assert scheduled_runs
    campaign_trigger(campaign="Summer Sale", step="start", source="manual")
    campaign_trigger(campaign="Summer Sale", step="stop", source="manual")
    with engine.connect() as conn:
        assert [e.source for e in campaign_events(conn, "Summer Sale")] == ["manual", "manual"]
    with get_client(sync_client=True) as client:
        deployment = client.read_deployment(holiday_deployment)
        schedules = client.read_deployment_schedules(holiday_deployment)
        still = [client.read_flow_run(r.id) for r in scheduled_runs]
    assert not deployment.paused
    assert sorted((s.slug, s.active) for s in schedules) == [("start", True), ("stop", True)]
    assert all(r.state is not None and r.state.is_scheduled() for r in still)
    # The Scheduled view still lists the next start and stop, each with its step.
    upcoming = [
        row
        for row in scheduled(horizon=timedelta(days=9))
        # (were the scheduler service running, it could add runs outside the window)
        if row.task_name == deployment.name
        and row.start_time is not None
        and later <= row.start_time <= later + timedelta(days=7)
    ]
    assert [(r.run_id, r.object_name, r.type, r.step) for r in upcoming] == [
        (r.id, "Summer Sale", "Campaign trigger", r.parameters["step"]) for r in scheduled_runs
    ]
    assert {r.step for r in upcoming} == {"start", "stop"}
