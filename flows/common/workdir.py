"""Each run's work folder, ``<home>/work/<flow-run-id>``, and the sweep of leftovers.

A run keeps its work files (downloaded copies, rendered exports and reports, its
staged rejects) in a folder of its own, and removes it on every exit path it lives to
see: the flows remove it in a ``finally``. A run that is killed (``kill -9``, a
machine that went down) cannot, so each flow that makes work files starts with
:func:`sweep_work_folders`: it asks the Prefect API for the states of the runs whose
folders are there and removes those of runs that have ended (Completed, Failed,
Cancelled, Crashed). The folder of a run that is Running, Pending, Paused or waiting
for a retry stays.

The sweep runs at the start of each flow because work folders are local to the
machine that ran the flow: whichever worker (or ``serve`` process) runs flows also
sweeps its own leftovers, with no extra deployment, schedule or process, and a
leftover never outlives the next run on the same machine.
"""

from __future__ import annotations

import shutil
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from prefect import get_run_logger
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId
from prefect.context import FlowRunContext

from contact_center.parsing.openpgp import GPG_HOME_PREFIX, gpg_homes_left, remove_gpg_home
from contact_center.settings import WORK_SWEEP_UNKNOWN_RUN_SECONDS, get_settings

__all__ = [
    "current_run_id",
    "make_run_folder",
    "run_folder",
    "run_workdir",
    "sweep_leftover_work",
    "sweep_work_folders",
]

# Run ids asked for in one request (the API pages its answers).
_IDS_PER_REQUEST = 100


def current_run_id() -> str | None:
    """The id of the flow run this code runs in, or None outside one."""
    context = FlowRunContext.get()
    return str(context.flow_run.id) if context and context.flow_run else None


def run_folder(run_id: str | None = None) -> Path:
    """The run's work folder, ``<home>/work/<run-id>`` (not created).

    Args:
        run_id: the flow run; default the current one (a fresh id outside a run).
    """
    return get_settings().work_root / (run_id or current_run_id() or uuid.uuid4().hex)


def make_run_folder(run_id: str | None = None) -> Path:
    """Create (if needed) and return the run's work folder (see :func:`run_folder`)."""
    folder = run_folder(run_id)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@contextmanager
def run_workdir(run_id: str | None = None) -> Iterator[Path]:
    """The run's work folder, removed when the block ends, however it ends."""
    folder = make_run_folder(run_id)
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _run_folders(root: Path) -> dict[uuid.UUID, list[Path]]:
    """The work folders under ``root`` and the temporary GnuPG homes, by the run whose
    name they carry (nothing else is ours to remove)."""
    folders: dict[uuid.UUID, list[Path]] = {}
    try:
        entries = list(root.iterdir())
    except FileNotFoundError:
        entries = []
    for path in entries:
        run_id = _run_id(path.name)
        if run_id is not None and path.is_dir() and not path.is_symlink():
            folders.setdefault(run_id, []).append(path)
    for owner, homes in gpg_homes_left().items():
        run_id = _run_id(owner)
        if run_id is not None:
            folders.setdefault(run_id, []).extend(homes)
    return folders


def _run_id(name: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(name)
    except ValueError:
        return None


def _ended(run_ids: list[uuid.UUID]) -> tuple[set[uuid.UUID], set[uuid.UUID]]:
    """Ask the Prefect API: (runs in a final state, runs it knows)."""
    ended: set[uuid.UUID] = set()
    known: set[uuid.UUID] = set()
    with get_client(sync_client=True) as client:
        for start in range(0, len(run_ids), _IDS_PER_REQUEST):
            batch = run_ids[start : start + _IDS_PER_REQUEST]
            runs = client.read_flow_runs(
                flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=batch)), limit=len(batch)
            )
            for run in runs:
                known.add(run.id)
                if run.state is not None and run.state.is_final():
                    ended.add(run.id)
    return ended, known


def sweep_work_folders(now: float | None = None) -> list[Path]:
    """Remove the work folders (and temporary GnuPG homes) of runs no longer running.

    A folder of a run the API does not know (deleted from the history, or made
    outside a flow run) is removed once it has not changed for
    ``WORK_SWEEP_UNKNOWN_RUN_SECONDS``. The current run's folder always stays.

    Args:
        now: the time to measure that age from (default: now).

    Returns:
        The folders removed.
    """
    folders = _run_folders(get_settings().work_root)
    current = current_run_id()
    if current is not None:
        folders.pop(uuid.UUID(current), None)
    if not folders:
        return []
    ended, known = _ended(list(folders))
    now = time.time() if now is None else now
    removed = []
    for run_id, paths in folders.items():
        if run_id in known and run_id not in ended:
            continue
        for path in paths:
            if run_id not in known and now - path.stat().st_mtime < WORK_SWEEP_UNKNOWN_RUN_SECONDS:
                continue
            if path.name.startswith(GPG_HOME_PREFIX):
                remove_gpg_home(path)  # its agent too, which holds the key
            else:
                shutil.rmtree(path, ignore_errors=True)
            removed.append(path)
    return removed


def sweep_leftover_work() -> None:
    """:func:`sweep_work_folders` at a flow's start, logged; never fails the run.

    Tidying up after other runs is not this run's work: when the Prefect API cannot
    answer, the folders wait for the next run and this one goes on.
    """
    try:
        removed = sweep_work_folders()
    except Exception as exc:
        get_run_logger().warning("leftover work folders not swept: %s", exc)
        return
    if removed:
        get_run_logger().info(
            "removed the work folders of %d ended runs: %s",
            len(removed),
            ", ".join(p.name for p in removed),
        )
