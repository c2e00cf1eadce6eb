"""Running ``cctasks up`` in a subprocess on a free port, and stopping it, for the tests
that need a whole stack (``tests/deployments``, ``tests/flows/test_crash.py``, the UI tests).

Also prefect.yaml as Prefect reads it, which the stack tests and the UI tests check the
stack's deployments against.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
import yaml

from deployments.stack import check_port_free
from support.processes import stack_processes
from support.sshd_server import free_port

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


def prefect_yaml() -> dict[str, Any]:
    """prefect.yaml as Prefect reads it (merge keys and anchors resolved)."""
    return dict(yaml.safe_load((PROJECT / "prefect.yaml").read_text()))


def yaml_deployments() -> dict[str, dict[str, Any]]:
    """``flow/deployment`` -> its entry in prefect.yaml."""
    return {
        f"{(FLOW_NAMES | EVENT_FLOW_NAMES)[d['entrypoint']]}/{d['name']}": d
        for d in prefect_yaml()["deployments"]
    }


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

