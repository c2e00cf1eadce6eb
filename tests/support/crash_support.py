"""Helpers of the crash tests: big list files, list snapshots, runs started and followed.

They talk to a stack's server through this process's Prefect client, pointed at it by
:class:`Api`, and to its contact-centre database directly.
"""

from __future__ import annotations

import hashlib
import re
import time
from collections import Counter
from pathlib import Path
from typing import Any
from uuid import UUID

import psutil
import sqlalchemy as sa
from prefect.client.schemas.objects import StateType

from contact_center.storage.db import create_db_engine, upgrade
from contact_center.storage.models import CallingList, ListImport, ListRecord
from deployments.demo import FIRST_RUNS, run_once, seed_campaigns, write_demo_files
from deployments.demo.files import RETENTION_COLUMNS, SPRING_LEADS_COLUMNS

__all__ = [
    "ENDED",
    "Api",
    "freeze_and_kill",
    "list_snapshot",
    "run_process",
    "run_to_completion",
    "seed_demo_lists",
    "slots_taken",
    "start_run",
    "wait_for_end",
    "wait_until_loading",
    "write_list_file",
]

ENDED = {StateType.COMPLETED, StateType.FAILED, StateType.CRASHED, StateType.CANCELLED}


def write_list_file(path: Path, rows: int, *, retention: bool = False, tag: str = "A") -> None:
    """A calling-list file shaped like the demo's, with ``rows`` valid rows."""
    exchanges = [e for e in range(201, 1000) if e % 100 != 11 and e != 555]
    header, delimiter = (
        (RETENTION_COLUMNS, ";") if retention else (SPRING_LEADS_COLUMNS, ",")
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as out:
        out.write(delimiter.join(header) + "\n")
        for start in range(0, rows, 100_000):
            lines = []
            for i in range(start, min(rows, start + 100_000)):
                phone = f"212{exchanges[i % len(exchanges)]}{i // len(exchanges) % 10000:04d}"
                extra = ["basic", "12"] if retention else ["3", "web"]
                lines.append(delimiter.join(
                    [f"{tag}-{i:08d}", phone, "", "Ann", tag, "10001", "NY", *extra]
                ))
            out.write("\n".join(lines) + "\n")


def list_snapshot(url: str, list_name: str) -> dict[str, Any]:
    """Every record and import row of a calling list, as the database holds them.

    The records are summed up (their count per import and a digest of them all), so that a
    failed comparison prints a short difference, not a million rows: pytest's diff of two
    long lists takes hours.
    """
    lists, records, imports = CallingList.__table__, ListRecord.__table__, ListImport.__table__
    engine = create_db_engine(url)
    with engine.connect() as conn:
        list_id = conn.execute(
            sa.select(lists.c.id).where(lists.c.name == list_name)
        ).scalar_one()
        digest = hashlib.sha256()
        per_import: Counter[int | None] = Counter()
        for row in conn.execute(
            sa.select(records).where(records.c.list_id == list_id).order_by(records.c.id)
        ):
            digest.update(repr(tuple(row)).encode())
            per_import[row.import_id] += 1
        return {
            "records per import": dict(per_import),
            "records digest": digest.hexdigest(),
            "imports": [tuple(r) for r in conn.execute(
                sa.select(imports).where(imports.c.list_id == list_id).order_by(imports.c.id)
            )],
        }


class Api:
    """This process's Prefect client, pointed at one stack's server."""

    def __init__(self, api_url: str) -> None:
        self.api_url = api_url

    def __enter__(self) -> Any:
        from prefect import get_client
        from prefect.settings import PREFECT_API_URL, temporary_settings

        self._settings = temporary_settings(updates={PREFECT_API_URL: self.api_url})
        self._settings.__enter__()
        self._client = get_client(sync_client=True)
        return self._client.__enter__()

    def __exit__(self, *exc: object) -> None:
        self._client.__exit__(*exc)
        self._settings.__exit__(*exc)


def seed_demo_lists(api_url: str, database_url: str, home: Path) -> None:
    """The demo's campaigns, files and first imports (the DNC list, then both lists)."""
    from prefect.settings import PREFECT_API_URL, temporary_settings

    engine = create_db_engine(database_url)
    upgrade(engine)
    seed_campaigns(engine)
    write_demo_files(home)
    with temporary_settings(updates={PREFECT_API_URL: api_url}):
        for stage in FIRST_RUNS[:2]:
            reports = run_once(stage)
            assert all(report.ok for report in reports), reports


def start_run(api_url: str, deployment: str) -> UUID:
    with Api(api_url) as client:
        return UUID(str(client.create_flow_run_from_deployment(
            client.read_deployment_by_name(deployment).id
        ).id))


def wait_until_loading(
    api_url: str, run_id: UUID, timeout: float = 300, *, freeze: bool = False
) -> None:
    """Until the run's progress says it loads rows: its transaction is open and written to.

    With ``freeze``, the run's process is stopped (SIGSTOP) the moment that is seen, so
    that a kill that follows finds the transaction still open: a load can otherwise
    commit in the second or two a test takes to gather the processes it kills.
    """
    from prefect.client.schemas.filters import (
        ArtifactFilter,
        ArtifactFilterFlowRunId,
        ArtifactFilterType,
    )

    deadline = time.monotonic() + timeout
    process: psutil.Process | None = None
    with Api(api_url) as client:
        while True:
            state = client.read_flow_run(run_id).state
            assert state is not None and state.type not in ENDED, f"ended before: {state}"
            if freeze and process is None and state.type == StateType.RUNNING:
                process = _find_run_process(run_id)
            progress = client.read_artifacts(artifact_filter=ArtifactFilter(
                flow_run_id=ArtifactFilterFlowRunId(any_=[run_id]),
                type=ArtifactFilterType(any_=["progress"]),
            ))
            # "<name> · import: load, 120,000 of 1,000,000 rows" once the rows go in
            if any(re.search(r": load(,|$)", a.description or "") for a in progress):
                if freeze:
                    (process or run_process(run_id)).suspend()
                return
            assert time.monotonic() < deadline, f"the run never started loading: {state}"
            time.sleep(0.05 if process else 0.2)


def _find_run_process(run_id: UUID) -> psutil.Process | None:
    try:
        return run_process(run_id)
    except AssertionError:
        return None  # not started yet


def run_process(run_id: UUID) -> psutil.Process:
    """The process that executes a flow run (the worker's child)."""
    for proc in psutil.process_iter():
        try:
            if proc.environ().get("PREFECT__FLOW_RUN_ID") == str(run_id):
                return proc
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
    raise AssertionError(f"no process runs flow run {run_id}")


def wait_for_end(api_url: str, run_id: UUID, timeout: float) -> Any:
    """The run's final state, once it has one."""
    deadline = time.monotonic() + timeout
    with Api(api_url) as client:
        while True:
            state = client.read_flow_run(run_id).state
            if state is not None and state.type in ENDED:
                return state
            assert time.monotonic() < deadline, f"still {state} after {timeout:.0f} s"
            time.sleep(1)


def slots_taken(api_url: str, deployment: str) -> int:
    with Api(api_url) as client:
        limit = client.read_deployment_by_name(deployment).global_concurrency_limit
    assert limit is not None
    return int(limit.active_slots)


def run_to_completion(api_url: str, deployment: str, timeout: float = 300) -> None:
    """A new run of ``deployment`` gets its slot and completes."""
    run_id = start_run(api_url, deployment)
    state = wait_for_end(api_url, run_id, timeout)
    assert state.type == StateType.COMPLETED, state


def freeze_and_kill(processes: list[psutil.Process]) -> None:
    """Stop every process first, then kill them all, as a power cut does: none of them
    sees another one die and reports it."""
    for sig in (psutil.signal.SIGSTOP, psutil.signal.SIGKILL):
        for proc in processes:
            try:
                proc.send_signal(sig)
            except psutil.NoSuchProcess:
                continue
    psutil.wait_procs(processes, timeout=10)
