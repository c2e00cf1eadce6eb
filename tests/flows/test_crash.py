"""Dead runs end Crashed, free their slots, and leave no list half-loaded.

The fast tests use the session's Prefect server: the heartbeat setting, the work pool's
environment, the automations as the server stores them, and the ending of leftover
runs (with real processes standing in for live and dead flow runs).

The slow tests start real stacks and kill real processes in the middle of a 1M-row
list import, once its rows are going into the database:

- ``cctasks up`` stopped with SIGTERM, then started again; then killed with SIGKILL
  together with everything it started, as when the machine dies, and started again;
- the flow-run process killed while its worker lives;
- the worker and its flow-run processes killed while the server lives: the server's
  automations end the runs (heartbeats every 30 s, Prefect's minimum).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest
import sqlalchemy as sa
from conftest import PG_ADMIN_URL, free_port
from prefect.client.schemas.objects import StateType
from support.crash_support import (
    Api,
    freeze_and_kill,
    list_snapshot,
    run_process,
    run_to_completion,
    seed_demo_lists,
    slots_taken,
    start_run,
    wait_for_end,
    wait_until_loading,
    write_list_file,
)
from support.processes import stack_processes
from support.stack_support import STOP_LIMIT_SECONDS, kill_everything, start_stack, stop_stack

from contact_center.exceptions import InvalidParameter
from contact_center.settings import MIN_HEARTBEAT_SECONDS, get_settings
from contact_center.storage.db import create_db_engine
from deployments.automations import (
    CRASH_SILENT_RUNS,
    FINISH_ORPHANED_CANCELS,
    ensure_automations,
    heartbeat_window,
)
from deployments.bootstrap import HEARTBEAT_VARIABLE, ensure_work_pool, pool_job_template
from deployments.demo.files import list_folder
from deployments.leftovers import end_leftover_runs, free_stale_slots
from deployments.stack import Stack
from deployments.stack_options import WORKER_NAME, StackOptions, stack_environment

PROJECT = Path(__file__).resolve().parents[2]
SPRING = "import-calling-list/spring-leads-import"
RETENTION = "import-calling-list/retention-q2-import"
BIG_ROWS = 1_000_000  # a few seconds of loading on an idle machine: time to kill it


# --- the heartbeat, the pool and the automations -----------------------------------------


def test_heartbeat_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CCTASKS_HEARTBEAT_SECONDS", raising=False)
    assert get_settings().heartbeat_seconds == 60
    monkeypatch.setenv("CCTASKS_HEARTBEAT_SECONDS", "30")
    assert get_settings().heartbeat_seconds == 30
    assert StackOptions.create(port=free_port()).heartbeat_seconds == 30
    monkeypatch.setenv("CCTASKS_HEARTBEAT_SECONDS", "10")
    with pytest.raises(InvalidParameter, match=r"HEARTBEAT_SECONDS=10: .* give 30 or more"):
        get_settings()
    monkeypatch.setenv("CCTASKS_HEARTBEAT_SECONDS", "1m")
    with pytest.raises(InvalidParameter, match="'1m' is not a whole number of seconds"):
        StackOptions.create()


def test_the_server_keeps_concurrency_leases_on_disk(tmp_path: Path) -> None:
    options = StackOptions(home=tmp_path, project_dir=PROJECT)
    variable = "PREFECT_SERVER_CONCURRENCY_LEASE_STORAGE"
    assert stack_environment(options, {})[variable] == (
        "prefect.server.concurrency.lease_storage.filesystem"
    )
    chosen = {variable: "prefect_redis.lease_storage"}
    assert stack_environment(options, chosen)[variable] == "prefect_redis.lease_storage"


def test_pool_runs_get_the_heartbeat_and_keep_their_environment() -> None:
    template = pool_job_template(45)
    assert template["variables"]["properties"]["env"]["default"] == {HEARTBEAT_VARIABLE: "45"}
    template["variables"]["properties"]["env"]["default"]["TZ"] = "America/New_York"
    again = pool_job_template(30, template)
    assert again["variables"]["properties"]["env"]["default"] == {
        HEARTBEAT_VARIABLE: "30", "TZ": "America/New_York"
    }
    assert template["variables"]["properties"]["env"]["default"][HEARTBEAT_VARIABLE] == "45"
    assert again["job_configuration"]["env"] == "{{ env }}"  # the pool passes it to the run


def test_work_pool_gets_the_heartbeat_once() -> None:
    from prefect import get_client
    from prefect.client.schemas.actions import WorkPoolUpdate

    pool = f"heartbeat-probe-{uuid.uuid4().hex[:6]}"
    assert ensure_work_pool(pool, heartbeat_seconds=60) == "created"
    assert ensure_work_pool(pool, heartbeat_seconds=60) == "kept"
    with get_client(sync_client=True) as client:
        # An admin's own variable in the pool's environment, set in the UI.
        template = client.read_work_pool(pool).base_job_template
        template["variables"]["properties"]["env"]["default"]["TZ"] = "UTC"
        client.update_work_pool(pool, WorkPoolUpdate(base_job_template=template))
    assert ensure_work_pool(pool, heartbeat_seconds=30) == "updated"
    with get_client(sync_client=True) as client:
        env = client.read_work_pool(pool).base_job_template["variables"]["properties"]["env"]
    assert env["default"] == {HEARTBEAT_VARIABLE: "30", "TZ": "UTC"}


def test_automations_are_created_once_and_follow_the_heartbeat() -> None:
    from prefect import get_client

    names = (CRASH_SILENT_RUNS, FINISH_ORPHANED_CANCELS)
    try:
        assert ensure_automations(30) == dict.fromkeys(names, "created")
        assert ensure_automations(30) == dict.fromkeys(names, "kept")
        with get_client(sync_client=True) as client:
            [crash] = client.read_automations_by_name(CRASH_SILENT_RUNS)
            [cancel] = client.read_automations_by_name(FINISH_ORPHANED_CANCELS)
        assert crash.trigger.model_dump(include={"posture", "after", "within"}) == {
            "posture": "Proactive", "after": {"prefect.flow-run.heartbeat"},
            "within": heartbeat_window(30),
        }
        assert heartbeat_window(30).total_seconds() == 90  # Prefect's own example
        assert crash.actions[0].model_dump(include={"type", "state"}) == {
            "type": "change-flow-run-state", "state": StateType.CRASHED,
        }
        assert cancel.trigger.model_dump(include={"after"}) == {
            "after": {"prefect.flow-run.Cancelling"}
        }
        assert cancel.actions[0].model_dump(include={"state"}) == {"state": StateType.CANCELLED}
        with get_client(sync_client=True) as client:
            client.pause_automation(cancel.id)  # an admin turns one off in the UI
        assert ensure_automations(45) == dict.fromkeys(names, "updated")
        with get_client(sync_client=True) as client:
            [crash] = client.read_automations_by_name(CRASH_SILENT_RUNS)
            [cancel] = client.read_automations_by_name(FINISH_ORPHANED_CANCELS)
        assert crash.trigger.model_dump()["within"].total_seconds() == 135
        assert crash.enabled and not cancel.enabled  # the admin's choice stands
    finally:
        with get_client(sync_client=True) as client:
            for name in names:
                for automation in client.read_automations_by_name(name):
                    client.delete_automation(automation.id)


# --- leftover runs, against the session's server -----------------------------------------


def _probe_runs(pool: str) -> dict[str, Any]:
    """Deployments with their own limit of one run, and runs in the states a stack leaves."""
    from prefect import get_client
    from prefect.client.schemas.actions import WorkPoolCreate
    from prefect.states import Cancelling, Pending, Running

    with get_client(sync_client=True) as client:
        client.create_work_pool(WorkPoolCreate(name=pool, type="process"))
        flow_id = client.create_flow_from_name("crash-probe")
        deployments = {
            name: client.create_deployment(
                flow_id, name, work_pool_name=pool, concurrency_limit=1
            )
            for name in ("dead", "alive", "elsewhere", "cancelled", "stale")
        }
        runs: dict[str, Any] = {}
        for name in ("dead", "alive", "elsewhere", "cancelled"):
            run = client.create_flow_run_from_deployment(deployments[name])
            # As a worker does: Pending takes the deployment's slot, then Running.
            assert client.set_flow_run_state(run.id, Pending()).status.value == "ACCEPT"
            assert client.set_flow_run_state(run.id, Running()).status.value == "ACCEPT"
            worker = "cctasks-elsewhere" if name == "elsewhere" else WORKER_NAME
            client.update_flow_run_labels(run.id, {"prefect.worker.name": worker})
            runs[name] = run
        client.set_flow_run_state(runs["cancelled"].id, Cancelling())
        # A slot taken by no run: what a server that lost its leases keeps.
        stale = client.read_deployment(deployments["stale"]).global_concurrency_limit
        assert stale is not None
        client.increment_concurrency_slots([stale.name], slots=1, mode="concurrency")
    return {"deployments": deployments, "runs": runs}


def test_leftover_runs_end_crashed_or_cancelled_and_free_their_slots(tmp_path: Path) -> None:
    from prefect import get_client

    pool = f"crash-probe-{uuid.uuid4().hex[:6]}"
    probe = _probe_runs(pool)
    runs = probe["runs"]
    alive = subprocess.Popen(  # the process of the run that still runs
        [sys.executable, "-c", "import time; time.sleep(120)"],
        env={**os.environ, "PREFECT__FLOW_RUN_ID": str(runs["alive"].id)},
    )
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    try:
        with get_client(sync_client=True) as client:
            for name, pid in (("alive", alive.pid), ("dead", dead.pid), ("cancelled", dead.pid),
                              ("elsewhere", dead.pid)):
                client.update_flow_run(runs[name].id, infrastructure_pid=str(pid))
        ended = end_leftover_runs(WORKER_NAME, pool, "its process was gone at the test")
        assert {(run.id, run.was, run.now) for run in ended} == {
            (runs["dead"].id, "Running", "Crashed"),
            (runs["cancelled"].id, "Cancelling", "Cancelled"),
        }
        assert free_stale_slots(pool) == {"stale": 1}
        with get_client(sync_client=True) as client:
            states = {name: client.read_flow_run(run.id).state for name, run in runs.items()}
            slots = {
                name: client.read_deployment(deployment_id).global_concurrency_limit.active_slots
                for name, deployment_id in probe["deployments"].items()
            }
        assert states["dead"].type == StateType.CRASHED
        assert states["dead"].message == (
            "Its process was gone at the test, so the run could not report its end."
        )
        assert states["cancelled"].type == StateType.CANCELLED
        assert states["cancelled"].message == (
            "The cancel was asked for, and its process was gone at the test."
        )
        # Another machine's run, and a run whose process lives, are not this stack's to end.
        assert states["alive"].type == states["elsewhere"].type == StateType.RUNNING
        assert slots == {"dead": 0, "alive": 1, "elsewhere": 1, "cancelled": 0, "stale": 0}
        assert end_leftover_runs(WORKER_NAME, pool, "again") == []
    finally:
        alive.kill()
        alive.wait()


# --- helpers of the slow tests ------------------------------------------------------------


def quiet_sensor(api_url: str) -> None:
    """Pause the drop-folder sensor: the big files these tests write into the watched
    folder would otherwise start runs of their own (the file trigger), which take the
    import's slot when the stack comes back."""
    from runlog.pausing import pause_task

    with Api(api_url):
        pause_task("drop-folder-sensor")



def failed_imports(stack: Any) -> list[dict[str, Any]]:
    """The failed runs of spring-leads-import in ``cctasks log --format json``, newest first."""
    shown = stack.cli("log", "--task", "spring-leads-import", "--result", "failed",
                      "--format", "json")
    assert shown.returncode == 0, shown.stderr
    return list(json.loads(shown.stdout))



# --- cctasks up stopped, and dead, in the middle of an import -----------------------------


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_a_stopped_or_dead_stack_leaves_no_run_in_progress(tmp_path: Path) -> None:
    home = tmp_path / "home"
    url = f"sqlite:///{home / 'contact-center.db'}"
    source = list_folder(home) / "spring_leads.csv"
    stack = start_stack(home, "--no-demo")
    try:
        quiet_sensor(stack.api_url)
        seed_demo_lists(stack.api_url, url, home)
        before = list_snapshot(url, "Spring Leads")
        write_list_file(source, BIG_ROWS, tag="BIG")
        run_id = start_run(stack.api_url, SPRING)
        wait_until_loading(stack.api_url, run_id)
    except BaseException:
        kill_everything(stack)
        raise
    # Ctrl-C: the worker and the run stop first, and the run reports its end.
    children_gone, _ = stop_stack(stack)
    assert children_gone < STOP_LIMIT_SECONDS, stack.text()
    assert list_snapshot(url, "Spring Leads") == before  # nothing of the load is left

    restarted = time.monotonic()
    stack = start_stack(home, "--no-demo")
    try:
        with Api(stack.api_url) as client:
            state = client.read_flow_run(run_id).state
        assert state is not None and state.type == StateType.CRASHED, state
        [row] = failed_imports(stack)
        assert row["result"] == "failed" and row["error"].startswith("Crashed: "), row
        assert time.monotonic() - restarted < 120 + stack.started_in
        assert slots_taken(stack.api_url, SPRING) == 0
        write_list_file(source, 300, tag="NEW")
        run_to_completion(stack.api_url, SPRING)
        before = list_snapshot(url, "Spring Leads")

        # The machine dies in the middle of the next import: nothing reports anything.
        write_list_file(source, BIG_ROWS, tag="BIG")
        run_id = start_run(stack.api_url, SPRING)
        wait_until_loading(stack.api_url, run_id, freeze=True)
    except BaseException:
        kill_everything(stack)
        raise
    freeze_and_kill([psutil.Process(stack.process.pid), *stack_processes(home)])
    stack.process.wait(timeout=30)
    assert list_snapshot(url, "Spring Leads") == before

    stack = start_stack(home, "--no-demo")
    try:
        name = "Spring Leads · import"
        assert (
            f"run {name!r} was left Running: now Crashed (its process was gone when cctasks "
            "up started again)"
        ) in stack.text()
        with Api(stack.api_url) as client:
            state = client.read_flow_run(run_id).state
        assert state is not None and state.type == StateType.CRASHED
        assert state.message == (
            "Its process was gone when cctasks up started again, so the run could not "
            "report its end."
        )
        newest, _ = failed_imports(stack)
        assert newest["error"] == f"Crashed: {state.message}", newest
        assert slots_taken(stack.api_url, SPRING) == 0
        assert list_snapshot(url, "Spring Leads") == before
        write_list_file(source, 300, tag="NEXT")
        run_to_completion(stack.api_url, SPRING)
    except BaseException:
        kill_everything(stack)
        raise
    stop_stack(stack)


# --- a run, or a worker with its runs, killed while the server lives ---------------------


@pytest.fixture(scope="module")
def live_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """A server, a worker and the deployments, started by this process; heartbeats every
    30 s; the contact centre on PostgreSQL (a killed COPY, not only a killed SQLite write)."""
    admin = sa.create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect():
            pass
    except sa.exc.OperationalError:
        if os.environ.get("CI"):
            pytest.fail(f"PostgreSQL is not reachable at {PG_ADMIN_URL} under CI")
        pytest.skip(f"PostgreSQL is not reachable at {PG_ADMIN_URL}")
    database = f"cctasks_crash_{uuid.uuid4().hex[:8]}"
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{database}"'))
    url = sa.make_url(PG_ADMIN_URL).set(database=database).render_as_string(hide_password=False)
    home = tmp_path_factory.mktemp("live") / "home"
    options = StackOptions(
        home=home, project_dir=PROJECT, port=free_port(), database_url=url, demo=False,
        heartbeat_seconds=MIN_HEARTBEAT_SECONDS,
    )
    stack = Stack(options)
    try:
        stack.start_server()
        stack.bootstrap()
        stack.start_worker()
        quiet_sensor(options.api_url)
        seed_demo_lists(options.api_url, url, home)
        yield stack
    finally:
        stack.stop()
        create_db_engine(url).dispose()
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)'))
        admin.dispose()


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_b_killed_run_process_ends_crashed_and_frees_its_slot(live_stack: Stack) -> None:
    api, url = live_stack.options.api_url, live_stack.options.contact_center_url
    source = list_folder(live_stack.options.home) / "spring_leads.csv"
    before = list_snapshot(url, "Spring Leads")
    write_list_file(source, BIG_ROWS, tag="B")
    run_id = start_run(api, SPRING)
    wait_until_loading(api, run_id, freeze=True)
    run_process(run_id).kill()
    state = wait_for_end(api, run_id, timeout=60)  # the worker reports it at once
    assert state.type == StateType.CRASHED and "-9" in state.message, state
    assert slots_taken(api, SPRING) == 0
    assert list_snapshot(url, "Spring Leads") == before
    write_list_file(source, 300, tag="B2")
    run_to_completion(api, SPRING)


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_c_runs_of_a_dead_worker_end_by_the_servers_automations(live_stack: Stack) -> None:
    api, url = live_stack.options.api_url, live_stack.options.contact_center_url
    home = live_stack.options.home
    lists = ("Spring Leads", "Retention Q2")
    before = {name: list_snapshot(url, name) for name in lists}
    write_list_file(list_folder(home) / "retention_q2.csv", BIG_ROWS, retention=True, tag="C")
    write_list_file(list_folder(home) / "spring_leads.csv", 2 * BIG_ROWS, tag="C")
    retention_id = start_run(api, RETENTION)
    spring_id = start_run(api, SPRING)
    wait_until_loading(api, retention_id, freeze=True)
    wait_until_loading(api, spring_id, freeze=True)
    victims = live_stack.worker.tree()
    runs = [run_process(spring_id), run_process(retention_id)]
    assert {p.pid for p in runs} <= {p.pid for p in victims}
    # The pool's environment gave each run its heartbeat.
    assert {p.environ().get(HEARTBEAT_VARIABLE) for p in runs} == {str(MIN_HEARTBEAT_SECONDS)}
    freeze_and_kill(victims)  # the worker and both runs, as when the machine dies
    killed_at = time.monotonic()
    # An admin cancels one of them, which nothing is left to carry out.
    cancel = subprocess.run(
        [sys.executable, "-m", "prefect", "flow-run", "cancel", str(retention_id)],
        env=live_stack.env, capture_output=True, text=True, timeout=120,
    )
    assert cancel.returncode == 0, cancel.stdout + cancel.stderr

    bound = heartbeat_window(MIN_HEARTBEAT_SECONDS).total_seconds() + 60
    spring = wait_for_end(api, spring_id, timeout=killed_at + bound - time.monotonic())
    retention = wait_for_end(api, retention_id, timeout=killed_at + bound - time.monotonic())
    print(f"ended {time.monotonic() - killed_at:.0f} s after the kill")
    assert spring.type == StateType.CRASHED, spring
    assert spring.message.startswith("The run sent no heartbeat for 90 s"), spring
    assert retention.type == StateType.CANCELLED, retention
    assert retention.message.startswith("The run's process did not confirm the cancel")
    assert slots_taken(api, SPRING) == slots_taken(api, RETENTION) == 0
    assert {name: list_snapshot(url, name) for name in lists} == before

    live_stack.start_worker()  # the machine is back: the next run gets the slot
    write_list_file(list_folder(home) / "spring_leads.csv", 300, tag="C2")
    run_to_completion(api, SPRING)
