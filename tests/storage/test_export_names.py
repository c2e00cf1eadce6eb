"""Results exports never overwrite a delivered file: every export has its own name, and a
delivery refuses a name that another export delivered. On the real sshd and a local
folder, SQLite and PostgreSQL."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from prefect.runtime import flow_run as runtime_flow_run
from support.results_export_support import fast_flows_fixture  # noqa: F401 (autouse)
from support.results_support import (
    CAMPAIGN,
    RECORDS,
    add_attempts,
    attempt_ids,
    exports,
    final_files,
    seed_list,
    watermark,
)

from blocks.sftp import SftpServer, SftpSession
from contact_center.exceptions import DeliveryFailed
from contact_center.storage.export_naming import render_file_name
from contact_center.storage.models import CallAttempt
from flows.common import deliver
from flows.results_export import export_campaign_results

# The default file name before exports had ids: the window to the minute.
MINUTE_TEMPLATE = "{campaign}_{start:%Y%m%d%H%M}_{end:%Y%m%d%H%M}.csv"


def folder_and_destination(
    kind: str, sshd: Any, sftp_block: str, tmp_path: Path
) -> tuple[Path, str]:
    """A fresh folder on the test sshd (``sftp``) or on the local disk (``local``)."""
    if kind == "local":
        return tmp_path / "out", str(tmp_path / "out")
    name = f"exports/{uuid.uuid4().hex[:10]}"
    return sshd.home / name, f"sftp://{sftp_block}/{name}"


def all_attempt_ids(engine: sa.Engine) -> list[int]:
    with engine.connect() as conn:
        return sorted(conn.execute(sa.select(CallAttempt.id)).scalars())


def results_at(engine: sa.Engine, list_id: int, times: list[datetime]) -> list[int]:
    """One result row per time, spread over the three records."""
    rows = [
        {"record_key": RECORDS[i % 3]["account"], "recorded_at": when, "record_disposition": "Busy"}
        for i, when in enumerate(times)
    ]
    return add_attempts(engine, list_id, rows)


def test_three_exports_in_one_minute_deliver_every_result_once(
    engine: sa.Engine,
    sshd: Any,
    sftp_block: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    folder, destination = folder_and_destination("sftp", sshd, sftp_block, tmp_path)
    list_id = seed_list(engine, RECORDS)
    # Three runs scheduled 10 s apart inside one minute (in the past, so nothing is
    # written after a window's end), with new results written between them.
    minute = (datetime.now(UTC) - timedelta(minutes=5)).replace(second=0, microsecond=0)
    results_at(engine, list_id, [minute - timedelta(minutes=30), minute + timedelta(seconds=5)])
    outcomes = []
    for second in (10, 20, 30):
        if second > 10:
            gap = [minute + timedelta(seconds=second - 9, milliseconds=37 * i) for i in range(200)]
            results_at(engine, list_id, gap)
        # The run's scheduled time, as Prefect's runtime gives it to a scheduled run
        # (its environment override cannot carry a datetime in Prefect 3.9).
        scheduled = minute + timedelta(seconds=second)
        monkeypatch.setattr(runtime_flow_run, "scheduled_start_time", scheduled, raising=False)
        outcomes.append(export_campaign_results(CAMPAIGN, destination))
    windows = [
        (
            datetime.fromisoformat(o.extra["window_start"]),
            datetime.fromisoformat(o.extra["window_end"]),
        )
        for o in outcomes
    ]
    assert [end.second for _start, end in windows] == [10, 20, 30]
    # The old minute-resolution name of the 2nd and 3rd windows was the same file.
    old = {
        render_file_name(
            MINUTE_TEMPLATE, campaign=CAMPAIGN, start=s, end=e, format="detailed", export_id=0
        )
        for s, e in windows[1:]
    }
    assert len(old) == 1
    files = final_files(folder)
    delivered = list(exports(engine))
    assert sorted(files) == sorted(e.file_name for e in delivered) and len(files) == 3
    assert [e.status for e in delivered] == ["delivered"] * 3
    assert [o.rows_read for o in outcomes] == [2, 200, 200]
    # Every result of the database is in exactly one delivered file.
    ids = attempt_ids(files)
    assert len(ids) == len(set(ids)) and sorted(ids) == all_attempt_ids(engine)
    assert watermark(engine) == windows[-1][1]


def count_connects(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Count SFTP connections (the real ones are still made)."""
    connects: list[int] = []
    real_connect = SftpSession.connect.__func__  # type: ignore[attr-defined]

    def counting(cls: type[SftpSession], server: SftpServer) -> SftpSession:
        connects.append(1)
        return real_connect(cls, server)  # type: ignore[no-any-return]

    monkeypatch.setattr(SftpSession, "connect", classmethod(counting))
    return connects


@pytest.mark.parametrize("kind", ["sftp", "local"])
def test_a_template_without_the_id_is_refused_rather_than_overwriting(
    engine: sa.Engine,
    sshd: Any,
    sftp_block: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    kind: str,
) -> None:
    folder, destination = folder_and_destination(kind, sshd, sftp_block, tmp_path)
    list_id = seed_list(engine, RECORDS)
    now = datetime.now(UTC)
    results_at(engine, list_id, [now - timedelta(minutes=m) for m in (50, 40, 30)])
    daily = "{campaign}_{end:%Y%m%d}.csv"  # one name a day: the second export collides
    first = export_campaign_results(CAMPAIGN, destination, file_name=daily)
    ((name, data),) = final_files(folder).items()
    mark = watermark(engine)
    late = results_at(engine, list_id, [datetime.now(UTC)])
    connects = count_connects(monkeypatch)
    with pytest.raises(
        DeliveryFailed, match=rf"/{re.escape(name)}' already exists.*refusing to overwrite"
    ):
        export_campaign_results(CAMPAIGN, destination, file_name=daily)
    assert connects == ([1] if kind == "sftp" else [])  # refused once, not retried
    # The first export's file is untouched, nothing is left behind, nothing moved.
    assert final_files(folder) == {name: data} and sorted(p.name for p in folder.iterdir()) == [
        name
    ]
    assert watermark(engine) == mark and [e.status for e in exports(engine)] == [
        "delivered",
        "pending",
    ]
    # Resuming the interrupted export under the same name is refused too: the file
    # is another export's, not its own.
    with pytest.raises(DeliveryFailed, match="refusing to overwrite"):
        export_campaign_results(CAMPAIGN, destination, file_name=daily)
    assert final_files(folder) == {name: data}
    # With the default name (it holds the export's id) the window is delivered.
    resumed = export_campaign_results(CAMPAIGN, destination)
    assert resumed.extra["resumed"] is True and resumed.rows_read == 1 and first.rows_read == 3
    files = final_files(folder)
    assert len(files) == 2 and files[name] == data
    ids = attempt_ids(files)
    assert sorted(ids) == all_attempt_ids(engine) and len(ids) == len(set(ids))
    assert late[0] in ids


def test_the_rename_refuses_a_file_that_appeared_during_the_upload(
    sshd: Any, sftp_block: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two deliveries racing for one name: the SFTP rename itself refuses to replace."""
    local = tmp_path / "report.csv"
    local.write_text("ours\n")
    name = f"race/{uuid.uuid4().hex[:10]}"
    folder = sshd.home / name
    real_put = SftpSession.put

    def put_then_race(self: SftpSession, source: Any, path: str, progress: Any = None) -> int:
        written = real_put(self, source, path, progress)
        (folder / "report.csv").write_text("theirs\n")  # another writer wins the name
        return written

    monkeypatch.setattr(SftpSession, "put", put_then_race)
    with pytest.raises(DeliveryFailed, match="already exists") as info:
        deliver(local, f"sftp://{sftp_block}/{name}", replace=False)
    assert isinstance(info.value.__cause__, FileExistsError)
    assert (folder / "report.csv").read_text() == "theirs\n"
    assert sorted(p.name for p in folder.iterdir()) == ["report.csv"]  # no .part left
    # Where replacing is allowed (a report, an export resuming itself), it replaces.
    monkeypatch.setattr(SftpSession, "put", real_put)
    deliver(local, f"sftp://{sftp_block}/{name}")
    assert (folder / "report.csv").read_text() == "ours\n"


def test_a_local_delivery_refuses_an_existing_file(tmp_path: Path) -> None:
    local = tmp_path / "report.csv"
    local.write_text("ours\n")
    out = tmp_path / "out"
    out.mkdir()
    (out / "report.csv").write_text("theirs\n")
    with pytest.raises(DeliveryFailed, match="already exists") as info:
        deliver(local, str(out), replace=False)
    assert isinstance(info.value.__cause__, FileExistsError)
    assert (out / "report.csv").read_text() == "theirs\n"
    assert sorted(p.name for p in out.iterdir()) == ["report.csv"]
    final, size = deliver(local, str(out), name="new.csv", replace=False)
    assert (out / "new.csv").read_text() == "ours\n" and size == 5
    assert sorted(p.name for p in out.iterdir()) == ["new.csv", "report.csv"]
