"""The ``import-calling-list`` flow end to end: real sshd, real Prefect, SQLite and PostgreSQL."""

from __future__ import annotations

import csv
import hashlib
import json
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast
from uuid import UUID

import pytest
import sqlalchemy as sa
from prefect import get_client
from prefect.client.schemas.filters import (
    ArtifactFilter,
    ArtifactFilterFlowRunId,
    ArtifactFilterKey,
    LogFilter,
    LogFilterFlowRunId,
    TaskRunFilter,
    TaskRunFilterFlowRunId,
)
from prefect.client.schemas.objects import State
from prefect.settings import PREFECT_FLOWS_HEARTBEAT_FREQUENCY, temporary_settings

import flows.calling_list_import as list_flow
import flows.common.arrival as arrival
import flows.list_steps as list_steps
from blocks.sftp import SftpServer
from contact_center.outcome import Outcome
from contact_center.settings import OUTCOME_ARTIFACT_KEY
from contact_center.storage.bulk import BulkWriter
from contact_center.storage.models import (
    CallingList,
    Exclusion,
    ExclusionList,
    ListImport,
    ListRecord,
)
from flows.calling_list_import import import_calling_list

LIST = "Spring Leads"
HEADER = ["Account No", "First Name", "Mobile", "Home Phone", "ZIP", "Plan"]
MAPPING = {
    "Account No": "account",
    "First Name": "first_name",
    "Mobile": "phone1",
    "Home Phone": "phone2",
    "ZIP": "zip",
}
GOOD = [
    ["A1", "Ann", "(212) 736-5000", "", "02134", "gold"],
    ["A2", "Bob", "+44 20 7183 8750", "212-736-5001", "10001", ""],
    ["A3", "Zoë", "not a phone", "2127365002", "", "silver"],
]
BAD = [
    ["", "No Key", "2127365003", "", "", ""],  # missing_key
    ["A4", "No Phone", "12345", "", "", ""],  # no_valid_phone
    ["A1", "Again", "2127365004", "", "", ""],  # duplicate_key
]


@pytest.fixture(autouse=True)
def _quick_runs(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """No heartbeat wait per sync flow call, and no back-off between fetch retries."""
    fast_fetch = list_flow.fetch_list_file.with_options(retry_delay_seconds=[0.0, 0.0])
    monkeypatch.setattr(list_flow, "fetch_list_file", fast_fetch)
    with temporary_settings(updates={PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None}):
        yield


def write_csv(path: Path, rows: list[list[str]], header: list[str] = HEADER) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def run(**parameters: Any) -> State:
    """Run the flow in-process; return its final state (never raises)."""
    parameters.setdefault("list_name", LIST)
    parameters.setdefault("mapping", MAPPING)
    return cast(State, import_calling_list(**parameters, return_state=True))


def run_id(state: State) -> UUID:
    flow_run_id = state.state_details.flow_run_id
    assert flow_run_id is not None
    return flow_run_id


def artifacts(state: State, key: str | None = None) -> list[Any]:
    with get_client(sync_client=True) as client:
        return client.read_artifacts(
            artifact_filter=ArtifactFilter(
                flow_run_id=ArtifactFilterFlowRunId(any_=[run_id(state)]),
                key=ArtifactFilterKey(any_=[key]) if key else None,
            )
        )


def recorded_outcome(state: State) -> Outcome:
    """The outcome artifact that the run stored on the Prefect server."""
    found = artifacts(state, OUTCOME_ARTIFACT_KEY)
    assert len(found) == 1
    rows: list[dict[str, Any]] = json.loads(found[0].data)
    return Outcome.from_row(rows[0])


def run_logs(state: State) -> str:
    with get_client(sync_client=True) as client:
        logs = client.read_logs(
            log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=[run_id(state)]))
        )
    return "\n".join(log.message for log in logs)


def task_runs(state: State) -> dict[str, int]:
    """Task name -> run_count (attempts) of the flow run's task runs."""
    with get_client(sync_client=True) as client:
        runs = client.read_task_runs(
            task_run_filter=TaskRunFilter(flow_run_id=TaskRunFilterFlowRunId(any_=[run_id(state)]))
        )
    return {r.name.rsplit("-", 1)[0]: r.run_count for r in runs}


def task_run_names(state: State) -> Counter[str]:
    """Task name -> how many task runs of it the flow run has."""
    with get_client(sync_client=True) as client:
        runs = client.read_task_runs(
            task_run_filter=TaskRunFilter(flow_run_id=TaskRunFilterFlowRunId(any_=[run_id(state)]))
        )
    return Counter(r.name.rsplit("-", 1)[0] for r in runs)


def records(engine: sa.Engine, list_name: str = LIST) -> dict[str, dict[str, Any]]:
    with engine.connect() as conn:
        rows = conn.execute(
            sa.select(
                ListRecord.record_key,
                ListRecord.first_name,
                ListRecord.phone1,
                ListRecord.phone2,
                ListRecord.zip,
                ListRecord.custom_fields,
            )
            .join(CallingList, CallingList.id == ListRecord.list_id)
            .where(CallingList.name == list_name)
        ).all()
    return {
        r[0]: dict(zip(("first_name", "phone1", "phone2", "zip", "custom"), r[1:], strict=True))
        for r in rows
    }


def list_exists(engine: sa.Engine, list_name: str = LIST) -> bool:
    with engine.connect() as conn:
        return conn.scalar(sa.select(sa.func.count()).where(CallingList.name == list_name)) == 1


# --- the whole path ----------------------------------------------------------------------


def test_import_from_sftp_end_to_end(sshd: Any, sftp_block: str, engine: sa.Engine) -> None:
    write_csv(sshd.home / "incoming" / "leads_20260301.csv", GOOD + BAD)
    state = run(source=f"sftp://{sftp_block}/incoming/leads_*.csv", expires_after_days=30)
    assert state.is_completed(), state.message
    outcome = state.result()
    assert isinstance(outcome, Outcome)
    assert (outcome.status, outcome.rows_read, outcome.loaded, outcome.rejected) == (
        "completed",
        6,
        3,
        3,
    )
    assert outcome.rejects_by_reason == {"duplicate_key": 1, "missing_key": 1, "no_valid_phone": 1}
    assert outcome.bytes == (sshd.home / "incoming" / "leads_20260301.csv").stat().st_size
    assert len(outcome.sha256 or "") == 64
    assert outcome.files[0] == f"sftp://{sftp_block}/incoming/leads_20260301.csv"
    got = records(engine)
    assert sorted(got) == ["A1", "A2", "A3"]
    assert got["A1"]["phone1"] == "+12127365000" and got["A1"]["zip"] == "02134"
    assert got["A2"]["phone1"] == "+442071838750" and got["A2"]["phone2"] == "+12127365001"
    assert got["A3"]["phone1"] is None and got["A3"]["phone2"] == "+12127365002"
    assert got["A1"]["custom"] == {"Plan": "gold"}
    # The outcome, as stored on the Prefect server, and the run's name.
    assert recorded_outcome(state) == outcome
    with get_client(sync_client=True) as client:
        assert client.read_flow_run(run_id(state)).name == "Spring Leads · import"
    # The rejects file: the original rows, their row numbers and reasons.
    rejects_path = Path(outcome.files[1])
    with rejects_path.open(encoding="utf-8") as handle:
        rejected = list(csv.DictReader(handle))
    assert [(r["row"], r["reason"], r["First Name"]) for r in rejected] == [
        ("5", "missing_key", "No Key"),
        ("6", "no_valid_phone", "No Phone"),
        ("7", "duplicate_key", "Again"),
    ]
    kinds = {a.type for a in artifacts(state)}
    assert {"table", "markdown", "progress"} <= kinds
    progress = [a for a in artifacts(state) if a.type == "progress"]
    assert progress and progress[0].data == 100.0
    # The file is parsed and loaded while it arrives: no step runs twice.
    assert task_runs(state) == {"fetch_list_file": 1, "parse_list": 1, "load_list": 1}


def test_policies_rerun_and_checksum_skip(sshd: Any, sftp_block: str, engine: sa.Engine) -> None:
    source = f"sftp://{sftp_block}/lists/leads.csv"
    write_csv(sshd.home / "lists" / "leads.csv", GOOD)
    assert run(source=source).result().loaded == 3
    # The same file again: skipped, nothing touched.
    skipped = run(source=source)
    assert skipped.is_completed() and skipped.result().status == "skipped"
    assert recorded_outcome(skipped).status == "skipped"
    # Forced: re-read, every record unchanged, nothing duplicated.
    forced = run(source=source, force=True).result()
    assert (forced.loaded, forced.updated, forced.unchanged) == (0, 0, 3)
    assert len(records(engine)) == 3
    # update: one changed, one new.
    write_csv(
        sshd.home / "lists" / "leads.csv",
        [
            ["A1", "Ann-Marie", "2127365000", "", "02134", "gold"],
            GOOD[1],
            ["B1", "Cy", "2127365009", "", "", ""],
        ],
    )
    upd = run(source=source).result()
    assert (upd.loaded, upd.updated, upd.unchanged) == (1, 1, 1)
    # append: the existing A1 is left alone, B2 added.
    write_csv(
        sshd.home / "lists" / "leads.csv",
        [["A1", "Changed", "2127365000", "", "", ""], ["B2", "Di", "2127365010", "", "", ""]],
    )
    app = run(source=source, update_policy="append").result()
    assert (app.loaded, app.unchanged) == (1, 1) and records(engine)["A1"][
        "first_name"
    ] == "Ann-Marie"
    # replace: the list becomes exactly the file (4 of 5 go: past max_removed_ratio, so force).
    write_csv(sshd.home / "lists" / "leads.csv", [GOOD[0], ["C1", "Ed", "2127365011", "", "", ""]])
    rep = run(source=source, update_policy="replace", force=True).result()
    assert (rep.loaded, rep.removed) == (1, 4) and sorted(records(engine)) == ["A1", "C1"]
    with engine.connect() as conn:
        statuses = conn.scalars(sa.select(ListImport.status).order_by(ListImport.id)).all()
    assert statuses == ["completed", "skipped", "completed", "completed", "completed", "completed"]


# --- reading the file while it arrives -------------------------------------------------------


def _many_rows(count: int, first_name: str = "Ann") -> list[list[str]]:
    """Enough rows that the file outgrows its sniffed head (64 KiB) and SFTP blocks."""
    return [
        [f"M{i:05d}", first_name, f"212736{i % 10000:04d}", "", "", "x" * 40] for i in range(count)
    ]


def test_streamed_import_records_the_whole_file(
    sshd: Any, sftp_block: str, engine: sa.Engine
) -> None:
    path = write_csv(sshd.home / "stream" / "leads.csv", _many_rows(3000))
    state = run(source=f"sftp://{sftp_block}/stream/leads.csv")
    assert state.is_completed() and state.result().loaded == 3000
    assert task_runs(state) == {"fetch_list_file": 1, "parse_list": 1, "load_list": 1}
    with engine.connect() as conn:
        imported = conn.execute(sa.select(ListImport.sha256, ListImport.bytes)).one()
    # The checksum and size are only known once the download ends, after the rows.
    assert imported == (hashlib.sha256(path.read_bytes()).hexdigest(), path.stat().st_size)
    assert recorded_outcome(state).sha256 == imported[0]


def test_download_that_fails_midway_is_loaded_once_from_the_retry(
    sshd: Any, sftp_block: str, engine: sa.Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_csv(sshd.home / "flaky" / "leads.csv", _many_rows(3000))
    real_write = arrival.HashingWriter.write
    failures: list[int] = []

    def flaky_write(self: Any, data: bytes) -> int:
        if not failures and self.written > 100_000:
            failures.append(self.written)
            raise OSError("connection reset (injected)")
        return real_write(self, data)

    monkeypatch.setattr(arrival.HashingWriter, "write", flaky_write)
    state = run(source=f"sftp://{sftp_block}/flaky/leads.csv")
    assert failures and state.is_completed()
    assert state.result().loaded == 3000 and len(records(engine)) == 3000
    runs = task_runs(state)
    # The reader went on where it was once the retry had repeated the first bytes.
    assert runs == {"fetch_list_file": 2, "parse_list": 1, "load_list": 1}
    with engine.connect() as conn:
        assert conn.scalars(sa.select(ListImport.status)).all() == ["completed"]


def test_encoding_guessed_from_the_head_is_read_again_when_wrong(
    sshd: Any, sftp_block: str, engine: sa.Engine
) -> None:
    path = sshd.home / "cp1252" / "leads.csv"
    write_csv(path, _many_rows(3000))
    with path.open("ab") as handle:  # after the head: a byte that UTF-8 cannot be
        handle.write("Z9,O’Brien,2127369999,,,\r\n".encode("cp1252"))
    state = run(source=f"sftp://{sftp_block}/cp1252/leads.csv")
    assert state.is_completed() and state.result().loaded == 3001
    assert records(engine)["Z9"]["first_name"] == "O’Brien"
    assert recorded_outcome(state).extra["encoding"] == "cp1252"
    # Read while it arrived (a guess: UTF-8, from the head); the rows after the
    # guess failed were read in the whole file's encoding, in the same load.
    assert task_run_names(state) == Counter(fetch_list_file=1, parse_list=1, load_list=1)


# --- gates and failures --------------------------------------------------------------------


def test_failed_gate_changes_nothing_and_records_why(
    sshd: Any, sftp_block: str, engine: sa.Engine
) -> None:
    path = write_csv(sshd.home / "gate" / "leads.csv", GOOD)
    source = f"sftp://{sftp_block}/gate/leads.csv"
    assert run(source=source).is_completed()
    before = records(engine)
    write_csv(path, GOOD[:1] + BAD)
    state = run(source=source, max_reject_ratio=0.5, update_policy="replace", after_import="delete")
    assert state.is_failed()
    assert "max_reject_ratio" in (state.message or "") and "3 of 4 rows rejected" in (
        state.message or ""
    )
    assert records(engine) == before
    assert path.exists()  # after_import runs only after a commit
    outcome = recorded_outcome(state)
    assert outcome.status == "failed" and "QualityGateFailed" in (outcome.message or "")
    assert outcome.bytes == path.stat().st_size
    assert any(f.endswith(".csv") and "rejects" in f for f in outcome.files)  # to see why
    # An empty file never wipes the list under replace (min_rows defaults to 1).
    write_csv(path, [])
    empty = run(source=source, update_policy="replace")
    assert empty.is_failed() and "min_rows" in (empty.message or "")
    assert records(engine) == before


def test_database_failure_midway_leaves_no_trace(
    sshd: Any, sftp_block: str, engine: sa.Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    rows = [[f"K{i:04d}", "N", f"212736{i:04d}", "", "", ""] for i in range(300)]
    write_csv(sshd.home / "midway" / "leads.csv", rows)
    monkeypatch.setattr(list_steps, "LIST_CHUNK_ROWS", 100)  # read by open_list_file
    calls: list[int] = []
    real_add = BulkWriter.add

    def failing_add(self: BulkWriter, rows: Any) -> int:
        calls.append(len(rows))
        if len(calls) == 2:
            raise sa.exc.OperationalError("COPY", {}, Exception("connection lost (injected)"))
        return real_add(self, rows)

    monkeypatch.setattr(BulkWriter, "add", failing_add)
    state = run(source=f"sftp://{sftp_block}/midway/leads.csv")
    assert state.is_failed() and "injected" in (state.message or "")
    assert "DatabaseError" in (state.message or "") and "'Spring Leads'" in (state.message or "")
    assert calls == [100, 100]  # the first chunk was in, the second failed
    assert not list_exists(engine)
    with engine.connect() as conn:
        assert conn.scalar(sa.select(sa.func.count()).select_from(ListImport)) == 0


def test_bad_files_name_file_row_and_column(sshd: Any, sftp_block: str, engine: sa.Engine) -> None:
    write_csv(sshd.home / "bad" / "nocol.csv", [["A1", "Ann"]], header=["Account No", "First Name"])
    state = run(source=f"sftp://{sftp_block}/bad/nocol.csv")
    assert state.is_failed()
    assert "nocol.csv" in (state.message or "") and "'Mobile'" in (state.message or "")
    long_zip = [["A1", "Ann", "2127365000", "", "9" * 50, ""]]
    write_csv(sshd.home / "bad" / "longzip.csv", long_zip)
    state = run(source=f"sftp://{sftp_block}/bad/longzip.csv")
    assert state.is_failed()
    assert "file 'longzip.csv', row 2, column 'ZIP'" in (state.message or "")
    assert "Traceback" not in (state.message or "")
    assert not list_exists(engine)


def test_parameters_are_checked_before_anything(
    sshd: Any, sftp_block: str, engine: sa.Engine
) -> None:
    write_csv(sshd.home / "params" / "leads.csv", GOOD)
    state = run(source=f"sftp://{sftp_block}/params/leads.csv", update_policy="merge")
    # Prefect refuses the value by the parameter's type, before the flow's body runs.
    assert state.is_failed()
    assert "update_policy: Input should be 'append', 'update' or 'replace'" in (
        state.message or ""
    )
    assert artifacts(state, OUTCOME_ARTIFACT_KEY) == []
    assert task_runs(state) == {}  # nothing was fetched
    state = run(source=f"sftp://{sftp_block}/params/leads.csv", scrub_exclusions=["no-such-dnc"])
    assert state.is_failed() and "'no-such-dnc'" in (state.message or "")
    assert not list_exists(engine)


# --- scrub --------------------------------------------------------------------------------------


def test_scrub_exclusions(sshd: Any, sftp_block: str, engine: sa.Engine) -> None:
    with engine.begin() as conn:
        dnc = conn.execute(
            sa.insert(ExclusionList)
            .values(name="dnc", case_sensitive=False)
            .returning(ExclusionList.id)
        ).scalar_one()
        conn.execute(sa.insert(Exclusion).values(exclusion_list_id=dnc, key_value="a2"))
    write_csv(sshd.home / "scrub" / "leads.csv", GOOD + BAD)
    outcome = run(source=f"sftp://{sftp_block}/scrub/leads.csv", scrub_exclusions=["dnc"]).result()
    assert (outcome.loaded, outcome.excluded, outcome.rejected, outcome.rows_read) == (2, 1, 3, 6)
    assert sorted(records(engine)) == ["A1", "A3"]


# --- the source and its server ----------------------------------------------------------------


@pytest.mark.parametrize("action", ["keep", "delete", "archive:done/lists"])
def test_after_import_on_the_real_sshd(
    sshd: Any, sftp_block: str, engine: sa.Engine, action: str
) -> None:
    folder = f"after-{action.split(':')[0]}"
    path = write_csv(sshd.home / folder / "leads.csv", GOOD)
    payload = path.read_bytes()
    outcome = run(source=f"sftp://{sftp_block}/{folder}/leads.csv", after_import=action).result()
    assert outcome.loaded == 3
    if action == "keep":
        assert path.read_bytes() == payload and "after_import" not in outcome.extra
    elif action == "delete":
        assert not path.exists() and outcome.extra["after_import"] == "deleted"
    else:
        assert not path.exists()
        assert (sshd.home / "done" / "lists" / "leads.csv").read_bytes() == payload
        assert outcome.extra["after_import"] == "archived to done/lists/leads.csv"


def test_unknown_host_key_fails_without_retrying(sshd: Any, engine: sa.Engine) -> None:
    SftpServer(
        host=sshd.host, port=sshd.port, username=sshd.username, private_key=sshd.private_key
    ).save("no-host-key", overwrite=True)
    write_csv(sshd.home / "hk" / "leads.csv", GOOD)
    state = run(source="sftp://no-host-key/hk/leads.csv")
    assert (
        state.is_failed()
        and "host key" in (state.message or "")
        and "unknown" in (state.message or "")
    )
    assert task_runs(state) == {"fetch_list_file": 1}  # not retried: a retry cannot fix it
    assert not list_exists(engine)


def test_missing_file_is_retried_three_times(sshd: Any, sftp_block: str, engine: sa.Engine) -> None:
    state = run(source=f"sftp://{sftp_block}/nowhere/leads.csv")
    assert state.is_failed() and "nowhere/leads.csv" in (state.message or "")
    assert task_runs(state) == {"fetch_list_file": 3}


def test_password_never_appears(sshd: Any, engine: sa.Engine) -> None:
    secret = "Pa55-word-NEVER-shown"
    SftpServer(
        host=sshd.host,
        port=sshd.port,
        username="nobody-here",
        password=secret,
        known_host_keys=sshd.known_hosts,
    ).save("with-password", overwrite=True)
    state = run(source="sftp://with-password/leads.csv")
    assert state.is_failed() and "refused" in (state.message or "")
    assert secret not in (state.message or "")
    assert secret not in run_logs(state)
    for artifact in artifacts(state):
        assert secret not in json.dumps(artifact.data, default=str)
        assert secret not in (artifact.description or "")


def test_date_template_local_xlsx_and_auto_mapping(tmp_path: Path, engine: sa.Engine) -> None:
    from datetime import UTC, datetime

    from openpyxl import Workbook

    book = Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.append(["Account", "Phone1", "ZIP", "Tier"])
    sheet.append(["X1", 2127365000, "02134", "gold"])  # a numeric phone cell, a text ZIP
    sheet.append(["X2", "+44 20 7183 8750", "10001", None])
    today = datetime.now(UTC).strftime("%Y%m%d")  # an ad-hoc run is scheduled now
    book.save(tmp_path / f"leads_{today}.xlsx")
    state = run(source=str(tmp_path / "leads_{date:%Y%m%d}.xlsx"), mapping=None)
    assert state.is_completed(), state.message
    outcome = state.result()
    assert outcome.loaded == 2 and outcome.extra["format"] == "xlsx"
    got = records(engine)
    assert got["X1"]["phone1"] == "+12127365000" and got["X1"]["zip"] == "02134"
    assert got["X1"]["custom"] == {"Tier": "gold"} and got["X2"]["phone1"] == "+442071838750"
