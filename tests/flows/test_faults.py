"""Fault injection: real faults in real parts, then the database and the files, exactly.

Each test lets a flow get into the middle of the step it means to hit, injects a
real fault there, and then checks the list (record count, a digest of every row,
the import history) or the export (export rows, watermark, the exact files at the
destination) against what they were before; then a rerun, or the next export, must
give exactly the expected data: nothing missing, nothing twice.

- The sshd is a dedicated one (not the session's), behind a throttled relay so that
  a 15-18 MB transfer lasts seconds; it is SIGKILLed, listener and sessions, once the
  partial file shows a third of the bytes: mid-download of a list import and
  mid-upload of a results export.
- On PostgreSQL the import's backend is terminated (``pg_terminate_backend``) from
  another connection once ``pg_stat_progress_copy`` shows the COPY past its first
  chunk, or ``pg_stat_activity`` shows the MERGE running.
- The process running the import flow (a child pointed at the test Prefect server
  and the test database) is SIGKILLed once the database shows the load's rows
  arriving.

See docs/development.md, "Fault tests".
"""

from __future__ import annotations

import hashlib
import signal
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, cast

import pytest
import sqlalchemy as sa
from prefect import get_client
from prefect.client.schemas.filters import (
    TaskRunFilter,
    TaskRunFilterFlowRunId,
)
from prefect.client.schemas.objects import State
from prefect.settings import PREFECT_FLOWS_HEARTBEAT_FREQUENCY, temporary_settings
from support.faults.lists import MAPPING, content_digest, expected_records, write_list
from support.faults.postgres import admin_engine, copy_past, merge_running, terminate
from support.faults.process import (
    free_list_slot,
    kill_9,
    mark_crashed,
    rows_arriving,
    start_import_process,
)
from support.faults.relay import ThrottledRelay
from support.faults.snapshot import attempt_ids_in, export_state, folder_files, list_state
from support.faults.sshd import KillableSshd, killable_sshd
from support.faults.watch import FaultWhen
from support.results_support import RECORDS, seed_list
from support.sshd_server import sshd_available

import flows.calling_list_import as list_flow
import flows.results_export as results_export
from blocks.sftp import SftpServer
from contact_center.settings import get_settings
from contact_center.storage.models import CallAttempt
from deployments.demo.attempts import generate_call_attempts
from flows.calling_list_import import import_calling_list
from flows.results_export import export_campaign_results

pytestmark = pytest.mark.slow

#: Rows of the big list file (about 15 MB; 3 chunks of the import).
ROWS = 150_000
#: Rows of the list that a re-import MERGEs into (every record changes).
MERGE_ROWS = 60_000
#: The relay's pace, each way: the big file takes about 3 s to cross it.
RATE = 5_000_000
#: Results in the export that is cut: a file of about 18 MB (300 bytes a row).
UPLOAD_ATTEMPTS = 60_000
CAMPAIGN = "Spring Sale"
# Names to the microsecond: the default template names windows to the minute, and
# three exports of one campaign within a minute would share one name.
EXPORT_NAME = "{campaign}_{start:%Y%m%dT%H%M%S%f}_{end:%Y%m%dT%H%M%S%f}.csv"


@pytest.fixture(autouse=True)
def _no_heartbeat_wait() -> Iterator[None]:
    with temporary_settings(updates={PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None}):
        yield


def quick_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    """Keep the network steps' retries, without their back-off waits."""
    monkeypatch.setattr(
        list_flow,
        "fetch_list_file",
        list_flow.fetch_list_file.with_options(retry_delay_seconds=[0.2, 0.2]),
    )
    monkeypatch.setattr(
        results_export,
        "deliver_export",
        results_export.deliver_export.with_options(retry_delay_seconds=[0.2, 0.2]),
    )


@dataclass(frozen=True)
class SlowSftp:
    """A dedicated sshd behind a throttled relay, and the block that reaches it."""

    block: str
    sshd: KillableSshd
    relay: ThrottledRelay


@pytest.fixture
def slow_sftp(tmp_path: Path) -> Iterator[SlowSftp]:
    """A dedicated sshd (killable) reached through a relay at :data:`RATE` bytes/s."""
    if not sshd_available():
        pytest.skip("OpenSSH server not installed (apt-get install -y openssh-server)")
    with (
        killable_sshd(tmp_path / "sshd") as sshd,
        ThrottledRelay(sshd.server.port, RATE) as relay,
    ):
        block = f"faults-{uuid.uuid4().hex[:10]}"
        SftpServer(
            host="127.0.0.1",
            port=relay.port,
            username=sshd.server.username,
            private_key=sshd.server.private_key,
            # The relay's address, the real server's key: host keys are still checked.
            known_host_keys=f"[127.0.0.1]:{relay.port} {sshd.host_key()}",
        ).save(block, overwrite=True)
        yield SlowSftp(block, sshd, relay)


def import_list(list_name: str, source: str, **parameters: Any) -> State:
    """Run the import flow in-process; its final state (never raises)."""
    return cast(
        State,
        import_calling_list(list_name, source, mapping=MAPPING, **parameters, return_state=True),
    )


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def unique(name: str) -> str:
    """``name`` with a random part, so that no earlier test's leftovers can match it."""
    stem, dot, suffix = name.partition(".")
    return f"{stem}-{uuid.uuid4().hex[:8]}{dot}{suffix}"


def partial_size(folder: Path, pattern: str, at_least: int) -> int | None:
    """The size of the file matching ``pattern`` under ``folder`` once it has ``at_least``
    bytes (None before)."""
    for path in folder.glob(pattern):
        try:
            size = path.stat().st_size
        except FileNotFoundError:  # renamed or removed meanwhile
            continue
        if size >= at_least:
            return size
    return None


def task_attempts(state: State) -> dict[str, int]:
    """Task name -> attempts (run_count) of the flow run's task runs."""
    with get_client(sync_client=True) as client:
        runs = client.read_task_runs(
            task_run_filter=TaskRunFilter(
                flow_run_id=TaskRunFilterFlowRunId(any_=[state.state_details.flow_run_id])
            )
        )
    attempts: dict[str, int] = {}
    for run in runs:
        name = run.name.rsplit("-", 1)[0]
        attempts[name] = max(attempts.get(name, 0), run.run_count)
    return attempts


def check_imported(
    engine: sa.Engine,
    list_name: str,
    expected: dict[str, tuple[Any, ...]],
    history: tuple[tuple[Any, ...], ...],
    imported: tuple[Any, ...],
) -> None:
    """The list holds exactly ``expected``; its history is ``history`` plus one import
    whose (status, file, sha256, bytes, read, loaded, updated, unchanged, removed,
    rejected) is ``imported``."""
    state = list_state(engine, list_name)
    assert state.records == len(expected)
    assert state.content == content_digest(expected.items())
    assert state.imports[:-1] == history
    assert state.imports[-1][1:] == imported


# --- the sshd, killed mid-download -----------------------------------------------------------


def test_sshd_killed_mid_download_changes_nothing_and_the_rerun_loads_once(
    engine: sa.Engine, slow_sftp: SlowSftp, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    quick_retries(monkeypatch)
    list_name = "Spring Leads"
    assert import_list(list_name, str(write_list(tmp_path / "seed.csv", 3000, 1))).is_completed()
    before = list_state(engine, list_name)
    name = unique("leads.csv")
    remote = write_list(slow_sftp.sshd.home / "incoming" / name, ROWS)
    size, digest = remote.stat().st_size, sha256(remote)
    work = get_settings().home / "work"
    source = f"sftp://{slow_sftp.block}/incoming/{name}"

    with FaultWhen(
        lambda: partial_size(work, f"*/.{name}.part", size // 3),
        lambda _: slow_sftp.sshd.kill(),
    ) as fault:
        state = import_list(list_name, source)

    assert fault.fired and fault.seen < size, "the sshd was not killed mid-download"
    assert fault.done >= 2  # the listener and the transfer's session
    assert state.is_failed() and "SourceUnavailable" in (state.message or "")
    assert list_state(engine, list_name) == before
    # The source is as it was on the server; the partial copy is gone from the work folder.
    incoming = slow_sftp.sshd.home / "incoming"
    assert folder_files(incoming) == {name: size} and sha256(remote) == digest
    assert not list(work.glob(f"*/*{name}*"))

    slow_sftp.sshd.restart()
    assert import_list(list_name, source).is_completed()
    assert folder_files(incoming) == {name: size}
    expected = {**expected_records(3000, 1), **expected_records(ROWS)}
    # 3,000 keys of the seed are in the file, changed; the rest are new.
    counts = (ROWS, ROWS - 3000, 3000, 0, 0, 0)
    imported = ("completed", name, digest, size, *counts)
    check_imported(engine, list_name, expected, before.imports, imported)


def test_sshd_killed_mid_download_and_back_before_the_retry_loads_once(
    engine: sa.Engine, slow_sftp: SlowSftp
) -> None:
    # The fetch's own retry policy (first retry after 2 s): the server is back by then.
    list_name = "Spring Leads"
    name = unique("leads.csv")
    remote = write_list(slow_sftp.sshd.home / "incoming" / name, ROWS)
    size = remote.stat().st_size
    work = get_settings().home / "work"

    def kill_and_restart(_: int) -> int:
        killed = slow_sftp.sshd.kill()
        slow_sftp.sshd.restart()
        return killed

    partial = f"*/.{name}.part"
    with FaultWhen(lambda: partial_size(work, partial, size // 3), kill_and_restart) as fault:
        state = import_list(list_name, f"sftp://{slow_sftp.block}/incoming/{name}")

    assert fault.fired and fault.seen < size and fault.done >= 2
    assert state.is_completed()
    assert task_attempts(state)["fetch_list_file"] >= 2  # the retry fetched the file
    # The rows read while the first attempt arrived were rolled back: each key once.
    check_imported(
        engine,
        list_name,
        expected_records(ROWS),
        (),
        ("completed", name, sha256(remote), size, ROWS, ROWS, 0, 0, 0, 0),
    )


# --- the sshd, killed mid-upload ------------------------------------------------------------


def export(destination: str) -> State:
    """Run the export flow in-process (``since: last``); its final state."""
    return cast(
        State,
        export_campaign_results(CAMPAIGN, destination, file_name=EXPORT_NAME, return_state=True),
    )


def all_attempt_ids(engine: sa.Engine) -> list[int]:
    with engine.connect() as conn:
        return sorted(conn.scalars(sa.select(CallAttempt.id)))


def test_sshd_killed_mid_upload_delivers_nothing_and_every_result_lands_once(
    engine: sa.Engine, slow_sftp: SlowSftp, monkeypatch: pytest.MonkeyPatch
) -> None:
    quick_retries(monkeypatch)
    seed_list(engine, RECORDS)
    folder = slow_sftp.sshd.home / "exports"
    destination = f"sftp://{slow_sftp.block}/exports"
    now = datetime.now(UTC)
    generate_call_attempts(
        engine, CAMPAIGN, count=2000, start=now - timedelta(hours=2), end=now - timedelta(hours=1)
    )
    assert export(destination).is_completed()
    exports_before, marks_before = export_state(engine)
    files_before = folder_files(folder)
    ((*_, first_end),) = marks_before
    # About 18 MB of results after the first window: the next export's file.
    generate_call_attempts(
        engine, CAMPAIGN, count=UPLOAD_ATTEMPTS, seed=1, start=first_end, end=datetime.now(UTC)
    )

    with FaultWhen(
        lambda: partial_size(folder, ".*.part", 3_000_000), lambda _: slow_sftp.sshd.kill()
    ) as fault:
        state = export(destination)

    assert fault.fired and fault.done >= 2
    assert state.is_failed() and "DeliveryFailed" in (state.message or "")
    exports, marks = export_state(engine)
    assert marks == marks_before  # the watermark did not move
    assert exports[:-1] == exports_before
    pending = exports[-1]  # the window is reserved, to be resumed under the same name
    assert (pending[1], pending[5]) == ("pending", first_end)
    part = f".{pending[2]}.part"
    files = folder_files(folder)
    assert files == {**files_before, part: files[part]}  # nothing under a final name

    slow_sftp.sshd.restart()
    late = generate_call_attempts(
        engine, CAMPAIGN, count=500, seed=2, start=pending[6], end=datetime.now(UTC)
    )
    assert late == 500
    resumed = export(destination)
    assert resumed.is_completed() and resumed.result().extra["resumed"] is True
    assert export(destination).is_completed()

    exports, marks = export_state(engine)
    assert [e[1] for e in exports] == ["delivered"] * 3
    # The resumed export is the reserved one: same row, window and file name.
    assert [exports[1][i] for i in (0, 2, 5, 6)] == [pending[i] for i in (0, 2, 5, 6)]
    delivered = folder_files(folder)
    assert delivered == {e[2]: e[4] for e in exports}  # exactly the three, no temporary
    assert fault.seen <= files[part] < delivered[pending[2]]  # the kill was mid-upload
    assert marks[0][2] == exports[-1][6]
    ids = attempt_ids_in(folder)
    assert len(ids) == len(set(ids)) and sorted(ids) == all_attempt_ids(engine)


# --- PostgreSQL: the import's backend terminated ----------------------------------------------


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_backend_terminated_mid_copy_leaves_no_list_and_the_rerun_loads_once(
    engine: sa.Engine, db_url: str, tmp_path: Path
) -> None:
    admin = admin_engine(db_url)
    list_name = "Spring Leads"
    path = write_list(tmp_path / unique("leads.csv"), ROWS)
    before = list_state(engine, list_name)
    assert not before.exists

    # A new list is loaded straight into list_records: the rows are in the real table.
    with FaultWhen(
        lambda: copy_past(admin, 50_000),
        lambda seen: terminate(admin, seen.pid, "COPY%"),
    ) as fault:
        state = import_list(list_name, str(path))

    assert fault.fired and fault.done, "the backend was not terminated in its COPY"
    assert fault.seen.tuples_processed < ROWS
    assert state.is_failed() and "DatabaseError" in (state.message or "")
    assert list_state(engine, list_name) == before

    assert import_list(list_name, str(path)).is_completed()
    counts = (ROWS, ROWS, 0, 0, 0, 0)
    check_imported(
        engine,
        list_name,
        expected_records(ROWS),
        (),
        ("completed", path.name, sha256(path), path.stat().st_size, *counts),
    )


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_backend_terminated_mid_merge_changes_nothing_and_the_rerun_merges_once(
    engine: sa.Engine, db_url: str, tmp_path: Path
) -> None:
    admin = admin_engine(db_url)
    list_name = "Spring Leads"
    first = write_list(tmp_path / "first.csv", MERGE_ROWS)
    assert import_list(list_name, str(first)).is_completed()
    before = list_state(engine, list_name)
    # Every record changes (names, custom fields) and 1,000 keys are new.
    path = write_list(tmp_path / unique("leads.csv"), MERGE_ROWS, variant=1)

    with FaultWhen(
        lambda: merge_running(admin), lambda pid: terminate(admin, pid, "MERGE INTO%")
    ) as fault:
        state = import_list(list_name, str(path))

    assert fault.fired and fault.done, "the backend was not terminated in its MERGE"
    assert state.is_failed() and "DatabaseError" in (state.message or "")
    assert list_state(engine, list_name) == before

    assert import_list(list_name, str(path)).is_completed()
    expected = {**expected_records(MERGE_ROWS), **expected_records(MERGE_ROWS, 1)}
    counts = (MERGE_ROWS, 1000, MERGE_ROWS - 1000, 0, 0, 0)
    check_imported(
        engine,
        list_name,
        expected,
        before.imports,
        ("completed", path.name, sha256(path), path.stat().st_size, *counts),
    )


# --- the flow's process, killed mid-load ------------------------------------------------------


def test_flow_process_killed_mid_load_changes_nothing_and_the_rerun_loads_once(
    engine: sa.Engine, db_url: str, slow_sftp: SlowSftp, tmp_path: Path
) -> None:
    list_name = unique("Spring Leads")
    # The list exists, empty, with one import: the big file goes straight into
    # list_records, so the killed load's rows were in the real table.
    empty = write_list(tmp_path / "empty.csv", 0)
    assert import_list(list_name, str(empty)).is_completed()
    before = list_state(engine, list_name)
    assert before.exists and before.records == 0 and len(before.imports) == 1
    if engine.dialect.name == "sqlite":
        with engine.connect() as conn:  # an empty WAL, so that its growth is the load's
            conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    name = unique("leads.csv")
    remote = write_list(slow_sftp.sshd.home / "incoming" / name, ROWS)
    source = f"sftp://{slow_sftp.block}/incoming/{name}"
    log = tmp_path / "child.log"
    child = start_import_process(log, list_name=list_name, source=source, mapping=MAPPING)

    with FaultWhen(lambda: rows_arriving(db_url, child, log), lambda _: kill_9(child)) as fault:
        fault.wait()
    if child.poll() is None:  # the watcher gave up: do not leave the child running
        kill_9(child)

    assert fault.fired, "the load never got under way"
    assert fault.done == -signal.SIGKILL
    assert list_state(engine, list_name) == before
    assert mark_crashed(f"{list_name} · import") == 1  # the killed run, left Running
    free_list_slot(list_name)  # and its list's slot, as the repossessor would

    assert import_list(list_name, source).is_completed()
    counts = (ROWS, ROWS, 0, 0, 0, 0)
    check_imported(
        engine,
        list_name,
        expected_records(ROWS),
        before.imports,
        ("completed", name, sha256(remote), remote.stat().st_size, *counts),
    )
