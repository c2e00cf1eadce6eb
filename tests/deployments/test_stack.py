"""The embedded stack end to end: ``cctasks up`` in a subprocess, on free ports.

The slow tests start real stacks (Prefect server, worker, deploy, demo seeding), so
they share work: the first starts a stack on SQLite and runs a deployment ad hoc, the
second restarts that same state folder and finds nothing duplicated, the third runs
the whole stack on PostgreSQL (both the contact-centre and Prefect's own database).
They need no Prefect test harness, so this module replaces the session fixture.
(``support/stack_support.py`` starts and stops the stacks; ``test_stack_setup.py``
tests the stack's parts without one.)
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from conftest import PG_ADMIN_URL
from support.stack_support import (
    STOP_LIMIT_SECONDS,
    RunningStack,
    kill_everything,
    start_stack,
    stop_stack,
    yaml_deployments,
)

from contact_center.storage.db import create_db_engine
from deployments.demo import CAMPAIGNS, FIRST_RUNS, LATER_RUNS, LISTS

#: The demo's seed runs, and what the stack says of one that had completed before.
DEMO_RUNS = sum(len(stage) for stage in FIRST_RUNS) + len(LATER_RUNS)
RAN_BEFORE = "ran before, not run again"

DEMO_TABLES = (
    "campaigns", "calling_lists", "campaign_lists", "campaign_exclusion_lists", "list_records",
    "list_imports", "exclusion_lists", "exclusions", "call_attempts",
)


@pytest.fixture(scope="session", autouse=True)
def prefect_server() -> Iterator[None]:
    """No test harness: these tests talk to the stacks they start."""
    yield


def prefect_state(stack: RunningStack) -> dict[str, Any]:
    """What the stack's Prefect server holds, read through the client."""
    from prefect import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterTags
    from prefect.settings import PREFECT_API_URL, temporary_settings

    with temporary_settings(updates={PREFECT_API_URL: stack.api_url}):
        with get_client(sync_client=True) as client:
            flows = {f.id: f.name for f in client.read_flows()}
            deployments = client.read_deployments()
            blocks = client.read_block_documents()
            pools = client.read_work_pools()
            limits = client.read_global_concurrency_limits(limit=100)
            seeded = client.read_flow_runs(
                flow_run_filter=FlowRunFilter(tags=FlowRunFilterTags(all_=["demo-seed"]))
            )
    return {
        "deployments": {f"{flows[d.flow_id]}/{d.name}": d for d in deployments},
        "deployment_names": sorted(f"{flows[d.flow_id]}/{d.name}" for d in deployments),
        "blocks": sorted(b.name for b in blocks if b.name and not b.is_anonymous),
        "pools": sorted(p.name for p in pools),
        "limits": {limit.name: limit.limit for limit in limits},
        "seeded": {(r.name, r.state.type.value if r.state else None) for r in seeded},
        "seeded_count": len(seeded),
        "seeded_deployments": sorted(
            f"{flows[d.flow_id]}/{d.name}"
            for r in seeded
            for d in deployments
            if d.id == r.deployment_id
        ),
    }


def demo_counts(url: str) -> dict[str, int]:
    """Rows per demo table of the contact-centre database."""
    engine = create_db_engine(url)
    with engine.connect() as conn:
        return {
            table: int(conn.execute(sa.text(f"SELECT count(*) FROM {table}")).scalar_one())  # noqa: S608
            for table in DEMO_TABLES
        }


def check_deployments(stack: RunningStack, state: dict[str, Any]) -> None:
    """Every deployment of prefect.yaml exists with its schedules, parameters and pull step."""
    expected = yaml_deployments()
    assert set(expected) <= set(state["deployments"])
    for name, spec in expected.items():
        deployment = state["deployments"][name]
        params = json.loads(
            json.dumps(spec.get("parameters", {})).replace("{{ $CCTASKS_HOME }}", str(stack.home))
        )
        assert deployment.parameters == params, name
        assert deployment.work_pool_name == "cctasks" and set(deployment.tags) == set(spec["tags"])
        assert deployment.description == spec["description"], name
        # The pull step keeps its placeholder: each worker resolves it to its checkout.
        assert deployment.pull_steps == spec["pull"], name
        assert deployment.global_concurrency_limit is not None
        assert deployment.global_concurrency_limit.limit == 1
        got = sorted(
            (s.slug, str(getattr(s.schedule, "cron", getattr(s.schedule, "interval", ""))),
             getattr(s.schedule, "timezone", None) if hasattr(s.schedule, "cron") else None,
             s.parameters, s.active)
            for s in deployment.schedules
        )
        want = sorted(
            (s["slug"], s["cron"] if "cron" in s else str(timedelta(seconds=s["interval"])),
             s.get("timezone"), s.get("parameters", {}), True)
            for s in spec.get("schedules", [])
        )
        assert got == want, name


@pytest.fixture(scope="module")
def sqlite_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The state folder shared by the first start and the restart."""
    return tmp_path_factory.mktemp("stack") / "home"


@pytest.mark.slow
@pytest.mark.timeout(1200)
def test_up_deploys_seeds_runs_and_stops(sqlite_home: Path) -> None:
    stack = start_stack(sqlite_home)
    try:
        text = stack.text()
        assert f"http://127.0.0.1:{stack.port}" in text
        for hint in ("cctasks scheduled", "cctasks run", "cctasks log", "Ctrl-C"):
            assert hint in text
        import httpx

        assert httpx.get(f"{stack.api_url}/health", timeout=10).status_code == 200
        # The UI is served and talks to this port, not to the default 4200.
        ui_settings = httpx.get(f"http://127.0.0.1:{stack.port}/ui-settings", timeout=10)
        assert ui_settings.json()["api_url"] == stack.api_url

        state = prefect_state(stack)
        check_deployments(stack, state)
        assert state["pools"] == ["cctasks"]
        assert {"contact-center", "cctasks-email", "partner-sftp"} <= set(state["blocks"])
        assert not {"cctasks-database-loads", "cctasks-sftp-sessions"} & set(state["limits"])
        # The demo's first runs went through the worker and completed.
        assert {s for _, s in state["seeded"]} == {"COMPLETED"}, state["seeded"]
        # Each demo deployment ran once for the seed, or had completed a run already: the
        # drop-folder sensor's trigger may import a demo file the moment it is written.
        ran_before = stack.text().count(RAN_BEFORE)
        assert state["seeded_count"] + ran_before == DEMO_RUNS, (state, stack.text())
        assert len(set(state["seeded_deployments"])) == state["seeded_count"]
        counts = demo_counts(f"sqlite:///{sqlite_home / 'contact-center.db'}")
        assert counts["campaigns"] == len(CAMPAIGNS) and counts["calling_lists"] == len(LISTS)
        # The files hold a few rejects and some DNC accounts on purpose.
        assert 0 < counts["list_records"] < sum(demo.rows for demo in LISTS)
        assert counts["exclusions"] > 0 and counts["call_attempts"] > 0

        # An ad-hoc run from the CLI, as the banner suggests, then the task log shows it.
        ran = stack.cli("run", "spring-sales-hours", "--param", "step=stop", "--watch")
        assert ran.returncode == 0, ran.stdout + ran.stderr
        log = stack.cli("log", "--task", "spring-sales-hours", "--format", "json")
        assert log.returncode == 0, log.stderr
        rows = json.loads(log.stdout)
        stops = [r for r in rows if r.get("step") == "stop"]
        assert stops and stops[0]["result"] == "completed", rows
        assert stops[0]["object_name"] == "Spring Sales"
    except BaseException:
        kill_everything(stack)
        raise
    children_gone, exited = stop_stack(stack)
    assert children_gone < STOP_LIMIT_SECONDS, f"the stack took {children_gone:.1f} s to stop"
    # `cctasks up` exits once Python has torn down its modules (Prefect, SQLAlchemy,
    # pandas): 4-8 s more were measured on 2 cores at a load average of 10.
    assert exited < 2 * STOP_LIMIT_SECONDS, f"cctasks up took {exited:.1f} s to exit"


@pytest.mark.slow
@pytest.mark.timeout(1200)
def test_restart_reuses_the_state_and_duplicates_nothing(sqlite_home: Path) -> None:
    if not (sqlite_home / "prefect" / "prefect.db").exists():
        pytest.skip("needs the state of test_up_deploys_seeds_runs_and_stops")
    url = f"sqlite:///{sqlite_home / 'contact-center.db'}"
    files = {p: p.stat().st_mtime_ns for p in (sqlite_home / "drop").rglob("*.csv")}
    rows_before = demo_counts(url)
    stack = start_stack(sqlite_home)
    try:
        state = prefect_state(stack)
        # Every demo deployment had completed a run: none is run again.
        assert "(kept)" in stack.text() and stack.text().count(RAN_BEFORE) == DEMO_RUNS
        check_deployments(stack, state)
        assert len(state["deployment_names"]) == len(set(state["deployment_names"]))
        assert sorted(state["deployments"]) == sorted(yaml_deployments())
        assert state["blocks"].count("contact-center") == 1 and state["pools"] == ["cctasks"]
        assert state["seeded_count"] <= DEMO_RUNS
        assert len(set(state["seeded_deployments"])) == state["seeded_count"]
        assert demo_counts(url) == rows_before
        assert {p: p.stat().st_mtime_ns for p in files} == files
    except BaseException:
        kill_everything(stack)
        raise
    stop_stack(stack)


@pytest.fixture
def pg_urls() -> Iterator[tuple[str, str]]:
    """Two fresh PostgreSQL databases: the contact centre's and Prefect's."""
    admin = sa.create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect():
            pass
    except sa.exc.OperationalError:
        if os.environ.get("CI"):
            pytest.fail(f"PostgreSQL is not reachable at {PG_ADMIN_URL} under CI")
        pytest.skip(f"PostgreSQL is not reachable at {PG_ADMIN_URL}")
    names = [f"cctasks_stack_{uuid.uuid4().hex[:8]}", f"prefect_stack_{uuid.uuid4().hex[:8]}"]
    with admin.connect() as conn:
        for name in names:
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    base = sa.make_url(PG_ADMIN_URL)
    cc_url = base.set(database=names[0]).render_as_string(hide_password=False)
    prefect_url = base.set(drivername="postgresql+asyncpg", database=names[1])
    try:
        yield cc_url, prefect_url.render_as_string(hide_password=False)
    finally:
        create_db_engine(cc_url).dispose()
        with admin.connect() as conn:
            for name in names:
                conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.mark.slow
@pytest.mark.timeout(1200)
def test_up_on_postgresql(tmp_path: Path, pg_urls: tuple[str, str]) -> None:
    cc_url, prefect_url = pg_urls
    home = tmp_path / "home"
    stack = start_stack(
        home, "--database-url", cc_url, "--prefect-database-url", prefect_url
    )
    try:
        assert not (home / "prefect" / "prefect.db").exists()  # Prefect's state is in PostgreSQL
        state = prefect_state(stack)
        check_deployments(stack, state)
        assert {s for _, s in state["seeded"]} == {"COMPLETED"}, state["seeded"]
        counts = demo_counts(cc_url)
        assert counts["campaigns"] == len(CAMPAIGNS) and counts["list_records"] > 0
        assert counts["call_attempts"] > 0 and counts["exclusions"] > 0
        assert not (home / "contact-center.db").exists()
    except BaseException:
        kill_everything(stack)
        raise
    stop_stack(stack)
