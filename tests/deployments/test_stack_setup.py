"""The stack's parts without a running stack: prefect.yaml and the demo files, the stack's
environment, the database block's secret, stopping services, and a port already in use.

The stacks themselves start in ``test_stack.py``.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import psutil
import pytest
from support.stack_support import CCTASKS, FLOW_NAMES, PROJECT, prefect_yaml, yaml_deployments

from contact_center.exceptions import InvalidParameter
from deployments.bootstrap import database_block
from deployments.demo import CAMPAIGNS, DNC_LIST, FIRST_RUNS, LATER_RUNS, LISTS
from deployments.demo.files import write_demo_files
from deployments.processes import Service, stop_services
from deployments.stack import StackError, check_port_free
from deployments.stack_options import StackOptions, stack_environment


@pytest.fixture(scope="session", autouse=True)
def prefect_server() -> Iterator[None]:
    """No test harness: nothing here talks to a server."""
    yield


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
