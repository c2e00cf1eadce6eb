"""Fault injection: real faults in real parts, then the database and the files, exactly.

Each test lets a flow get into the middle of the step it means to hit, injects a
real fault there, and then checks the list (record count, a digest of every row,
the import history) or the export (export rows, watermark, the exact files at the
destination) against what they were before; then a rerun, or the next export, must
give exactly the expected data: nothing missing, nothing twice.

- The sshd is a dedicated one (not the session's), behind a throttled relay so that
  a 15 MB transfer lasts seconds; it is SIGKILLed, listener and sessions, once the
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
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, cast

import pytest
import sqlalchemy as sa
from faults.lists import MAPPING, content_digest, expected_records, write_list
from faults.relay import ThrottledRelay
from faults.snapshot import attempt_ids_in, export_state, folder_files, list_state
from faults.sshd import KillableSshd, killable_sshd
from faults.watch import FaultWhen
from prefect import get_client
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterName
from prefect.client.schemas.objects import State
from prefect.settings import PREFECT_API_URL, PREFECT_FLOWS_HEARTBEAT_FREQUENCY, temporary_settings
from prefect.states import Crashed
from sshd_server import sshd_available
from test_results import RECORDS, seed_list

import flows.calling_list_import as list_flow
import flows.results_export as results_export
from blocks.sftp import SftpServer
from contact_center.models import CallAttempt
from contact_center.results import generate_call_attempts
from contact_center.settings import get_settings
from flows.calling_list_import import import_calling_list
from flows.results_export import export_campaign_results

pytestmark = pytest.mark.slow

#: Rows of the big list file (about 15 MB; 3 chunks of the import).
ROWS = 150_000
#: The relay's pace, each way: the big file takes about 3 s to cross it.
RATE = 5_000_000
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
    size = remote.stat().st_size
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

    slow_sftp.sshd.restart()
    assert import_list(list_name, source).is_completed()
    expected = {**expected_records(3000, 1), **expected_records(ROWS)}
    # 3,000 keys of the seed are in the file, changed; the rest are new.
    counts = (ROWS, ROWS - 3000, 3000, 0, 0, 0)
    check_imported(
        engine, list_name, expected, before.imports, ("completed", name, sha256(remote), size, *counts)
    )
