"""The export-campaign-results flow when it crashes or a step fails midway: each result
lands in exactly one file, whether the run is rerun, retried, or its delivery retried.

On the real Prefect harness, the real sshd, SQLite and PostgreSQL, like
``test_results_export.py``.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from support.results_export_support import (  # noqa: F401 (fixtures, by their names)
    Remote,
    fast_flows_fixture,
    no_delivery_retries,
    remote_fixture,
    seeded_fixture,
)
from support.results_support import (
    CAMPAIGN,
    add_attempts,
    attempt_ids,
    exports,
    final_files,
    read_csv,
    watermark,
)

import flows.results_export as results_export
from blocks.sftp import SftpSession
from contact_center.exceptions import DatabaseError, DeliveryFailed, SourceUnavailable
from flows.results_export import export_campaign_results


def fail_once(
    monkeypatch: pytest.MonkeyPatch, owner: Any, name: str, error: Exception
) -> list[int]:
    """Make ``owner.name`` raise ``error`` on its first call only; count the calls."""
    real = getattr(owner, name)
    calls: list[int] = []

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        if len(calls) == 1:
            raise error
        return real(*args, **kwargs)

    monkeypatch.setattr(owner, name, wrapper)
    return calls


def test_crash_between_upload_and_rename_then_rerun(
    engine: sa.Engine,
    seeded: dict[str, Any],
    remote: Remote,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    no_delivery_retries(monkeypatch)
    folder = remote.folder
    fail_once(monkeypatch, SftpSession, "rename", SourceUnavailable("connection lost"))
    destination = remote.destination
    with pytest.raises(DeliveryFailed, match="connection lost"):
        export_campaign_results(CAMPAIGN, destination)
    assert final_files(folder) == {}  # only the hidden temporary file is there
    assert [p.name for p in folder.iterdir()][0].endswith(".csv.part")
    assert watermark(engine) is None
    (pending,) = exports(engine)
    assert pending.status == "pending"
    # Results written meanwhile; the rerun resumes the interrupted window and name...
    late = add_attempts(
        engine,
        seeded["list_id"],
        [{"record_key": "A1", "recorded_at": datetime.now(UTC), "record_disposition": "Busy"}],
    )
    resumed = export_campaign_results(CAMPAIGN, destination)
    assert resumed.extra["resumed"] is True and resumed.rows_read == 5
    assert list(final_files(folder)) == [pending.file_name]
    # ... and the next run takes the rest: each result in exactly one file.
    export_campaign_results(CAMPAIGN, destination)
    ids = attempt_ids(final_files(folder))
    assert sorted(ids) == sorted(seeded["ids"] + late) and len(ids) == len(set(ids))
    assert [e.status for e in exports(engine)] == ["delivered", "delivered"]


def test_crash_after_rename_before_recording_then_rerun(
    engine: sa.Engine, seeded: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "out"
    fail_once(monkeypatch, results_export, "complete_export", DatabaseError("database went away"))
    with pytest.raises(DatabaseError, match="went away"):
        export_campaign_results(CAMPAIGN, str(folder))
    (name,) = final_files(folder)  # renamed into place, but not recorded
    assert watermark(engine) is None
    late = add_attempts(
        engine,
        seeded["list_id"],
        [{"record_key": "A2", "recorded_at": datetime.now(UTC), "record_disposition": "Busy"}],
    )
    export_campaign_results(CAMPAIGN, str(folder))
    assert list(final_files(folder)) == [name]  # the same file, overwritten, not a second one
    export_campaign_results(CAMPAIGN, str(folder))
    ids = attempt_ids(final_files(folder))
    assert sorted(ids) == sorted(seeded["ids"] + late) and len(ids) == len(set(ids))


def test_retry_of_the_same_run_exports_the_same_window(
    engine: sa.Engine,
    seeded: dict[str, Any],
    remote: Remote,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    no_delivery_retries(monkeypatch)
    calls = fail_once(monkeypatch, SftpSession, "rename", SourceUnavailable("connection lost"))
    retrying = export_campaign_results.with_options(retries=1, retry_delay_seconds=0)
    state = retrying(CAMPAIGN, remote.destination, return_state=True)
    outcome = state.result()
    assert state.is_completed() and len(calls) == 2
    (name,) = final_files(remote.folder)
    end = datetime.fromisoformat(outcome.extra["window_end"])
    (export,) = exports(engine)
    assert name.endswith(f"_{end:%Y%m%d%H%M%S}_{export.id}.csv") and outcome.rows_read == 5
    assert export.window_end == end


def test_the_delivery_step_retries(
    engine: sa.Engine,
    seeded: dict[str, Any],
    remote: Remote,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls = fail_once(monkeypatch, SftpSession, "rename", SourceUnavailable("connection lost"))
    outcome = export_campaign_results(CAMPAIGN, remote.destination)
    assert outcome.status == "completed" and len(calls) == 2
    assert len(final_files(remote.folder)) == 1


def test_upload_cut_midway_leaves_no_final_file(
    engine: sa.Engine,
    seeded: dict[str, Any],
    remote: Remote,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    no_delivery_retries(monkeypatch)
    real_put = SftpSession.put

    def cut_put(self: SftpSession, source: Any, path: str, progress: Any = None) -> int:
        # Write the first half for real, then lose the connection.
        data = source.read()
        with self.raw().open(path, "wb") as remote:
            remote.write(data[: len(data) // 2])
        raise SourceUnavailable(f"cannot upload {path!r}: connection reset")

    monkeypatch.setattr(SftpSession, "put", cut_put)
    folder = remote.folder
    destination = remote.destination
    with pytest.raises(DeliveryFailed, match="connection reset"):
        export_campaign_results(CAMPAIGN, destination)
    assert final_files(folder) == {} and watermark(engine) is None
    monkeypatch.setattr(SftpSession, "put", real_put)
    outcome = export_campaign_results(CAMPAIGN, destination)
    (data,) = final_files(folder).values()
    assert len(data) == outcome.bytes and len(read_csv(data)) == 6
