"""The embedded stack end to end: ``cctasks up`` in a subprocess, on free ports.

The slow tests start real stacks (Prefect server, worker, deploy, demo seeding), so
they share work: the first starts a stack on SQLite and runs a deployment ad hoc, the
second restarts that same state folder and finds nothing duplicated, the third runs
the whole stack on PostgreSQL (both the contact-centre and Prefect's own database).
They need no Prefect test harness, so this module replaces the session fixture.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import psutil
import pytest
import sqlalchemy as sa
import yaml
from conftest import PG_ADMIN_URL, free_port

from contact_center.exceptions import InvalidParameter
from contact_center.storage.db import create_db_engine
from deployments.bootstrap import database_block
from deployments.demo import CAMPAIGNS, DNC_LIST, FIRST_RUNS, LATER_RUNS, LISTS
from deployments.demo.files import write_demo_files
from deployments.processes import Service, stop_services
from deployments.stack import StackError, check_port_free
from deployments.stack_options import StackOptions, stack_environment

PROJECT = Path(__file__).resolve().parents[2]
CCTASKS = str(Path(sys.executable).parent / "cctasks")
START_TIMEOUT = 600.0  # a fresh start takes ~40 s; a loaded 2-core machine several times that
STOP_LIMIT_SECONDS = 10.0
FLOW_NAMES = {
    "flows/calling_list_import.py:import_calling_list": "import-calling-list",
    "flows/exclusion_import.py:import_exclusions": "import-exclusions",
    "flows/campaign_trigger.py:campaign_trigger": "campaign-trigger",
    "flows/results_export.py:export_campaign_results": "export-campaign-results",
    "flows/report_execution.py:run_report": "run-report",
}
#: The deployments that react to events (docs/events.md), not tasks of the task log.
EVENT_FLOW_NAMES = {
    "flows/file_sensor.py:watch_drop_folders": "watch-drop-folders",
    "flows/failure_alert.py:send_failure_alert": "send-failure-alert",
}
DEMO_TABLES = (
    "campaigns", "calling_lists", "campaign_lists", "campaign_exclusion_lists", "list_records",
    "list_imports", "exclusion_lists", "exclusions", "call_attempts",
)


@pytest.fixture(scope="session", autouse=True)
def prefect_server() -> Iterator[None]:
    """No test harness: these tests talk to the stacks they start."""
    yield


def prefect_yaml() -> dict[str, Any]:
    """prefect.yaml as Prefect reads it (merge keys and anchors resolved)."""
    return dict(yaml.safe_load((PROJECT / "prefect.yaml").read_text()))


def yaml_deployments() -> dict[str, dict[str, Any]]:
    """``flow/deployment`` -> its entry in prefect.yaml."""
    return {
        f"{(FLOW_NAMES | EVENT_FLOW_NAMES)[d['entrypoint']]}/{d['name']}": d
        for d in prefect_yaml()["deployments"]
    }


# --- prefect.yaml and the demo, without a server -----------------------------------------


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)


def test_prefect_yaml_deploys_the_demo_contact_centre() -> None:
    config = prefect_yaml()
    deployments = yaml_deployments()
    assert set(FLOW_NAMES.values()) <= {name.split("/")[0] for name in deployments}
    pull = [{"prefect.deployments.steps.set_working_directory": {
        "directory": "{{ $CCTASKS_PROJECT_DIR }}"}}]
    assert config["pull"] == pull
    assert {"work_pools", "pull_steps", "concurrency", "tags"} <= set(config["definitions"])
    list_names = {demo.name for demo in LISTS}
    campaigns = {campaign.name for campaign in CAMPAIGNS}
    for name, deployment in deployments.items():
        assert deployment["description"] and deployment["tags"], name
        assert deployment["work_pool"]["name"] == "cctasks" and deployment["pull"] == pull
        # The sensor drops a look that finds the previous one still going.
        strategy = "CANCEL_NEW" if name.startswith("watch-drop-folders/") else "ENQUEUE"
        assert deployment["concurrency_limit"] == {"limit": 1, "collision_strategy": strategy}
        for schedule in deployment.get("schedules", []):
            assert schedule["slug"], name
            if "interval" in schedule:
                continue
            ZoneInfo(schedule["timezone"])  # an IANA zone
            assert len(schedule["cron"].split()) == 5, name
        strings = list(_strings(deployment))
        # No machine's path is committed: local paths hang off the deploy-time home.
        assert not [s for s in strings if s.startswith("/") or "/work/" in s], name
        assert all(s.startswith("{{ $CCTASKS_HOME }}/") for s in strings if "drop/" in s), name
        params = deployment.get("parameters", {})
        objects = {
            "list_name": list_names, "campaign": campaigns, "exclusion_list": {DNC_LIST},
        }
        for key, allowed in objects.items():
            if key in params:
                assert params[key] in allowed, name
        assert not {"password", "token", "secret"} & {k.lower() for k in params}, name
    for name in ("campaign-trigger/spring-sales-hours", "campaign-trigger/retention-west-hours"):
        schedules = deployments[name]["schedules"]
        assert [(s["slug"], s["parameters"]) for s in schedules] == [
            ("start", {"step": "start"}), ("stop", {"step": "stop"})
        ]
    resets = deployments["import-exclusions/company-dnc"]["schedules"]
    assert {s["slug"]: s["parameters"]["step"] for s in resets} == {
        "reset": "reset", "import": "import"
    }
    demo_runs = [run.deployment for stage in FIRST_RUNS for run in stage]
    assert set(demo_runs + [run.deployment for run in LATER_RUNS]) <= set(deployments)


def test_demo_files_are_written_once(tmp_path: Path) -> None:
    written = write_demo_files(tmp_path)
    assert sorted(p.relative_to(tmp_path).as_posix() for p in written) == [
        "drop/dnc/company_dnc.csv", "drop/lists/retention_q2.csv", "drop/lists/spring_leads.csv",
    ]
    spring = (tmp_path / "drop/lists/spring_leads.csv").read_text(encoding="utf-8").splitlines()
    assert spring[0].startswith("Account,Phone,Mobile") and len(spring) == 1 + LISTS[0].rows
    retention = (tmp_path / "drop/lists/retention_q2.csv").read_text(encoding="utf-8")
    assert retention.splitlines()[0].startswith("account;phone1;phone2")
    before = {p: p.read_bytes() for p in written}
    (tmp_path / "drop/lists/spring_leads.csv").write_text("edited by the user\n")
    assert write_demo_files(tmp_path) == []
    assert (tmp_path / "drop/lists/spring_leads.csv").read_text() == "edited by the user\n"
    other = tmp_path / "again"
    write_demo_files(other)
    assert {p.name: content for p, content in before.items()} == {
        p.name: p.read_bytes() for p in (other / "drop").rglob("*.csv")
    }  # the same content on every machine


def test_stack_environment_follows_the_port(tmp_path: Path) -> None:
    options = StackOptions(port=4321, home=tmp_path, project_dir=PROJECT)
    base = {"PREFECT_API_URL": "http://elsewhere:4200/api", "PREFECT_PROFILE": "prod",
            "PATH": "/usr/bin", "DO_NOT_TRACK": "0"}
    env = stack_environment(options, base)
    assert env["PREFECT_API_URL"] == env["PREFECT_UI_API_URL"] == "http://127.0.0.1:4321/api"
    assert env["PREFECT_SERVER_API_PORT"] == "4321"
    assert env["PREFECT_SERVER_API_HOST"] == "127.0.0.1"
    assert env["PREFECT_SERVER_ANALYTICS_ENABLED"] == "false" and env["DO_NOT_TRACK"] == "1"
    assert env["PREFECT_HOME"] == str(tmp_path / "prefect") and env["PATH"] == "/usr/bin"
    assert env["PREFECT_WORKER_QUERY_SECONDS"] == "2" and "PREFECT_PROFILE" not in env
    assert env["CCTASKS_PROJECT_DIR"] == str(PROJECT)
    wildcard = StackOptions(host="0.0.0.0", port=4321, home=tmp_path, project_dir=PROJECT)
    assert wildcard.ui_url == "http://127.0.0.1:4321"


def test_database_url_password_goes_into_the_secret_field(tmp_path: Path) -> None:
    block = database_block("postgresql+psycopg://cctasks:s3cret@db.example.com:5432/cc")
    assert block.url == "postgresql+psycopg://cctasks@db.example.com:5432/cc"
    assert block.password is not None and block.password.get_secret_value() == "s3cret"
    assert "s3cret" not in repr(block) and "s3cret" not in block.display_url
    with pytest.raises(InvalidParameter, match="asyncpg") as refused:
        StackOptions.create(prefect_database_url="postgresql://prefect:s3cret@db/prefect")
    assert "s3cret" not in str(refused.value)
    with pytest.raises(InvalidParameter, match="not a TCP port"):
        StackOptions.create(port=70000)


def test_stop_services_leaves_no_orphan(tmp_path: Path) -> None:
    """A worker-like process that ignores the first SIGTERM and runs a child in a
    session of its own (as Prefect's worker runs flows) is stopped with its child."""
    script = tmp_path / "stubborn.py"
    script.write_text(
        "import signal, subprocess, sys, time\n"
        "seen = []\n"
        "def term(*args):\n"
        "    seen.append(1)\n"
        "    if len(seen) > 1: sys.exit(0)\n"
        "signal.signal(signal.SIGTERM, term)\n"
        "child = subprocess.Popen([sys.executable, '-c', "
        "'import os, signal, sys, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
        "open(sys.argv[1], \"w\").write(str(os.getpid())); time.sleep(600)', sys.argv[1]],"
        " start_new_session=True)\n"
        "while True: time.sleep(0.1)\n"
    )
    pid_file = tmp_path / "child.pid"
    service = Service(
        name="worker", command=[sys.executable, str(script), str(pid_file)], env=dict(os.environ),
        log_path=tmp_path / "worker.log", cwd=tmp_path, signals_to_stop=2,
    )
    service.start()
    deadline = time.monotonic() + 30
    while not pid_file.exists() or not pid_file.read_text():
        assert time.monotonic() < deadline, service.log_tail()
        time.sleep(0.1)
    child = psutil.Process(int(pid_file.read_text()))
    began = time.monotonic()
    killed = stop_services([service], grace_seconds=3.0, resignal_after=0.5)
    assert time.monotonic() - began < 6
    assert service.exited() == 0  # the second SIGTERM made it exit on its own
    assert killed == ["worker"]  # ... but its child ignored SIGTERM and had to be killed
    assert not child.is_running() or child.status() == psutil.STATUS_ZOMBIE


def test_port_in_use_is_a_clear_error(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with pytest.raises(StackError, match=rf"port {port} on 127.0.0.1 is already in use"):
            check_port_free("127.0.0.1", port)
        env = {**os.environ, "CCTASKS_HOME": str(tmp_path / "home")}
        done = subprocess.run(
            [CCTASKS, "up", "--port", str(port)], env=env, capture_output=True, text=True,
            timeout=120, cwd=PROJECT,
        )
    output = done.stdout + done.stderr
    assert done.returncode == 2, output
    assert f"port {port} on 127.0.0.1 is already in use" in output and "--port" in output
    assert "Traceback" not in output
    assert not (tmp_path / "home" / "prefect" / "prefect.db").exists()  # nothing started


# --- real stacks ------------------------------------------------------------------------


@dataclass
class RunningStack:
    """A ``cctasks up`` subprocess and what the test knows about it."""

    home: Path
    port: int
    process: subprocess.Popen[bytes]
    output: Path
    env: dict[str, str]
    started_in: float = 0.0
    pids: set[int] = field(default_factory=set)

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/api"

    def text(self) -> str:
        return self.output.read_text(errors="replace")

    def cli(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        """Run ``cctasks ARGS`` the way a user does after ``. .cctasks/env``."""
        return subprocess.run(
            [CCTASKS, *args], env=self.env, capture_output=True, text=True, timeout=timeout,
            cwd=PROJECT,
        )


def _user_env(home: Path, port: int) -> dict[str, str]:
    """What ``. <home>/env`` sets, on top of this environment."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "CCTASKS_"))}
    for line in (home / "env").read_text().splitlines():
        if line.startswith("export ") and "PATH=" not in line:
            for assignment in line.removeprefix("export ").split():
                key, _, value = assignment.partition("=")
                env[key] = value.strip("'\"")
    assert env["PREFECT_API_URL"] == f"http://127.0.0.1:{port}/api"
    return env


def start_stack(home: Path, *args: str, extra_env: dict[str, str] | None = None) -> RunningStack:
    """``cctasks up`` on a free port; returns once it printed that it is up."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "CCTASKS_"))}
    env.update(CCTASKS_HOME=str(home), PREFECT_SERVER_ANALYTICS_ENABLED="false", DO_NOT_TRACK="1")
    # The session's cache: each stack's fresh home would build the ZIP-zone table again.
    env.update({k: v for k, v in os.environ.items() if k == "CCTASKS_CACHE_DIR"})
    env.update(extra_env or {})
    home.mkdir(parents=True, exist_ok=True)
    output = home.parent / f"up-{uuid.uuid4().hex[:6]}.txt"
    began = time.monotonic()
    with output.open("wb") as sink:
        process = subprocess.Popen(
            [CCTASKS, "up", "--port", str(port), *args], env=env, cwd=PROJECT,
            stdout=sink, stderr=subprocess.STDOUT,
        )
    stack = RunningStack(home, port, process, output, env)
    try:
        while "cctasks is up" not in stack.text():
            assert process.poll() is None, f"cctasks up exited early:\n{stack.text()}"
            assert time.monotonic() - began < START_TIMEOUT, f"not up in time:\n{stack.text()}"
            time.sleep(0.5)
    except BaseException:
        kill_everything(stack)
        raise
    stack.started_in = time.monotonic() - began
    stack.env = _user_env(home, port)
    stack.pids = {p.pid for p in stack_processes(home)}
    return stack


def stack_processes(home: Path) -> list[psutil.Process]:
    """Every process started for the stack of ``home`` (server, worker, flow runs)."""
    found = []
    for proc in psutil.process_iter():
        try:
            if proc.environ().get("CCTASKS_HOME") == str(home):
                found.append(proc)
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
    return found


def kill_everything(stack: RunningStack) -> None:
    """Last resort for a failed test: leave nothing behind for the next one."""
    for proc in [*stack_processes(stack.home), psutil.Process(stack.process.pid)]:
        try:
            proc.kill()
        except psutil.NoSuchProcess:
            continue
    stack.process.wait(timeout=30)


def stop_stack(stack: RunningStack) -> tuple[float, float]:
    """SIGTERM, as `kill` or a service manager sends it.

    Returns:
        The seconds until every process of the stack (server, worker, flow runs) was
        gone, and until ``cctasks up`` itself had exited.
    """
    began = time.monotonic()
    stack.process.send_signal(signal.SIGTERM)
    children_gone = exited = None
    while children_gone is None or exited is None:
        elapsed = time.monotonic() - began
        if elapsed > 60:
            kill_everything(stack)
            raise AssertionError(f"the stack did not stop within 60 s:\n{stack.text()}")
        if children_gone is None and not [
            p for p in stack_processes(stack.home) if p.pid != stack.process.pid
        ]:
            children_gone = elapsed
        if exited is None and stack.process.poll() is not None:
            exited = elapsed
        time.sleep(0.05)
    assert stack.process.returncode == 0, stack.text()
    assert stack_processes(stack.home) == [], "processes left behind"
    assert not [pid for pid in stack.pids if psutil.pid_exists(pid)
                and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE]
    check_port_free("127.0.0.1", stack.port)  # the port is free again
    assert "Stopped the server and the worker" in stack.text()
    return children_gone, exited


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
        assert state["seeded_count"] == sum(len(s) for s in FIRST_RUNS) + len(LATER_RUNS)
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
        assert "(kept)" in stack.text() and "ran before, not run again" in stack.text()
        check_deployments(stack, state)
        assert len(state["deployment_names"]) == len(set(state["deployment_names"]))
        assert sorted(state["deployments"]) == sorted(yaml_deployments())
        assert state["blocks"].count("contact-center") == 1 and state["pools"] == ["cctasks"]
        assert state["seeded_count"] == sum(len(s) for s in FIRST_RUNS) + len(LATER_RUNS)
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
