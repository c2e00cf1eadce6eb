"""The export-campaign-results flow on the real Prefect harness, the real sshd, SQLite and
PostgreSQL: formats, watermark and backfill, gzip, empty windows, bad input and faults.

Crashes and retries are in ``test_results_export_retries.py``.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from conftest import free_port
from prefect.exceptions import ParameterTypeError
from support.results_export_support import (  # noqa: F401 (fixtures, by their names)
    Remote,
    fast_flows_fixture,
    no_delivery_retries,
    remote_fixture,
    seeded_fixture,
)
from support.results_support import (
    CAMPAIGN,
    RECORDS,
    add_attempts,
    attempt_ids,
    exports,
    final_files,
    read_csv,
    seed_list,
    watermark,
)

from blocks.sftp import SftpServer, SftpSession
from contact_center.exceptions import DeliveryFailed, InvalidParameter, ObjectNotFound
from contact_center.storage.results_format import DETAILED_COLUMNS, SIMPLE_COLUMNS
from flows.results_export import export_campaign_results

CUSTOM = ["balance", "note", "custom_phone", "tier"]


# --- formats ----------------------------------------------------------------------------------


def test_detailed_export_to_sftp(engine: sa.Engine, seeded: dict[str, Any], remote: Remote) -> None:
    destination = remote.destination
    outcome = export_campaign_results(CAMPAIGN, destination)
    files = final_files(remote.folder)
    assert len(files) == 1
    ((name, data),) = files.items()
    table = read_csv(data)
    assert table[0] == [*DETAILED_COLUMNS, *CUSTOM]
    assert [int(r[table[0].index("attempt_id")]) for r in table[1:]] == seeded["ids"]
    row = dict(zip(table[0], table[2], strict=True))
    assert row["call_note"] == "'=cmd|' /C calc'!A0" and row["phone"] == "'+13125550199"
    assert row["first_name"] == '\'=HYPERLINK("http://x")' and row["custom_phone"] == "'@evil"
    # The file name is the window, in UTC seconds, and the export's id; the outcome
    # says what happened.
    end = datetime.fromisoformat(outcome.extra["window_end"])
    start = datetime.fromisoformat(outcome.extra["window_start"])
    (record,) = exports(engine)
    assert name == f"Spring Sale_{start:%Y%m%d%H%M%S}_{end:%Y%m%d%H%M%S}_{record.id}.csv"
    assert (outcome.status, outcome.step, outcome.rows_read) == ("completed", "export", 5)
    assert outcome.bytes == len(data) and outcome.files == [f"{destination}/{name}"]
    assert outcome.extra["since"] == "last" and outcome.extra["watermark"] == end.isoformat()
    assert abs(end - datetime.now(UTC)) < timedelta(minutes=1)
    assert watermark(engine) == end
    assert (record.status, record.file_name, record.rows, record.bytes) == (
        "delivered",
        name,
        5,
        len(data),
    )


def test_simple_export_to_a_local_folder(
    engine: sa.Engine, seeded: dict[str, Any], tmp_path: Path
) -> None:
    outcome = export_campaign_results(
        CAMPAIGN, str(tmp_path / "out"), format="simple", file_name="{campaign}-{format}.csv"
    )
    table = read_csv((tmp_path / "out" / "Spring Sale-simple.csv").read_bytes())
    assert table[0] == [*SIMPLE_COLUMNS, *CUSTOM]
    rows = {r[2]: dict(zip(table[0], r, strict=True)) for r in table[1:]}
    assert list(rows) == ["A1", "A2", "A3"] and outcome.rows_read == 3
    assert (rows["A1"]["record_disposition"], rows["A1"]["attempts"]) == ("Sale", "2")
    assert (rows["A2"]["record_disposition"], rows["A2"]["attempts"]) == ("Out of quota", "1")
    assert (rows["A3"]["record_disposition"], rows["A3"]["attempts"]) == ("Excluded", "0")
    assert rows["A1"]["last_agent"] == "ana.lopez" and rows["A1"]["tier"] == "gold"


def test_gzip_export(engine: sa.Engine, seeded: dict[str, Any], remote: Remote) -> None:
    outcome = export_campaign_results(CAMPAIGN, remote.destination, gzip=True)
    ((name, data),) = final_files(remote.folder).items()
    assert name.endswith(".csv.gz") and data[:2] == b"\x1f\x8b"
    assert outcome.bytes == len(data)
    table = read_csv(data)
    assert table[0][:3] == ["campaign", "list", "record_key"] and len(table) == 6


# --- windows -----------------------------------------------------------------------------------


def test_watermark_moves_and_backfill_does_not(
    engine: sa.Engine, seeded: dict[str, Any], tmp_path: Path
) -> None:
    folder = tmp_path / "out"
    first = export_campaign_results(CAMPAIGN, str(folder))
    mark = watermark(engine)
    assert mark is not None and first.rows_read == 5
    # New results after the first run: the next run exports only them, from the watermark.
    new = add_attempts(
        engine,
        seeded["list_id"],
        [{"record_key": "A3", "recorded_at": datetime.now(UTC), "record_disposition": "No Answer"}],
    )
    second = export_campaign_results(CAMPAIGN, str(folder))
    assert second.rows_read == 1 and second.extra["window_start"] == mark.isoformat()
    assert sorted(attempt_ids(final_files(folder))) == sorted(seeded["ids"] + new)
    after_second = watermark(engine)
    assert after_second is not None and after_second > mark
    # A backfill re-exports an explicit window under its own name, watermark untouched.
    start = (mark - timedelta(minutes=45)).replace(second=0, microsecond=0)
    window = f"{start:%Y-%m-%dT%H:%M}/{mark.isoformat()}"
    backfill = export_campaign_results(CAMPAIGN, str(tmp_path / "backfill"), since=window)
    assert backfill.extra["since"] == "window" and "watermark" not in backfill.extra
    assert backfill.rows_read == 4
    assert watermark(engine) == after_second


def test_first_since_limits_the_first_export(
    engine: sa.Engine, seeded: dict[str, Any], tmp_path: Path
) -> None:
    since = (datetime.now(UTC) - timedelta(minutes=25)).isoformat()
    outcome = export_campaign_results(CAMPAIGN, str(tmp_path / "out"), first_since=since)
    assert outcome.rows_read == 2
    assert sorted(attempt_ids(final_files(tmp_path / "out"))) == seeded["ids"][3:]


def test_destination_template_uses_the_window_end(
    engine: sa.Engine, seeded: dict[str, Any], tmp_path: Path
) -> None:
    list_id = seeded["list_id"]
    (old,) = add_attempts(
        engine,
        list_id,
        [{"record_key": "A1", "recorded_at": datetime(2026, 10, 1, 12, tzinfo=UTC)}],
    )
    outcome = export_campaign_results(
        CAMPAIGN,
        str(tmp_path / "out" / "{date:%Y-%m}"),
        since="2026-10-01T00:00/2026-10-02T00:00",
    )
    files = final_files(tmp_path / "out" / "2026-10")
    (backfill,) = exports(engine)
    assert list(files) == [f"Spring Sale_20261001000000_20261002000000_{backfill.id}.csv"]
    assert attempt_ids(files) == [old] and outcome.rows_read == 1


@pytest.mark.parametrize("skip_empty", [True, False])
def test_empty_window(engine: sa.Engine, tmp_path: Path, skip_empty: bool) -> None:
    seed_list(engine, RECORDS)
    outcome = export_campaign_results(CAMPAIGN, str(tmp_path / "out"), skip_empty=skip_empty)
    assert outcome.status == "completed" and outcome.rows_read == 0
    assert watermark(engine) is not None  # the watermark moves either way
    files = final_files(tmp_path / "out")
    if skip_empty:
        assert files == {} and outcome.bytes == 0 and outcome.files == []
        assert exports(engine)[0].file_name is None
    else:
        (data,) = files.values()
        assert read_csv(data) == [list(DETAILED_COLUMNS)] and outcome.bytes == len(data)


# --- bad input and faults -------------------------------------------------------------------


def test_unknown_campaign(engine: sa.Engine, tmp_path: Path) -> None:
    with pytest.raises(ObjectNotFound, match="campaign 'Nope' does not exist"):
        export_campaign_results("Nope", str(tmp_path / "out"))
    assert final_files(tmp_path / "out") == {}


def test_unreachable_destination(
    engine: sa.Engine, seeded: dict[str, Any], sshd: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    no_delivery_retries(monkeypatch)
    SftpServer(
        host="127.0.0.1",
        port=free_port(),
        username="x",
        password="secret-pw-123",
        known_host_keys=sshd.known_hosts,
        timeout=2,
    ).save("nowhere", overwrite=True)
    with pytest.raises(DeliveryFailed, match=r"cannot reach SFTP server x@127.0.0.1") as info:
        export_campaign_results(CAMPAIGN, "sftp://nowhere/out")
    assert "secret-pw-123" not in str(info.value)
    assert watermark(engine) is None and exports(engine)[0].status == "pending"


def test_setup_errors_are_not_retried(
    engine: sa.Engine, seeded: dict[str, Any], sshd: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    connects: list[int] = []
    real_connect = SftpSession.connect.__func__  # type: ignore[attr-defined]

    def counting(cls: type[SftpSession], server: SftpServer) -> SftpSession:
        connects.append(1)
        return real_connect(cls, server)  # type: ignore[no-any-return]

    monkeypatch.setattr(SftpSession, "connect", classmethod(counting))
    wrong_key = sshd.known_hosts.rsplit(" ", 1)[0] + " AAAAC3NzaC1lZDI1NTE5AAAAIOb" + "A" * 41
    SftpServer(
        host=sshd.host,
        port=sshd.port,
        username=sshd.username,
        private_key=sshd.private_key,
        known_host_keys=wrong_key,
    ).save("changed-key", overwrite=True)
    with pytest.raises(DeliveryFailed, match="has CHANGED"):
        export_campaign_results(CAMPAIGN, "sftp://changed-key/out")
    assert connects == [1]  # refused once, not retried
    with pytest.raises(ObjectNotFound, match="no SFTP Server block named 'missing-block'"):
        export_campaign_results(CAMPAIGN, "sftp://missing-block/out")
    assert connects == [1] and watermark(engine) is None


@pytest.mark.parametrize(
    "params, match",
    [
        ({"since": "yesterday"}, "must be 'last' or a window"),
        ({"since": "2999-01-01T00:00/2999-01-02T00:00"}, "ends in the future"),
        ({"first_since": "soon"}, "first_since 'soon' is not an ISO 8601 time"),
        ({"file_name": "{campaign}/{x}.csv"}, "uses {x}"),
        ({"destination": "sftp://Bad_Block/out"}, "not a block name"),
        ({"destination": "out/*.csv"}, "cannot hold a glob"),
    ],
)
def test_invalid_parameters_fail_before_anything(
    engine: sa.Engine, tmp_path: Path, params: dict[str, Any], match: str
) -> None:
    seed_list(engine, RECORDS)
    arguments = {"campaign": CAMPAIGN, "destination": str(tmp_path / "out"), **params}
    with pytest.raises(InvalidParameter, match=match):
        export_campaign_results(**arguments)
    assert exports(engine) == [] and not (tmp_path / "out").exists()


def test_a_bad_format_is_refused_by_its_type(engine: sa.Engine, tmp_path: Path) -> None:
    seed_list(engine, RECORDS)
    with pytest.raises(ParameterTypeError, match="format: Input should be 'simple' or 'detailed'"):
        export_campaign_results(CAMPAIGN, str(tmp_path / "out"), format="xlsx")  # type: ignore[arg-type]
    assert exports(engine) == [] and not (tmp_path / "out").exists()
