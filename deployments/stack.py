"""The embedded all-in-one stack behind ``make up`` / ``cctasks up``.

One command, on one machine:

1. checks that the port is free and that no other ``cctasks up`` uses this state folder;
2. starts a Prefect server (state under ``<CCTASKS_HOME>/prefect``, SQLite unless
   ``--prefect-database-url``; concurrency leases on disk) and waits for ``/api/health``;
   ends the runs that the previous stack left in progress (:mod:`deployments.leftovers`);
3. bootstraps it (:mod:`deployments.bootstrap`): block types, default blocks, the
   process work pool (whose runs send heartbeats), concurrency limits, the automations
   that end silent runs (:mod:`deployments.automations`), ``prefect deploy --all``;
4. starts a process worker that polls every 2 s, so ad-hoc runs start within seconds;
5. seeds the demo contact centre (:mod:`deployments.demo`) unless ``--no-demo``;
6. prints the UI address and three things to try, and waits.

Ctrl-C or SIGTERM stops everything within about 10 s, in order: first the worker with
its flow runs, which report their end to the server that still runs; then the runs
that could not are ended (Crashed); then the server. The server and the worker run in
sessions of their own and are stopped as process trees (the worker ignores the first
SIGTERM, so it gets a second one, and whatever is left is killed), see
:mod:`deployments.processes`. Every child gets ``PREFECT_SERVER_ANALYTICS_ENABLED=false``
and ``DO_NOT_TRACK=1``, and the API and UI URLs follow ``--host``/``--port``
(:mod:`deployments.stack_options`).
"""

from __future__ import annotations

import fcntl
import os
import shlex
import signal
import socket
import sys
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import IO, TYPE_CHECKING, Any

import httpx
from rich.console import Console

from contact_center.exceptions import CCTasksError
from contact_center.parsing.record_zones import warm_zone_tables
from contact_center.settings import WORK_POOL_NAME, cache_dir
from contact_center.storage.db import safe_url
from deployments.processes import Service, stop_children, stop_services
from deployments.stack_options import WORKER_NAME, StackOptions, stack_environment

if TYPE_CHECKING:
    from deployments.demo import RunReport

__all__ = [
    "Stack",
    "StackError",
    "check_port_free",
    "run_stack",
]

SERVER_START_TIMEOUT = 240.0  # a fresh SQLite start takes ~17 s, PostgreSQL or a busy machine more
WORKER_START_TIMEOUT = 120.0
STOP_GRACE_SECONDS = 7.0
RUNS_STOP_GRACE_SECONDS = 4.0
SERVER_STOP_GRACE_SECONDS = 3.0


class StackError(CCTasksError):
    """The embedded stack cannot start or stopped unexpectedly; the message says why."""


class _Interrupted(BaseException):
    """Ctrl-C or SIGTERM arrived: unwind to the clean shutdown."""


def check_port_free(host: str, port: int) -> None:
    """Fail clearly when ``host:port`` cannot be listened on.

    Raises:
        StackError: the port is in use (or the address is not one of this machine's).
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        # As the server itself does: a port in TIME_WAIT after a restart is free.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            raise StackError(
                f"port {port} on {host} is already in use ({exc.strerror}): another "
                "`cctasks up` or Prefect server may be running; stop it, or choose "
                "another port with `cctasks up --port PORT`"
            ) from None


@contextmanager
def _state_lock(home: Path) -> Iterator[None]:
    """Hold ``<home>/up.lock`` so that two stacks never share one state folder."""
    home.mkdir(parents=True, exist_ok=True)
    path = home / "up.lock"
    handle: IO[str] = path.open("a+")
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "?"
            raise StackError(
                f"another `cctasks up` (pid {holder}) is using {home}; stop it first"
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(str(os.getpid()))
        handle.flush()
        yield
    finally:
        handle.close()


class Stack:
    """The server, the worker and the bootstrap of one ``cctasks up``."""

    def __init__(self, options: StackOptions, console: Console | None = None) -> None:
        self.options = options
        self.console = console or Console(highlight=False, soft_wrap=True)
        self.env = stack_environment(options)
        python = sys.executable
        self.server = Service(
            name="server",
            command=[python, "-m", "prefect", "server", "start",
                     "--host", options.host, "--port", str(options.port), "--analytics-off"],
            env=self.env,
            log_path=options.logs / "server.log",
            cwd=options.home,
        )
        self.worker = Service(
            name="worker",
            command=[python, "-m", "prefect", "worker", "start", "--pool", WORK_POOL_NAME,
                     "--type", "process", "--name", WORKER_NAME],
            env=self.env,
            log_path=options.logs / "worker.log",
            cwd=options.project_dir,
            signals_to_stop=2,
        )
        self.started_at = time.monotonic()

    # -- helpers -----------------------------------------------------------------------

    def say(self, message: str) -> None:
        """Print a line of progress."""
        self.console.print(message)

    @contextmanager
    def prefect_settings(self) -> Iterator[None]:
        """Point this process's Prefect client at the stack's server."""
        from prefect.settings import (
            PREFECT_API_AUTH_STRING,
            PREFECT_API_URL,
            PREFECT_HOME,
            PREFECT_SERVER_ANALYTICS_ENABLED,
            temporary_settings,
        )

        updates: dict[Any, Any] = {
            PREFECT_API_URL: self.options.api_url,
            PREFECT_HOME: self.options.prefect_home,
            PREFECT_SERVER_ANALYTICS_ENABLED: False,
        }
        if self.options.api_auth is not None:
            updates[PREFECT_API_AUTH_STRING] = self.options.api_auth.get_secret_value()
        with temporary_settings(updates=updates):
            yield

    def _check_alive(self, service: Service) -> None:
        code = service.exited()
        if code is not None:
            raise StackError(
                f"the Prefect {service.name} exited (code {code}) during start-up; "
                f"last lines of {service.log_path}:\n{service.log_tail()}"
            )

    # -- start -------------------------------------------------------------------------

    def start_server(self) -> None:
        """Start the Prefect server and wait until ``/api/health`` answers."""
        check_port_free(self.options.host, self.options.port)
        self.options.prefect_home.mkdir(parents=True, exist_ok=True)
        self.say(f"Starting the Prefect server on {self.options.ui_url} ...")
        began = time.monotonic()
        self.server.start()
        deadline = began + SERVER_START_TIMEOUT
        with httpx.Client(timeout=2.0) as http:
            while True:
                self._check_alive(self.server)
                try:
                    if http.get(f"{self.options.api_url}/health").status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if time.monotonic() > deadline:
                    raise StackError(
                        f"the Prefect server did not answer {self.options.api_url}/health "
                        f"within {SERVER_START_TIMEOUT:.0f} s; see {self.server.log_path}"
                    )
                time.sleep(0.25)
        self.say(f"  server healthy after {time.monotonic() - began:.1f} s")

    def bootstrap(self) -> None:
        """Block types, default blocks, work pool, limits, then ``prefect deploy --all``."""
        from deployments import bootstrap
        from deployments.alerts import alerts_file, ensure_alerts
        from deployments.automations import ensure_automations
        from runlog.pausing import pause_again, paused_tasks

        began = time.monotonic()
        heartbeat = self.options.heartbeat_seconds
        # The ZIP -> zone table takes seconds to build; it is built beside the deploy, once
        # per `zipcodes` version, so that no import pays for it.
        builder = ThreadPoolExecutor(1, thread_name_prefix="zone-tables")
        zones = builder.submit(warm_zone_tables, cache_dir(self.options.home, self.env))
        builder.shutdown(wait=False)
        with self.prefect_settings():
            bootstrap.register_block_types()
            blocks = bootstrap.ensure_default_blocks(
                self.options.contact_center_url,
                database_explicit=self.options.database_url is not None,
            )
            pool = bootstrap.ensure_work_pool(heartbeat_seconds=heartbeat)
            bootstrap.retire_concurrency_limits()
            held = paused_tasks()  # `prefect deploy` resumes them; `cctasks pause` must last
            automations = ensure_automations(heartbeat)
        self.say(
            "  blocks: "
            + ", ".join(f"{name} ({action})" for name, action in blocks.actions.items())
            + f"; work pool {WORK_POOL_NAME} ({pool}, heartbeats every {heartbeat} s)"
            + "".join(f"\n  automation {name!r} ({done})" for name, done in automations.items())
        )
        bootstrap.deploy_all(self.options.project_dir, self.env, self.options.logs / "deploy.log")
        with self.prefect_settings():
            pause_again(held)
            names = self.deployment_names()
            alerts = ensure_alerts(alerts_file(self.options.project_dir))
        for name, done in alerts.items():
            self.say(f"  automation {name!r} ({done})")
        try:
            self.say(f"  time-zone tables ({zones.result()})")
        except OSError as exc:  # only a cache: each import builds what it lacks
            self.say(f"  time-zone tables not saved: {exc}")
        self.say(f"  deployed {len(names)} deployments from prefect.yaml "
                 f"in {time.monotonic() - began:.1f} s")

    def deployment_names(self) -> list[str]:
        """``flow/deployment`` names of the deployments in the work pool."""
        from prefect import get_client
        from prefect.client.schemas.filters import WorkPoolFilter, WorkPoolFilterName

        with get_client(sync_client=True) as client:
            deployments = client.read_deployments(
                work_pool_filter=WorkPoolFilter(name=WorkPoolFilterName(any_=[WORK_POOL_NAME]))
            )
            flows = {f.id: f.name for f in client.read_flows()}
        return sorted(f"{flows.get(d.flow_id, '?')}/{d.name}" for d in deployments)

    def start_worker(self) -> None:
        """Start the worker and wait for its first heartbeat."""
        from prefect import get_client

        began = time.monotonic()
        since = datetime.now(UTC)
        self.worker.start()
        deadline = began + WORKER_START_TIMEOUT
        with self.prefect_settings(), get_client(sync_client=True) as client:
            while True:
                self._check_alive(self.worker)
                workers = client.read_workers_for_work_pool(WORK_POOL_NAME)
                beat = next(
                    (w.last_heartbeat_time for w in workers
                     if w.name == WORKER_NAME and w.last_heartbeat_time is not None),
                    None,
                )
                if beat is not None and beat >= since:
                    break
                if time.monotonic() > deadline:
                    raise StackError(
                        f"the worker sent no heartbeat within {WORKER_START_TIMEOUT:.0f} s; "
                        f"see {self.worker.log_path}"
                    )
                time.sleep(0.5)
        self.say(f"  worker {WORKER_NAME} polling pool {WORK_POOL_NAME} "
                 f"(started in {time.monotonic() - began:.1f} s)")

    def seed_demo(self) -> None:
        """Seed the demo contact centre (idempotent; see :mod:`deployments.demo.seed`)."""
        from deployments import demo
        from flows.common.database import contact_center_engine

        self.say("Seeding the demo contact centre ...")
        with self.prefect_settings():
            engine = contact_center_engine()
            written = demo.write_demo_files(self.options.home)
            if written:
                self.say(f"  wrote {len(written)} demo files under {self.options.home / 'drop'}")
            demo.seed_campaigns(engine)
            for stage in demo.FIRST_RUNS:
                reports = demo.run_once(stage, on_done=self._report_run)
                if not all(r.ok for r in reports):
                    raise StackError("a demo import did not complete; see `cctasks log`")
            added = demo.seed_results(engine)
            if any(added.values()):
                self.say("  results: " + ", ".join(f"{n} +{c}" for n, c in added.items()))
            demo.run_once(demo.LATER_RUNS, on_done=self._report_run)

    def _report_run(self, report: RunReport) -> None:
        if report.state == "done before":
            self.say(f"  {report.deployment}: ran before, not run again")
        elif report.ok:
            self.say(f"  [green]✓[/] {report.deployment}: completed in {report.seconds:.1f} s")
        else:
            self.say(f"  [red]✗[/] {report.deployment}: {report.state} {report.message}")

    def write_env_file(self) -> Path:
        """Write ``<home>/env``: ``. .cctasks/env`` points a shell at this stack."""
        path = self.options.home / "env"
        venv_bin = str(Path(sys.executable).parent)
        lines = [
            "# Written by `cctasks up`; `. .cctasks/env` points cctasks and prefect at it.",
            f"export PREFECT_API_URL={shlex.quote(self.options.api_url)}",
            f"export PREFECT_HOME={shlex.quote(str(self.options.prefect_home))}",
            f"export CCTASKS_HOME={shlex.quote(str(self.options.home))}",
            "export PREFECT_SERVER_ANALYTICS_ENABLED=false DO_NOT_TRACK=1",
            f'export PATH={shlex.quote(venv_bin)}:"$PATH"',
        ]
        # The secret itself never goes into this file: only where cctasks reads it from.
        auth_file = self.options.api_auth_file
        if auth_file is not None:
            lines.append(f"export CCTASKS_API_AUTH_FILE={shlex.quote(str(auth_file))}")
        elif self.options.api_auth is not None:
            lines.append("# The API asks for basic auth: export CCTASKS_API_AUTH here too.")
        lines.append("")
        path.write_text("\n".join(lines))
        return path

    def start(self) -> None:
        """Bring the whole stack up (see the module docstring)."""
        self.start_server()
        self.end_leftover_runs("its process was gone when cctasks up started again")
        self.bootstrap()
        self.start_worker()
        env_file = self.write_env_file()
        if self.options.demo:
            try:
                self.seed_demo()
            except CCTasksError as exc:
                # The stack still works without a complete demo; say so plainly.
                self.say(f"[yellow]demo seeding stopped:[/] {exc}")
        self.banner(env_file)

    def banner(self, env_file: Path) -> None:
        """The UI address and three things to try."""
        o = self.options
        try:
            shown_env = env_file.relative_to(Path.cwd())
        except ValueError:
            shown_env = env_file
        self.say("")
        self.say(f"[bold green]cctasks is up[/] in {time.monotonic() - self.started_at:.0f} s.")
        self.say(f"  Prefect UI      [bold]{o.ui_url}[/]   "
                 f"(deployments: {o.ui_url}/deployments, runs: {o.ui_url}/runs)")
        self.say(f"  Prefect API     {o.api_url}")
        self.say(f"  contact centre  {safe_url(o.contact_center_url)}")
        self.say(f"  state and logs  {o.home}")
        self.say("")
        self.say(f"Try, in another terminal in this folder, after [bold]. {shown_env}[/]:")
        for command, what in (
            ("cctasks scheduled", "what runs next, and when"),
            ("cctasks run spring-leads-import --watch", "import a calling list now"),
            ("cctasks log", "what ran: sizes, results, errors"),
        ):
            self.say(f"  {command:<43} {what}")
        self.say("")
        self.say("Ctrl-C stops everything.")

    # -- run and stop ------------------------------------------------------------------

    def wait(self, poll_seconds: float = 0.5) -> int:
        """Wait until a signal arrives (see :func:`run_stack`) or a service dies.

        Returns:
            1 when the server or the worker ended on its own.
        """
        while True:
            for service in (self.server, self.worker):
                code = service.exited()
                if code is not None:
                    self.console.print(
                        f"[red]error:[/] the Prefect {service.name} exited (code {code}); "
                        f"last lines of {service.log_path}:\n{service.log_tail()}",
                        highlight=False,
                    )
                    return 1
            time.sleep(poll_seconds)

    def end_leftover_runs(self, why: str, *, stopping: bool = False) -> None:
        """End the runs of this stack's worker in progress with no process (see
        :mod:`deployments.leftovers`); ``why`` goes into their state messages."""
        from deployments.leftovers import end_and_report

        with self.prefect_settings():
            end_and_report(WORKER_NAME, WORK_POOL_NAME, why, self.say, stopping=stopping)

    def stop(self) -> float:
        """Stop the worker and its runs, end what they left in progress, then the server.

        The server stops last, so that each run can still report its own end.

        Returns:
            The seconds it took.
        """
        began = time.monotonic()
        if "prefect.events.worker" in sys.modules:
            from prefect.events.worker import EventsWorker

            # Send this process's pending events (block saves, ...) while the server
            # still listens: at exit, Prefect would retry them for seconds on a closed port.
            EventsWorker.drain_all(timeout=3)
        stop_children(self.worker, grace_seconds=RUNS_STOP_GRACE_SECONDS)
        killed = stop_services([self.worker], grace_seconds=STOP_GRACE_SECONDS)
        if self.worker.pid is not None and self.server.exited() is None:
            self.end_leftover_runs("its process ended when cctasks up stopped", stopping=True)
        killed += stop_services([self.server], grace_seconds=SERVER_STOP_GRACE_SECONDS)
        if killed:
            self.say(f"  killed what was left of: {', '.join(killed)}")
        return time.monotonic() - began


def run_stack(options: StackOptions, console: Console | None = None) -> int:
    """Run ``cctasks up`` until Ctrl-C or SIGTERM; always leave nothing running.

    Returns:
        The exit code: 0 after a requested stop, 1 when a service failed, 2 when the
        stack could not start (e.g. the port is in use).
    """
    console = console or Console(highlight=False, soft_wrap=True)
    stack: Stack
    if options.scale is not None:
        from deployments.scale import ScaleStack

        stack = ScaleStack(options, options.scale, console)
    else:
        stack = Stack(options, console)
    stopping = False

    def interrupt(signum: int, _frame: FrameType | None) -> None:
        nonlocal stopping
        if stopping:
            return  # the stop under way is bounded; a second Ctrl-C changes nothing
        stopping = True
        raise _Interrupted(signal.Signals(signum).name)

    previous: dict[int, Callable[[int, FrameType | None], Any] | int | None] = {
        sig: signal.signal(sig, interrupt) for sig in (signal.SIGINT, signal.SIGTERM)
    }
    code = 0
    try:
        with _state_lock(options.home):
            try:
                stack.start()
                code = stack.wait()
            except _Interrupted as why:
                console.print(f"\n{why.args[0]} received: stopping ...")
            except CCTasksError as exc:
                console.print(f"[bold red]error:[/] {exc}", highlight=False)
                code = 2
            finally:
                stopping = True
                seconds = stack.stop()
                if stack.server.pid is not None:
                    console.print(f"Stopped the server and the worker in {seconds:.1f} s.")
    except CCTasksError as exc:  # the lock: another stack uses this folder
        console.print(f"[bold red]error:[/] {exc}", highlight=False)
        code = 2
    except _Interrupted:
        code = 0
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return code

