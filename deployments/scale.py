"""``cctasks up --scale``: Prefect's self-hosted scale-out shape, on one machine.

The same parts as a multi-machine installation ("How to scale self-hosted Prefect"),
each a process of its own:

- two API servers (``prefect server start --no-services``) on two free ports;
- one background-services process (``prefect server services start``): scheduler,
  late runs, repossessor of expired concurrency leases, database vacuum, automations;
- HAProxy in front of the API servers (config: ``deployments/haproxy.cfg``) on
  ``--port``, the only address the workers, the CLI and the UI use;
- PostgreSQL for Prefect and for the contact centre, two databases created when missing;
- Redis through prefect-redis for messaging, causal ordering of events, concurrency
  leases and the services' task queue (docket);
- N process workers on the ``cctasks`` pool (default 2).

It reuses :class:`deployments.stack.Stack` for the bootstrap, the demo and the ordered
stop: the workers and their runs first, then the runs left in progress are ended, then
the load balancer, the API servers and the services.
"""

from __future__ import annotations

import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from string import Template

import httpx
import psycopg
from psycopg import sql
from rich.console import Console
from sqlalchemy.engine import make_url

from contact_center.exceptions import InvalidParameter
from contact_center.settings import WORK_POOL_NAME
from contact_center.storage.db import safe_url
from deployments.processes import Service, stop_children, stop_services
from deployments.stack import (
    RUNS_STOP_GRACE_SECONDS,
    SERVER_START_TIMEOUT,
    SERVER_STOP_GRACE_SECONDS,
    STOP_GRACE_SECONDS,
    WORKER_START_TIMEOUT,
    Stack,
    StackError,
    check_port_free,
)
from deployments.stack_options import StackOptions

__all__ = [
    "DEFAULT_POSTGRES_URL",
    "DEFAULT_REDIS_URL",
    "ScaleOptions",
    "ScaleStack",
    "ensure_database",
    "haproxy_config",
    "redis_environment",
]

DEFAULT_POSTGRES_URL = "postgresql://postgres@127.0.0.1:5432"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
PREFECT_DATABASE = "cctasks_prefect"
CONTACT_CENTER_DATABASE = "cctasks"
HAPROXY_TEMPLATE = Path(__file__).with_name("haproxy.cfg")
API_SERVERS = 2
#: How often one part may die and be started again before the stack gives up.
MAX_RESTARTS = 3


@dataclass(frozen=True)
class ScaleOptions:
    """What ``cctasks up --scale`` adds to the plain stack's options.

    Attributes:
        workers: process workers on the cctasks pool.
        redis_url: the Redis that prefect-redis uses (one per installation: its
            streams have fixed names).
        runs_per_worker: flow runs one worker starts at once (``prefect worker start
            --limit``): a bound per machine, and what spreads a burst over the workers.
        api_ports: the API servers' ports; free ones are chosen when empty.
    """

    workers: int = 2
    runs_per_worker: int = 2
    redis_url: str = DEFAULT_REDIS_URL
    api_ports: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        if not 1 <= self.workers <= 16:
            raise InvalidParameter(f"--workers {self.workers}: give 1 to 16")
        if self.runs_per_worker < 1:
            raise InvalidParameter(f"runs per worker {self.runs_per_worker}: give 1 or more")
        if not self.redis_url.startswith(("redis://", "rediss://")):
            raise InvalidParameter(f"--redis-url {safe_url(self.redis_url)!r}: not redis://")


def database_urls(postgres_url: str) -> tuple[str, str]:
    """Prefect's (asyncpg) and the contact centre's (psycopg) database URLs on one server."""
    server = make_url(postgres_url)
    prefect = server.set(drivername="postgresql+asyncpg", database=PREFECT_DATABASE)
    centre = server.set(drivername="postgresql+psycopg", database=CONTACT_CENTER_DATABASE)
    return (prefect.render_as_string(hide_password=False),
            centre.render_as_string(hide_password=False))


def ensure_database(url: str) -> bool:
    """Create the PostgreSQL database of ``url`` unless it exists.

    Returns:
        True when it was created.

    Raises:
        StackError: the server does not answer or refuses.
    """
    target = make_url(url)
    name = target.database
    assert name
    admin = target.set(drivername="postgresql", database="postgres")
    try:
        with psycopg.connect(admin.render_as_string(hide_password=False), autocommit=True,
                             connect_timeout=10) as conn:
            if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone():
                return False
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
            return True
    except psycopg.errors.DuplicateDatabase:
        return False  # another start created it a moment ago
    except psycopg.Error as exc:
        raise StackError(
            f"PostgreSQL at {safe_url(admin)} refused to create database {name!r}: {exc}; "
            "see docs/scale.md for installing PostgreSQL"
        ) from exc


def check_redis(url: str) -> None:
    """Fail clearly when Redis does not answer a PING."""
    import redis

    client = redis.Redis.from_url(url, socket_connect_timeout=5)
    try:
        client.ping()
    except redis.RedisError as exc:
        raise StackError(
            f"Redis at {safe_url(url)} does not answer ({exc}); start it, or see docs/scale.md"
        ) from exc
    finally:
        client.close()


def redis_environment(redis_url: str) -> dict[str, str]:
    """The Prefect settings (3.9) that put messaging, ordering and leases into Redis."""
    return {
        "PREFECT_REDIS_MESSAGING_URL": redis_url,
        "PREFECT_SERVER_EVENTS_MESSAGING_BROKER": "prefect_redis.messaging",
        "PREFECT_SERVER_EVENTS_MESSAGING_CACHE": "prefect_redis.messaging",
        "PREFECT_SERVER_EVENTS_CAUSAL_ORDERING": "prefect_redis.ordering",
        "PREFECT_SERVER_CONCURRENCY_LEASE_STORAGE": "prefect_redis.lease_storage",
        # The services' perpetual tasks and the API servers share one queue.
        "PREFECT_SERVER_DOCKET_URL": redis_url,
    }


def haproxy_config(bind_host: str, bind_port: int, api_ports: list[int], pidfile: Path) -> str:
    """``deployments/haproxy.cfg`` with the addresses filled in."""
    servers = "\n".join(
        f"    server api{i} 127.0.0.1:{port} check inter 1s fall 2 rise 1"
        for i, port in enumerate(api_ports, start=1)
    )
    return Template(HAPROXY_TEMPLATE.read_text()).substitute(
        bind_host=bind_host, bind_port=bind_port, servers=servers, pidfile=pidfile
    )


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class ScaleStack(Stack):
    """Two API servers, the services, HAProxy and N workers, on PostgreSQL and Redis."""

    def __init__(
        self, options: StackOptions, scale: ScaleOptions, console: Console | None = None
    ) -> None:
        super().__init__(options, console)
        self.scale = scale
        self.env.update(redis_environment(scale.redis_url))
        python = sys.executable
        ports = list(scale.api_ports) or [_free_port() for _ in range(API_SERVERS)]
        self.api_ports = ports
        logs = options.logs
        self.api_servers = [
            Service(
                name=f"api server {i}",
                command=[python, "-m", "prefect", "server", "start", "--host", "127.0.0.1",
                         "--port", str(port), "--no-services", "--analytics-off"],
                env=self.env, log_path=logs / f"api-{i}.log", cwd=options.home,
            )
            for i, port in enumerate(ports, start=1)
        ]
        self.services = Service(
            name="services", command=[python, "-m", "prefect", "server", "services", "start"],
            env=self.env, log_path=logs / "services.log", cwd=options.home,
        )
        haproxy = shutil.which("haproxy") or "/usr/sbin/haproxy"
        self.haproxy_cfg = options.home / "haproxy.cfg"
        self.balancer = Service(
            name="load balancer", command=[haproxy, "-db", "-f", str(self.haproxy_cfg)],
            env=self.env, log_path=logs / "haproxy.log", cwd=options.home,
        )
        self.worker_names = [f"cctasks-scale-{i}" for i in range(1, scale.workers + 1)]
        self.workers = [
            Service(
                name=f"worker {name}",
                command=[python, "-m", "prefect", "worker", "start", "--pool", WORK_POOL_NAME,
                         "--type", "process", "--name", name,
                         "--limit", str(scale.runs_per_worker)],
                env=self.env, log_path=logs / f"{name}.log", cwd=options.project_dir,
                signals_to_stop=2,
            )
            for name in self.worker_names
        ]
        # What run_stack and the plain stack's helpers look at.
        self.server = self.api_servers[0]
        self.worker = self.workers[0]

    def _backends(self) -> list[Service]:
        return [*self.api_servers, self.services, self.balancer]

    def _wait_healthy(self, url: str, services: list[Service], what: str) -> None:
        deadline = time.monotonic() + SERVER_START_TIMEOUT
        with httpx.Client(timeout=2.0) as http:
            while True:
                for service in services:
                    self._check_alive(service)
                try:
                    if http.get(url).status_code == 200:
                        return
                except httpx.HTTPError:
                    pass
                if time.monotonic() > deadline:
                    raise StackError(f"{what} did not answer {url} within "
                                     f"{SERVER_START_TIMEOUT:.0f} s; see {self.options.logs}")
                time.sleep(0.25)

    def start_server(self) -> None:
        """Databases and Redis checked, then API servers, services and HAProxy."""
        o = self.options
        if shutil.which("haproxy") is None and not Path("/usr/sbin/haproxy").exists():
            raise StackError("haproxy is not installed: apt-get install haproxy "
                             "(see docs/scale.md)")
        check_port_free(o.host, o.port)
        check_redis(self.scale.redis_url)
        for url in (o.prefect_database_url, o.contact_center_url):
            if url and url.startswith("postgresql") and ensure_database(url):
                self.say(f"  created database {safe_url(url)}")
        o.prefect_home.mkdir(parents=True, exist_ok=True)
        began = time.monotonic()
        self.say(f"Starting {len(self.api_servers)} Prefect API servers on ports "
                 f"{', '.join(map(str, self.api_ports))} ...")
        # The first one migrates the database; the others start once it is done.
        first, *others = self.api_servers
        first.start()
        self._wait_healthy(f"http://127.0.0.1:{self.api_ports[0]}/api/health", [first],
                           "the first API server")
        for server, port in zip(others, self.api_ports[1:], strict=True):
            server.start()
            self._wait_healthy(f"http://127.0.0.1:{port}/api/health", [server], server.name)
        self.services.start()
        self.haproxy_cfg.write_text(
            haproxy_config(o.host, o.port, self.api_ports, o.home / "haproxy.pid")
        )
        self.balancer.start()
        self._wait_healthy(f"{o.api_url}/health", [self.balancer, self.services],
                           "HAProxy")
        self.say(f"  API servers, services and HAProxy on {o.ui_url} healthy after "
                 f"{time.monotonic() - began:.1f} s")

    def start_worker(self) -> None:
        """Start the workers and wait for a heartbeat of each."""
        from datetime import UTC, datetime

        from prefect import get_client

        began = time.monotonic()
        since = datetime.now(UTC)
        for worker in self.workers:
            worker.start()
        deadline = began + WORKER_START_TIMEOUT
        with self.prefect_settings(), get_client(sync_client=True) as client:
            while True:
                for worker in self.workers:
                    self._check_alive(worker)
                beats = {
                    w.name for w in client.read_workers_for_work_pool(WORK_POOL_NAME)
                    if w.last_heartbeat_time is not None and w.last_heartbeat_time >= since
                }
                if beats >= set(self.worker_names):
                    break
                if time.monotonic() > deadline:
                    raise StackError(f"workers {sorted(set(self.worker_names) - beats)} sent no "
                                     f"heartbeat within {WORKER_START_TIMEOUT:.0f} s")
                time.sleep(0.5)
        self.say(f"  {len(self.workers)} workers polling pool {WORK_POOL_NAME} "
                 f"(started in {time.monotonic() - began:.1f} s)")

    def wait(self, poll_seconds: float = 0.5) -> int:
        """Wait for a signal, restarting a part that died while the others carry on.

        An API server or a worker that dies is what the profile is built to survive:
        HAProxy routes around the server, the other worker takes new runs, and the part
        is started again. A part that keeps dying ends the stack.

        Returns:
            1 when a part died :data:`MAX_RESTARTS` times.
        """
        restarts: dict[str, int] = {}
        while True:
            for service in [*self._backends(), *self.workers]:
                code = service.exited()
                if code is None:
                    continue
                restarts[service.name] = restarts.get(service.name, 0) + 1
                if restarts[service.name] > MAX_RESTARTS:
                    self.console.print(
                        f"[red]error:[/] the {service.name} exited (code {code}) "
                        f"{MAX_RESTARTS + 1} times; last lines of {service.log_path}:\n"
                        f"{service.log_tail()}", highlight=False)
                    return 1
                self.say(f"[yellow]the {service.name} exited (code {code}); "
                         "starting it again[/]")
                if service in self.workers:
                    self._end_runs_of(service)
                service.close_log()
                service.start()
            time.sleep(poll_seconds)

    def _end_runs_of(self, worker: Service) -> None:
        """End the runs a dead worker left without a process, before it starts again.

        A run that was still being started (Pending, "Submitting") sends no heartbeat,
        so the zombie-run automation never ends it: without this it would stay Pending.
        """
        from deployments.leftovers import end_and_report

        name = self.worker_names[self.workers.index(worker)]
        try:
            with self.prefect_settings():
                end_and_report(name, WORK_POOL_NAME, "its worker died", self.say)
        except Exception as exc:  # the API may be down too; the automation remains
            self.say(f"[yellow]could not end the runs of worker {name}:[/] {exc}")

    def end_leftover_runs(self, why: str, *, stopping: bool = False) -> None:
        """End the runs of every worker of this stack that are in progress with no process."""
        from deployments.leftovers import end_and_report

        with self.prefect_settings():
            for name in self.worker_names:
                end_and_report(name, WORK_POOL_NAME, why, self.say, stopping=stopping)

    def stop(self) -> float:
        """Workers and their runs, then leftovers, then HAProxy, API servers and services."""
        began = time.monotonic()
        if "prefect.events.worker" in sys.modules:
            from prefect.events.worker import EventsWorker

            EventsWorker.drain_all(timeout=3)  # while the API still listens (see Stack.stop)
        for worker in self.workers:
            stop_children(worker, grace_seconds=RUNS_STOP_GRACE_SECONDS)
        killed = stop_services(self.workers, grace_seconds=STOP_GRACE_SECONDS)
        if any(w.pid is not None for w in self.workers) and self.balancer.exited() is None:
            self.end_leftover_runs("its process ended when cctasks up stopped", stopping=True)
        killed += stop_services(self._backends(), grace_seconds=SERVER_STOP_GRACE_SECONDS)
        if killed:
            self.say(f"  killed what was left of: {', '.join(killed)}")
        return time.monotonic() - began
