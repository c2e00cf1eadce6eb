"""``cctasks up --scale`` end to end: two API servers behind HAProxy, two workers,
PostgreSQL and a Redis of the test's own, all real processes on free loopback ports.

One stack serves every check, because a start takes minutes on a busy machine:

- both API servers answer, directly and through HAProxy, and two workers heartbeat;
- three runs start at once: two imports of one list from two deployments, and an
  exclusion import. Both workers pick up runs; the two imports' loads never overlap
  (from the run history's task-run times) and the second completes after the first;
  the exclusion import overlaps them;
- one API server is killed with SIGKILL while the runs go: every run still completes;
- the list holds each record once; the stack stops with nothing left running.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest
import sqlalchemy as sa
from conftest import PG_ADMIN_URL, _pg_available, free_port
from support.stack_support import RunningStack, start_stack, stop_stack

from deployments.demo.files import write_demo_files

pytestmark = pytest.mark.slow

ROWS = 40_000
SAME_LIST = "Scale Same"
LIST_DEPLOYMENTS = ("spring-leads-import", "retention-q2-import")
OTHER_DEPLOYMENT = "company-dnc"
RUN_TIMEOUT = 900.0


@pytest.fixture(scope="session", autouse=True)
def prefect_server() -> Iterator[None]:
    """No test harness: this test talks to the stack it starts."""
    yield


def _missing() -> str | None:
    if shutil.which("haproxy") is None and not Path("/usr/sbin/haproxy").exists():
        return "haproxy is not installed (apt-get install haproxy; .ci/run installs it)"
    if shutil.which("redis-server") is None:
        return "redis-server is not installed (apt-get install redis-server)"
    if not _pg_available():
        return "PostgreSQL does not answer at 127.0.0.1:5432"
    return None


@pytest.fixture
def redis_url(tmp_path: Path) -> Iterator[str]:
    """A Redis of this test alone, on a free port, without persistence."""
    port = free_port()
    process = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--dir", str(tmp_path),
         "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 30
    import redis

    client = redis.Redis(port=port)
    while True:
        try:
            client.ping()
            break
        except redis.ConnectionError:
            assert time.monotonic() < deadline, "redis-server did not start"
            time.sleep(0.2)
    client.close()
    yield f"redis://127.0.0.1:{port}/0"
    process.terminate()
    process.wait(timeout=30)


@pytest.fixture
def databases() -> Iterator[tuple[str, str]]:
    """Names for Prefect's and the contact centre's databases (the stack creates them)."""
    tag = uuid.uuid4().hex[:8]
    names = (f"cctasks_scale_{tag}_prefect", f"cctasks_scale_{tag}")
    yield (f"postgresql+asyncpg://postgres@127.0.0.1:5432/{names[0]}",
           f"postgresql+psycopg://postgres@127.0.0.1:5432/{names[1]}")
    admin = sa.create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        for name in names:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def _write_list(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = ["account,phone1,first_name,last_name,zip"]
    lines += [f"S{i:07d},212{3_000_000 + i:07d},Ann,Lee,10001" for i in range(ROWS)]
    path.write_text("\n".join(lines) + "\n")


def _api_ports(home: Path) -> list[int]:
    config = (home / "haproxy.cfg").read_text()
    return [int(p) for p in re.findall(r"server api\d 127\.0\.0\.1:(\d+)", config)]


def _client(stack: RunningStack) -> Any:
    from prefect import get_client
    from prefect.settings import PREFECT_API_URL, temporary_settings

    with temporary_settings(updates={PREFECT_API_URL: stack.api_url}):
        return get_client(sync_client=True)


def _span(run: Any) -> tuple[datetime, datetime]:
    assert run.start_time is not None and run.end_time is not None, run
    return run.start_time, run.end_time


# A start alone takes minutes on a busy 2-core machine (two servers, services, deploy).
@pytest.mark.timeout(1800)
def test_scale_profile_runs_one_object_at_a_time_and_survives_an_api_server(
    tmp_path: Path, redis_url: str, databases: tuple[str, str]
) -> None:
    if why := _missing():
        pytest.skip(why)
    from prefect.client.schemas.actions import DeploymentUpdate
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    home = tmp_path / "home"
    prefect_url, centre_url = databases
    stack = start_stack(
        home, "--scale", "--no-demo", "--redis-url", redis_url,
        "--prefect-database-url", prefect_url, "--database-url", centre_url,
    )
    try:
        # Both API servers answer, directly and through HAProxy.
        ports = _api_ports(home)
        assert len(ports) == 2 and stack.port not in ports
        with httpx.Client(timeout=10) as http:
            for port in ports:
                assert http.get(f"http://127.0.0.1:{port}/api/health").status_code == 200
            assert http.get(f"{stack.api_url}/health").status_code == 200

        write_demo_files(home)
        source = home / "drop" / "lists" / "scale_same.csv"
        _write_list(source)
        with _client(stack) as client:
            workers = {w.name for w in client.read_workers_for_work_pool("cctasks")}
            assert {"cctasks-scale-1", "cctasks-scale-2"} <= workers
            deployments = {d.name: d for d in client.read_deployments()}
            for name in LIST_DEPLOYMENTS:
                client.update_deployment(
                    deployments[name].id,
                    DeploymentUpdate(parameters={
                        "list_name": SAME_LIST, "source": str(source), "update_policy": "update",
                    }),
                )
            ids = [
                client.create_flow_run_from_deployment(deployments[name].id).id
                for name in (*LIST_DEPLOYMENTS, OTHER_DEPLOYMENT)
            ]

        # Once a run is going, one API server dies; HAProxy routes around it.
        killed = False
        deadline = time.monotonic() + RUN_TIMEOUT
        with _client(stack) as client:
            while True:
                found = client.read_flow_runs(
                    flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=ids))
                )
                states = {r.id: r.state.type.value if r.state else None for r in found}
                if not killed and "RUNNING" in states.values():
                    victim = next(
                        p for p in psutil.process_iter(["cmdline"])
                        if "--no-services" in (p.info["cmdline"] or [])
                        and str(ports[0]) in (p.info["cmdline"] or [])
                    )
                    victim.kill()
                    killed = True
                if all(s in ("COMPLETED", "FAILED", "CRASHED", "CANCELLED") for s in
                       states.values()) and len(states) == len(ids):
                    break
                assert time.monotonic() < deadline, f"runs not done in time: {states}"
                time.sleep(1)
            assert killed, "no run was seen running"
            assert set(states.values()) == {"COMPLETED"}, (states, stack.text())
            by_id = {r.id: r for r in found}
            loads = {}
            for run_id in ids[:2]:
                task_runs = client.read_task_runs(
                    flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[run_id]))
                )
                load = [t for t in task_runs if t.name.startswith("load_list")]
                assert load, [t.name for t in task_runs]
                loads[run_id] = (min(_span(t)[0] for t in load), max(_span(t)[1] for t in load))

        # The two imports of one list, from two deployments, never overlapped...
        first, second = sorted(loads.values())
        assert first[1] <= second[0], f"the loads of one list overlapped: {first} {second}"
        ends = sorted(_span(by_id[i])[1] for i in ids[:2])
        assert ends[0] < ends[1]
        # ...while the exclusion import, another object, ran alongside them.
        other = _span(by_id[ids[2]])
        lists = [_span(by_id[i]) for i in ids[:2]]
        assert any(other[0] < end and start < other[1] for start, end in lists), (other, lists)
        # Both workers picked up runs.
        logs = {
            name: (home / "logs" / f"{name}.log").read_text(errors="replace")
            for name in ("cctasks-scale-1", "cctasks-scale-2")
        }
        takers = {name for name, text in logs.items() if any(str(i) in text for i in ids)}
        assert takers == set(logs), {n: [str(i) in t for i in ids] for n, t in logs.items()}
        # Each record once.
        engine = sa.create_engine(centre_url)
        with engine.connect() as conn:
            count = conn.execute(sa.text(
                "SELECT count(*) FROM list_records r JOIN calling_lists l ON l.id = r.list_id "
                "WHERE l.name = :name"), {"name": SAME_LIST}).scalar_one()
        engine.dispose()
        assert count == ROWS
        # The stack started the killed API server again and carried on.
        assert "the api server 1 exited (code -9); starting it again" in stack.text()
    finally:
        if stack.process.poll() is None:
            stop_stack(stack)
