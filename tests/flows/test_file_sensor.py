"""The file sensor on the real sshd and a local folder, on the session's Prefect server.

The flow runs in-process; its events go to the real server, and the test reads them
back through the API (``/events/filter``), as the server's triggers see them.
"""

from __future__ import annotations

import os
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from prefect.settings import PREFECT_API_URL
from prefect.variables import Variable
from support.sshd_server import Sshd

from contact_center.exceptions import InvalidParameter
from flows.file_sensor import ARRIVED_EVENT, MEMORY_VARIABLE, watch_drop_folders


def _arrivals(since: datetime, watch: str, want: int) -> list[dict[str, Any]]:
    """The ``cctasks.file.arrived`` events of ``watch`` since ``since`` (waits for ``want``)."""
    body = {
        "filter": {
            "occurred": {"since": since.isoformat(), "until": (datetime.now(UTC) + timedelta(
                minutes=5)).isoformat()},
            "event": {"name": [ARRIVED_EVENT]},
        },
        "limit": 50,
    }
    deadline = time.monotonic() + 30
    while True:
        reply = httpx.post(f"{PREFECT_API_URL.value()}/events/filter", json=body, timeout=10)
        reply.raise_for_status()
        events = [e for e in reply.json()["events"] if e["resource"]["cctasks.watch"] == watch]
        if len(events) >= want or time.monotonic() > deadline:
            return events
        time.sleep(0.5)


@pytest.fixture(autouse=True)
def _forget() -> None:
    Variable.set(MEMORY_VARIABLE, {}, overwrite=True)


def test_sftp_files_are_announced_once_when_stable(sshd: Sshd, sftp_block: str) -> None:
    incoming = sshd.home / "in"
    incoming.mkdir(exist_ok=True)
    (incoming / "leads_1.csv").write_text("Account,Phone\nA1,6175550100\n")
    (incoming / "other.txt").write_text("not watched")
    watches = {"sftp-leads": f"sftp://{sftp_block}/in/leads_*.csv"}
    since = datetime.now(UTC) - timedelta(seconds=1)

    assert watch_drop_folders(watches=watches, settle_seconds=1) == 1
    (event,) = _arrivals(since, "sftp-leads", 1)
    resource = event["resource"]
    assert resource["cctasks.location"] == f"sftp://{sftp_block}/in/leads_1.csv"
    assert resource["cctasks.file.size"] == str((incoming / "leads_1.csv").stat().st_size)

    assert watch_drop_folders(watches=watches, settle_seconds=1) == 0  # announced before

    growing = incoming / "leads_2.csv"
    stop = threading.Event()

    def upload() -> None:  # a partner's upload, still going while the sensor looks
        with growing.open("ab") as handle:
            while not stop.is_set():
                handle.write(b"A2,6175550101\n")
                handle.flush()
                time.sleep(0.2)

    writer = threading.Thread(target=upload)
    writer.start()
    try:
        time.sleep(0.5)
        assert watch_drop_folders(watches=watches, settle_seconds=2) == 0
    finally:
        stop.set()
        writer.join()
    assert watch_drop_folders(watches=watches, settle_seconds=1) == 1  # now whole
    names = sorted(e["resource"]["cctasks.file.name"] for e in _arrivals(since, "sftp-leads", 2))
    assert names == ["leads_1.csv", "leads_2.csv"]
    assert {e["resource"]["cctasks.file.size"] for e in _arrivals(since, "sftp-leads", 2)} >= {
        str(growing.stat().st_size)
    }


def test_a_local_file_written_again_is_announced_again(tmp_path: Path) -> None:
    drop = tmp_path / "drop"
    drop.mkdir()
    target = drop / "spring_leads.csv"
    target.write_text("Account\nA1\n")
    watches = {"local-leads": str(target)}
    assert watch_drop_folders(watches=watches, settle_seconds=0) == 1
    assert watch_drop_folders(watches=watches, settle_seconds=0) == 0
    os.utime(target, (time.time() + 5, time.time() + 5))  # written again, unchanged
    assert watch_drop_folders(watches=watches, settle_seconds=0) == 1
    # Not there yet: nothing to announce, and no failure.
    assert watch_drop_folders(watches={"later": str(tmp_path / "later" / "*.csv")}) == 0


def test_a_watch_outside_the_local_folders_is_refused() -> None:
    with pytest.raises(InvalidParameter, match="outside the local folders"):
        watch_drop_folders(watches={"etc": "/etc/*.conf"}, settle_seconds=0)
