"""The parts of the scale load test (:mod:`bench.scale_load`): its own PostgreSQL cluster
and Redis, the ``cctasks up --scale`` stack on them, and the faults it injects.

Each starts on a free loopback port and stops (its folder removed) when its block ends.
"""

from __future__ import annotations

import glob
import os
import shutil
import signal
import subprocess
import sys
import time
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psutil

# The stack tests find a stack's processes the same way.
from tests.support.processes import stack_processes

__all__ = [
    "CCTASKS",
    "PROJECT",
    "Postgres",
    "kill_api_server",
    "kill_worker",
    "log",
    "redis_server",
    "scale_stack",
]

PROJECT = Path(__file__).resolve().parent.parent
CCTASKS = Path(sys.executable).with_name("cctasks")
UP_TIMEOUT = 900


def log(message: str) -> None:
    print(f"{datetime.now(UTC):%H:%M:%S} {message}", flush=True)


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# --- the throwaway PostgreSQL and Redis ------------------------------------------------


class Postgres:
    """A PostgreSQL cluster of this test alone, driven with pg_ctl.

    As root (containers), its folder belongs to the ``postgres`` user and the
    commands run as that user: PostgreSQL refuses to run as root.
    """

    def __init__(self, root: Path) -> None:
        found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"))
        if not found:
            raise SystemExit("PostgreSQL's binaries are not in /usr/lib/postgresql/*/bin")
        self.bin = Path(found[-1]).parent
        self.folder = root / "pg"
        self.folder.mkdir()
        self.as_user: list[str] = []
        if os.geteuid() == 0:
            root.chmod(0o711)
            shutil.chown(self.folder, "postgres", "postgres")
            self.as_user = ["runuser", "-u", "postgres", "--"]
        self.data = self.folder / "data"
        self.port = _free_port()
        self.log = self.folder / "postgres.log"
        subprocess.run(
            [*self.as_user, str(self.bin / "initdb"), "-D", str(self.data), "-U", "postgres",
             "--auth=trust", "--no-sync", "-E", "UTF8"],
            check=True, stdout=subprocess.DEVNULL,
        )
        settings = (
            f"port = {self.port}\nlisten_addresses = '127.0.0.1'\n"
            f"unix_socket_directories = '{self.folder}'\nmax_connections = 400\n"
            "fsync = off\nsynchronous_commit = off\n"
        )
        subprocess.run([*self.as_user, "sh", "-c", f"cat >> {self.data}/postgresql.conf"],
                       input=settings.encode(), check=True)

    def _ctl(self, *args: str) -> None:
        subprocess.run(
            [*self.as_user, str(self.bin / "pg_ctl"), "-D", str(self.data), "-l", str(self.log),
             "-w", "-t", "120", *args],
            check=True, stdout=subprocess.DEVNULL,
        )

    def start(self) -> None:
        self._ctl("start")

    def restart(self) -> None:
        self._ctl("restart", "-m", "fast")

    def stop(self) -> None:
        try:
            self._ctl("stop", "-m", "immediate")
        except subprocess.CalledProcessError:
            pass

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}"


@contextmanager
def redis_server(root: Path) -> Any:
    port = _free_port()
    process = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--dir", str(root),
         "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,
    )
    try:
        import redis

        client = redis.Redis(port=port)
        deadline = time.monotonic() + 30
        while True:
            try:
                client.ping()
                break
            except redis.ConnectionError:
                if time.monotonic() > deadline:
                    raise SystemExit("redis-server did not start") from None
                time.sleep(0.2)
        client.close()
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()


# --- the stack ---------------------------------------------------------------------------


@contextmanager
def scale_stack(home: Path, pg: Postgres, redis_url: str, workers: int) -> Any:
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "CCTASKS_"))}
    env.update(CCTASKS_HOME=str(home), PREFECT_SERVER_ANALYTICS_ENABLED="false", DO_NOT_TRACK="1")
    home.mkdir(parents=True, exist_ok=True)
    output = home / "up.txt"
    with output.open("wb") as sink:
        process = subprocess.Popen(
            [str(CCTASKS), "up", "--scale", "--no-demo", "--port", str(port),
             "--workers", str(workers), "--redis-url", redis_url,
             "--prefect-database-url", f"{pg.url.replace('postgresql', 'postgresql+asyncpg')}"
             "/cctasks_prefect",
             "--database-url", f"{pg.url.replace('postgresql', 'postgresql+psycopg')}/cctasks"],
            env=env, cwd=PROJECT, stdout=sink, stderr=subprocess.STDOUT,
        )
    try:
        began = time.monotonic()
        while "cctasks is up" not in output.read_text(errors="replace"):
            if process.poll() is not None:
                raise SystemExit(f"cctasks up exited:\n{output.read_text(errors='replace')}")
            if time.monotonic() - began > UP_TIMEOUT:
                raise SystemExit("cctasks up --scale did not come up in time")
            time.sleep(1)
        log(f"stack up in {time.monotonic() - began:.0f} s on port {port}")
        yield f"http://127.0.0.1:{port}/api", output
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=120)
            except subprocess.TimeoutExpired:
                process.kill()
        for proc in stack_processes(home):
            try:
                proc.kill()
            except psutil.NoSuchProcess:
                pass


# --- faults --------------------------------------------------------------------------------


def kill_api_server(home: Path) -> str:
    config = (home / "haproxy.cfg").read_text()
    import re

    port = re.findall(r"server api\d 127\.0\.0\.1:(\d+)", config)[0]
    for proc in stack_processes(home):
        cmd = proc.cmdline()
        if "--no-services" in cmd and port in cmd:
            proc.kill()
            return f"kill -9 API server on port {port} (pid {proc.pid})"
    return "no API server found to kill"


def kill_worker(home: Path, name: str = "cctasks-scale-1") -> str:
    """SIGKILL the worker and its flow-run processes at once, as when its machine dies."""
    for proc in stack_processes(home):
        cmd = proc.cmdline()
        if "worker" in cmd and name in cmd:
            children = proc.children(recursive=True)
            for victim in [proc, *children]:
                try:
                    victim.kill()
                except psutil.NoSuchProcess:
                    pass
            return f"kill -9 worker {name} (pid {proc.pid}) and its {len(children)} run processes"
    return f"no worker {name} found to kill"


# --- the workload --------------------------------------------------------------------------
