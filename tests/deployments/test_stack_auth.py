"""``cctasks up`` with Prefect's API basic auth on (``CCTASKS_API_AUTH_FILE``), for real.

One stack on SQLite, started like a user does: the API refuses a call without the
credentials and serves one with them, the health check (HAProxy's, with ``--scale``)
needs none, a run asked for through the CLI is picked up by the worker and completes,
and the secret is in none of the stack's logs or files but the one it was read from.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import httpx
import pytest
from support.stack_support import kill_everything, start_stack, stop_stack


@pytest.fixture(scope="session", autouse=True)
def prefect_server() -> Iterator[None]:
    """No test harness: the test talks to the stack it starts."""
    yield


@pytest.mark.slow
@pytest.mark.timeout(1200)
def test_up_with_basic_auth_refuses_strangers_and_runs_flows(tmp_path: Path) -> None:
    secret = f"ops:{secrets.token_urlsafe(16)}"
    auth_file = tmp_path / "api-auth"
    auth_file.write_text(secret + "\n")
    auth_file.chmod(0o600)
    home = tmp_path / "home"
    stack = start_stack(home, extra_env={"CCTASKS_API_AUTH_FILE": str(auth_file)})
    try:
        filter_url = f"{stack.api_url}/flow_runs/filter"
        with httpx.Client(timeout=30) as anonymous:
            assert anonymous.post(filter_url, json={}).status_code == 401
            assert anonymous.get(filter_url).status_code == 401
            wrong = anonymous.post(filter_url, json={}, auth=("ops", "wrong"))
            assert wrong.status_code == 401
            assert anonymous.get(f"{stack.api_url}/health").status_code == 200
        user, _, password = secret.partition(":")
        with httpx.Client(timeout=30, auth=(user, password)) as known:
            listed = known.post(filter_url, json={"limit": 200})
            assert listed.status_code == 200, listed.text
            # The demo's runs went through the worker, which had to authenticate too.
            assert {r["state_type"] for r in listed.json()} >= {"COMPLETED"}

        # The user's shell after `. .cctasks/env`: the CLI sends the credentials.
        assert stack.env["CCTASKS_API_AUTH_FILE"] == str(auth_file)
        ran = stack.cli("run", "spring-sales-hours", "--param", "step=stop", "--watch")
        assert ran.returncode == 0, ran.stdout + ran.stderr
        with httpx.Client(timeout=30, auth=(user, password)) as known:
            runs = known.post(filter_url, json={"limit": 200}).json()
        # The schedule's next runs have the same parameters: the newest one started is ours.
        adhoc = sorted(
            (r for r in runs if r["parameters"].get("step") == "stop"
             and r["parameters"].get("campaign") == "Spring Sales"
             and r["state_type"] != "SCHEDULED"),
            key=lambda r: r["created"], reverse=True,
        )
        assert adhoc and adhoc[0]["state_type"] == "COMPLETED", adhoc[:1]
        assert adhoc[0]["infrastructure_pid"]  # a worker's child process ran it
        # Without the credentials the same shell is refused.
        stranger = dict(stack.env)
        del stranger["CCTASKS_API_AUTH_FILE"]
        refused = replace(stack, env=stranger).cli("log")
        assert refused.returncode != 0
    except BaseException:
        kill_everything(stack)
        raise
    stop_stack(stack)
    leaked = [
        str(path) for path in [*home.rglob("*"), stack.output]
        if path.is_file() and secret.encode() in path.read_bytes()
    ]
    assert leaked == [], f"the secret is written in {leaked}"
