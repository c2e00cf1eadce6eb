"""Pieces every flow benchmark needs: a throwaway database and a flow run in a child process.

A flow run in a child process gives that run's own peak RSS and keeps one run's
caches and memory from helping or hurting the next. The child prints one JSON line:
its wall time, RSS before the flow and peak RSS, the outcome, and the flow-run id,
from which :func:`run_flow` also reads the run's own duration on the Prefect server.

Use it from a benchmark module ``bench.<name>``::

    if args.child:                       # the child's side
        child_main(import_calling_list, json.loads(args.child))
    figures = run_flow("bench.list_import", params, env)   # the parent's side
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import sqlalchemy as sa

__all__ = [
    "child_main",
    "client_files",
    "fmt",
    "openssh_sftp",
    "rss_mb",
    "run_flow",
    "throwaway_postgres",
]

PG_ADMIN_URL = os.environ.get(
    "CCTASKS_BENCH_PG_ADMIN_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)


@contextmanager
def throwaway_postgres(prefix: str = "cctasks_bench") -> Iterator[sa.URL]:
    """A fresh PostgreSQL database, dropped afterwards."""
    name = f"{prefix}_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    try:
        yield sa.make_url(PG_ADMIN_URL).set(database=name)
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def rss_mb(field: str = "VmRSS") -> float:
    """This process's resident memory now (``VmRSS``) or at its peak (``VmHWM``), in MB.

    ``VmHWM`` is the peak of this program only. ``getrusage``'s ``ru_maxrss`` is not:
    Linux carries the parent's size at ``fork`` over ``exec``, so a child started by a
    big parent would report the parent's peak.
    """
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) / 1024
    return 0.0


def child_main(flow: Callable[..., Any], params: dict[str, Any]) -> None:
    """Run ``flow`` once with ``params``; print its figures as one JSON line."""
    baseline = rss_mb()
    started = time.perf_counter()
    state = flow(**params, return_state=True)
    seconds = time.perf_counter() - started
    outcome = state.result()
    print(
        json.dumps(
            {
                "seconds": seconds,
                "baseline_mb": baseline,
                "peak_mb": rss_mb("VmHWM"),
                "outcome": outcome.to_dict(),
                "flow_run_id": str(state.state_details.flow_run_id),
            },
            default=str,
        )
    )


def run_flow(
    module: str, params: dict[str, Any], env: dict[str, str], cwd: Path | None = None
) -> dict[str, Any]:
    """Run ``python -m <module> --child <params>``; return its figures.

    ``cwd``: the tree to run (``python -m`` imports from it first), for an A/B of two
    trees; this one by default.

    The figures gain ``in_flow``: the run's own start-to-end time on the server
    (what the task log shows as Duration), or None. The wall time adds the client's
    creation of the run and, after the run has completed, Prefect's wait for its
    heartbeat thread, which sleeps in 1 s steps (so a sync call returns on a whole
    second of that thread).

    Raises:
        RuntimeError: the flow failed; the message holds the child's output.
    """
    proc = subprocess.run(
        [sys.executable, "-m", module, "--child", json.dumps(params)],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"the flow failed:\n{proc.stdout}\n{proc.stderr}")
    figures: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    figures["in_flow"] = _run_seconds(figures["flow_run_id"])
    return figures


def _run_seconds(flow_run_id: str) -> float | None:
    from prefect import get_client

    with get_client(sync_client=True) as client:
        run = client.read_flow_run(uuid.UUID(flow_run_id))
    if run.start_time and run.end_time:
        return float((run.end_time - run.start_time).total_seconds())
    return None


def fmt(values: list[float]) -> str:
    """The median and every run, e.g. ``  4.21 s  (runs: 4.30, 4.21, 4.02)``."""
    runs = ", ".join(f"{v:.2f}" for v in values)
    return f"{statistics.median(values):6.2f} s  (runs: {runs})"


def client_files(sshd: Any, workdir: Path) -> tuple[Path, Path]:
    """The reference client's private key (mode 600) and known_hosts for the test sshd."""
    key = workdir / "client_key"
    key.write_text(sshd.private_key)
    key.chmod(0o600)
    known_hosts = workdir / "known_hosts"
    known_hosts.write_text(sshd.known_hosts + "\n")
    return key, known_hosts


def openssh_sftp(sshd: Any, key: Path, known_hosts: Path, *commands: str) -> None:
    """Run OpenSSH's ``sftp`` in batch mode against the test sshd (the reference client).

    Args:
        sshd: the running server (``tests.support.sshd_server.Sshd``).
        key: the client's private key file (mode 600).
        known_hosts: a known_hosts file holding the server's key (checked strictly).
        commands: sftp commands, e.g. ``"get leads.csv /tmp/leads.csv"``.
    """
    batch = key.with_name(f"sftp-batch-{uuid.uuid4().hex[:6]}")
    batch.write_text("".join(f"{command}\n" for command in commands))
    try:
        subprocess.run(
            [
                "sftp",
                "-q",
                "-b",
                str(batch),
                "-P",
                str(sshd.port),
                "-i",
                str(key),
                "-o",
                f"UserKnownHostsFile={known_hosts}",
                "-o",
                "StrictHostKeyChecking=yes",
                "-o",
                "BatchMode=yes",
                f"{sshd.username}@{sshd.host}",
            ],
            check=True,
            capture_output=True,
        )
    finally:
        batch.unlink(missing_ok=True)
