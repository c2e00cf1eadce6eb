"""The import flow in a child process, to kill with SIGKILL.

The child runs the flow as a worker's run would: its own interpreter, pointed at
the test Prefect server (``PREFECT_API_URL``) and the test database
(``CCTASKS_DATABASE_URL``, ``CCTASKS_HOME``, both in the environment).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from prefect import get_client
from prefect.client.schemas.filters import (
    FlowRunFilter,
    FlowRunFilterName,
    FlowRunFilterState,
    FlowRunFilterStateType,
)
from prefect.client.schemas.objects import StateType
from prefect.settings import PREFECT_API_URL
from prefect.states import Crashed

from support.faults.postgres import admin_engine, copy_past

__all__ = ["free_list_slot", "kill_9", "mark_crashed", "rows_arriving", "start_import_process"]

_REPOSITORY = Path(__file__).parents[3]

_IMPORT_IN_A_CHILD = (
    "import json, sys\n"
    "from flows.calling_list_import import import_calling_list\n"
    "import_calling_list(**json.loads(sys.argv[1]))\n"
)


def start_import_process(log: Path, **parameters: Any) -> subprocess.Popen[bytes]:
    """Run the import flow in a child process, on the test Prefect server and database
    (``CCTASKS_DATABASE_URL`` and ``CCTASKS_HOME`` are in the environment)."""
    env = {**os.environ, "PREFECT_API_URL": str(PREFECT_API_URL.value())}
    with log.open("wb") as output:
        return subprocess.Popen(
            [sys.executable, "-c", _IMPORT_IN_A_CHILD, json.dumps(parameters)],
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
            cwd=_REPOSITORY,
        )


def rows_arriving(db_url: str, child: subprocess.Popen[bytes], log: Path) -> Any:
    """Evidence that the child's load is writing rows: on PostgreSQL its COPY past the
    first chunk; on SQLite its uncommitted pages spilling into the WAL (over 4 MB)."""
    if child.poll() is not None:
        raise AssertionError(f"the import process ended first:\n{log.read_text()[-3000:]}")
    if db_url.startswith("postgresql"):
        return copy_past(admin_engine(db_url), 50_000)
    wal = Path(f"{sa.make_url(db_url).database}-wal")
    size = wal.stat().st_size if wal.exists() else 0
    return size if size >= 4_000_000 else None


def kill_9(child: subprocess.Popen[bytes]) -> int:
    child.send_signal(signal.SIGKILL)
    return child.wait(timeout=30)


def mark_crashed(flow_run_name: str) -> int:
    """Force the runs of that name still Running to Crashed; return how many there were.

    A SIGKILLed process reports nothing: its run stays Running until something
    marks it (in production, a heartbeat automation; see Prefect's zombie-flow guide).
    """
    with get_client(sync_client=True) as client:
        runs = client.read_flow_runs(
            flow_run_filter=FlowRunFilter(
                name=FlowRunFilterName(any_=[flow_run_name]),
                state=FlowRunFilterState(type=FlowRunFilterStateType(any_=[StateType.RUNNING])),
            )
        )
        for run in runs:
            client.set_flow_run_state(
                run.id, Crashed(message="the process was killed (SIGKILL)"), force=True
            )
    return len(runs)


def free_list_slot(list_name: str) -> None:
    """Free the list's object slot that a SIGKILLed run still holds.

    The run's lease is never renewed again; a server's repossessor service frees such
    a slot once the lease has expired (the crash tests show it on a real stack). The
    tests' harness server runs no repossessor, so this does its part.
    """
    from flows.common.slots import object_slot_name

    name = object_slot_name("list", list_name)
    with get_client(sync_client=True) as client:
        if client.read_global_concurrency_limit_by_name(name).active_slots:
            client.release_concurrency_slots(names=[name], slots=1, occupancy_seconds=1.0)
