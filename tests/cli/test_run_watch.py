"""``cctasks run --watch`` for a person: counts and URL at the end, a bar on a terminal,
and a server that stops answering said within 10 s.

The first two run the real list import from the real sshd, executed by a thread that
plays the worker. The last starts a Prefect server of its own, freezes it (SIGSTOP:
it stops answering), thaws it, then kills it, while a real ``cctasks`` process
watches a run on it.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any
from uuid import UUID

import httpx
import pytest
from conftest import free_port
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import (
    FlowRunFilter,
    FlowRunFilterDeploymentId,
    TaskRunFilter,
    TaskRunFilterFlowRunId,
)
from prefect.settings import PREFECT_API_URL, temporary_settings
from support.tasklog_support import deploy, execute_next_run, run_report, unique
from typer.testing import CliRunner

import flows.calling_list_import as list_flow
from cli.main import app
from flows.calling_list_import import import_calling_list

ROWS = "account,phone1\nA1,2127365000\nA2,2127365001\n,2127365002\nA3,12345\nA1,2127365003\n"
CCTASKS = Path(sys.executable).with_name("cctasks")


def _watched_import(
    sshd: Any, sftp_block: str, env: dict[str, str], late: bool = False
) -> tuple[str, Any]:
    """A deployment of the real list import, run once through `cctasks run --watch`.

    With ``late``, the file arrives only once the first fetch has failed and waits
    for its retry.
    """
    name = unique("Watched Leads")
    path = sshd.home / "watched" / f"{name}.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    if not late:
        path.write_text(ROWS, encoding="utf-8")
    task = unique("watched-import")
    deployment_id = deploy(
        import_calling_list,
        task,
        {"list_name": name, "source": f"sftp://{sftp_block}/watched/{name}.csv"},
    )
    if late:
        threading.Thread(target=_drop_on_retry, args=(deployment_id, path), daemon=True).start()
    worker = execute_next_run(import_calling_list, deployment_id)
    result = CliRunner().invoke(
        app,
        ["run", task, "--watch", "--interval", "0.2", "--timeout", "240"],
        env={"COLUMNS": "200", **env},
    )
    worker.join(60)
    return name, result


def _drop_on_retry(deployment_id: UUID, path: Path) -> None:
    """Write the list file once the run's fetch waits for its second try."""
    deadline = time.monotonic() + 120
    with get_client(sync_client=True) as client:
        while time.monotonic() < deadline:
            runs = client.read_flow_runs(
                flow_run_filter=FlowRunFilter(
                    deployment_id=FlowRunFilterDeploymentId(any_=[deployment_id])
                )
            )
            if runs:
                task_runs = client.read_task_runs(
                    task_run_filter=TaskRunFilter(
                        flow_run_id=TaskRunFilterFlowRunId(any_=[runs[0].id])
                    )
                )
                if any(t.state and t.state.name == "AwaitingRetry" for t in task_runs):
                    path.write_text(ROWS, encoding="utf-8")
                    return
            time.sleep(0.1)


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_watch_in_a_pipe_ends_with_the_counts_and_the_url(
    sshd: Any, sftp_block: str, db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    retry_soon = list_flow.fetch_list_file.with_options(retry_delay_seconds=[3.0, 3.0])
    monkeypatch.setattr(list_flow, "fetch_list_file", retry_soon)
    name, result = _watched_import(sshd, sftp_block, {}, late=True)
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    run_id = UUID(lines[0].split()[2])
    # one line per change, as before: elapsed, state, attempt, progress (and the step)
    # (attempt 1 may fail between two polls, so the first Running line can be attempt 2)
    assert any(re.match(r"^\d\d:\d\d  Running  attempt [12]", line) for line in lines), lines
    # the fetch failed once: the watch shows the retry it waits for, then runs
    assert any(re.match(r"^\d\d:\d\d  Running  attempt 2 of 3", line) for line in lines), lines
    assert lines[-4:] == [
        "counts: 5 read, 2 loaded, 0 updated, "
        "3 rejected (duplicate_key 1, missing_key 1, no_valid_phone 1), 0 excluded",
        "attempts: 2",
        f"see the run at {lines[1].removeprefix('view it at ')}",
        f"run {name} · import completed",
    ]
    assert lines[-2].endswith(f"/runs/flow-run/{run_id}")
    assert "\x1b" not in result.stdout  # a pipe gets no escape sequences


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_watch_on_a_terminal_draws_a_bar(sshd: Any, sftp_block: str, db_url: str) -> None:
    name, result = _watched_import(sshd, sftp_block, {"TTY_COMPATIBLE": "1"})
    assert result.exit_code == 0, result.output
    assert "━" in result.stdout and "100%" in result.stdout  # rich's bar, redrawn in place
    assert f"{name} · import" in result.stdout
    assert "counts: 5 read, 2 loaded" in result.stdout
    assert result.stdout.rstrip().endswith(f"run {name} · import completed")
    assert not re.search(r"^\d\d:\d\d  Running", result.stdout, re.M)  # no per-change lines


# --- a server that stops answering ---------------------------------------------------------


class Lines:
    """The lines a process writes to one stream, each with when it arrived."""

    def __init__(self, stream: IO[str]) -> None:
        self.seen: list[tuple[float, str]] = []
        self._changed = threading.Condition()
        self._reader = threading.Thread(target=self._read, args=(stream,), daemon=True)
        self._reader.start()

    def _read(self, stream: IO[str]) -> None:
        with stream:  # closed at the end of the stream: no unclosed-file warning
            for line in stream:
                with self._changed:
                    self.seen.append((time.monotonic(), line.rstrip("\n")))
                    self._changed.notify_all()

    def finish(self, timeout: float = 10) -> None:
        """Waits for the end of the stream (after the process has exited)."""
        self._reader.join(timeout)

    def wait_for(self, pattern: str, after: float, timeout: float) -> float:
        """When a line matching ``pattern`` arrived after ``after``."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                for when, line in self.seen:
                    if when >= after and re.search(pattern, line):
                        return when
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"no line matching {pattern!r}; saw {self.seen}")
                self._changed.wait(left)

    def text(self) -> str:
        return "\n".join(line for _, line in self.seen)


@pytest.fixture
def own_server(tmp_path: Path) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """A Prefect server of this test's own (its own SQLite), in its own process group."""
    port = free_port()
    url = f"http://127.0.0.1:{port}/api"
    env = {
        **os.environ,
        "PREFECT_HOME": str(tmp_path / "prefect"),
        "PREFECT_API_DATABASE_CONNECTION_URL": f"sqlite+aiosqlite:///{tmp_path / 'prefect.db'}",
        "PREFECT_API_URL": url,
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_UI_ENABLED": "false",
    }
    with (tmp_path / "server.log").open("wb") as log:
        server = subprocess.Popen(
            [sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1"]
            + ["--port", str(port)],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert server.poll() is None, (tmp_path / "server.log").read_text()
            assert time.monotonic() < deadline, "the server did not start in 120 s"
            time.sleep(0.25)
        yield url, server
    finally:
        if server.poll() is None:
            os.killpg(server.pid, signal.SIGCONT)
            os.killpg(server.pid, signal.SIGKILL)
        server.wait(30)


def test_watch_says_within_10_s_that_the_server_stopped_answering(
    own_server: tuple[str, subprocess.Popen[bytes]],
) -> None:
    url, server = own_server
    task = unique("nobody-runs-this")
    with temporary_settings(updates={PREFECT_API_URL: url}):
        deploy(run_report, task, {"report": unique("Unwatched")})
    timeout = 30
    watcher = subprocess.Popen(
        [str(CCTASKS), "run", task, "--watch", "--interval", "0.5", "--timeout", str(timeout)],
        env={**os.environ, "PREFECT_API_URL": url, "COLUMNS": "200"},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    out, err = Lines(watcher.stdout), Lines(watcher.stderr)  # type: ignore[arg-type]
    try:
        out.wait_for(r"Scheduled  attempt 0", 0, 90)

        os.killpg(server.pid, signal.SIGSTOP)  # alive, but it stops answering
        frozen = time.monotonic()
        said = err.wait_for(r"does not answer \(ReadTimeout\)", frozen, 20)
        assert said - frozen < 10, f"said after {said - frozen:.1f} s"
        assert f"the Prefect server at {url} does not answer" in err.text()

        os.killpg(server.pid, signal.SIGCONT)
        err.wait_for(r"answers again", frozen, 30)

        os.killpg(server.pid, signal.SIGKILL)  # gone: connections are refused
        server.wait(30)
        killed = time.monotonic()
        said = err.wait_for(r"does not answer \(ConnectError\)", killed, 20)
        assert said - killed < 10, f"said after {said - killed:.1f} s"

        # it keeps trying until --timeout, then gives up with one error
        assert watcher.wait(timeout + 30) == 1
    finally:
        if watcher.poll() is None:
            watcher.kill()
            watcher.wait(30)
        out.finish()
        err.finish()
    assert re.search(rf"error: run \S+ has not ended after {timeout}(\.0)? s", err.text())
    assert "Traceback" not in err.text()
