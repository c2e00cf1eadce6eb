"""No litter: work folders go on every exit path, a start-up sweep removes those of
ended runs, and rejects are published only for a committed load or marked as failed.

Real Prefect runs (Completed, Failed, Running, Pending) own the leftover folders the
sweep is tested with; the imports read from the real sshd into both databases.
"""

from __future__ import annotations

import csv
import json
import os
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import pytest
import sqlalchemy as sa
from prefect import flow, get_client
from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId
from prefect.client.schemas.objects import State
from prefect.settings import PREFECT_FLOWS_HEARTBEAT_FREQUENCY, temporary_settings
from prefect.states import Completed, Pending, Running
from support.results_support import CAMPAIGN, RECORDS, seed_list

import flows.report_execution as report_flow
import flows.results_export as results_export
from contact_center.exceptions import DeliveryFailed
from contact_center.outcome import Outcome
from contact_center.settings import OUTCOME_ARTIFACT_KEY, get_settings
from contact_center.storage.models import CallingList, Exclusion, ExclusionList, ListRecord
from flows.calling_list_import import import_calling_list
from flows.common.rejects import FAILED_SUFFIX
from flows.common.workdir import sweep_work_folders
from flows.exclusion_import import import_exclusions

MAPPING = {"Account": "account", "Phone": "phone1"}
GOOD = "A1,2127365000\nA2,2127365001\nA3,2127365002\n"
BAD = ",2127365003\nA4,12345\nA1,2127365004\n"  # missing_key, no_valid_phone, duplicate_key
REASONS = {"duplicate_key": 1, "missing_key": 1, "no_valid_phone": 1}


@pytest.fixture(autouse=True)
def _quick_runs() -> Iterator[None]:
    with temporary_settings(updates={PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None}):
        yield


@flow(name="litter-probe")
def probe(fail: bool = False) -> None:
    if fail:
        raise RuntimeError("this run fails on purpose")


def run_id(state: State) -> uuid.UUID:
    flow_run_id = state.state_details.flow_run_id
    assert flow_run_id is not None
    return flow_run_id


def work_folder(run: uuid.UUID | str) -> Path:
    return get_settings().work_root / str(run)


def leftover(run: uuid.UUID | str, age_seconds: float = 0) -> Path:
    """A work folder with a downloaded copy in it, as a killed run leaves it."""
    folder = work_folder(run)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "leads.csv").write_bytes(b"x" * 4096)
    if age_seconds:
        then = time.time() - age_seconds
        os.utime(folder, (then, then))
    return folder


def artifacts_of(state: State) -> list[Any]:
    with get_client(sync_client=True) as client:
        return client.read_artifacts(
            artifact_filter=ArtifactFilter(
                flow_run_id=ArtifactFilterFlowRunId(any_=[run_id(state)])
            )
        )


def recorded_outcome(state: State) -> Outcome:
    (found,) = [a for a in artifacts_of(state) if a.key == OUTCOME_ARTIFACT_KEY]
    return Outcome.from_row(json.loads(found.data)[0])


def rejects_tables(state: State) -> list[Any]:
    """The run's rejects table artifacts (the outcome table has a key, these have none)."""
    return [a for a in artifacts_of(state) if a.type == "table" and a.key is None]


def rejects_files(state: State) -> list[Path]:
    return sorted((get_settings().home / "rejects").glob(f"*-{str(run_id(state))[:8]}*.csv"))


def read_rows(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


# --- the sweep -------------------------------------------------------------------------------


def test_sweep_at_a_flow_start_removes_only_the_folders_of_ended_runs(
    tmp_path: Path, engine: sa.Engine
) -> None:
    completed = run_id(cast(State, probe(return_state=True)))
    failed_state = cast(State, probe(fail=True, return_state=True))
    assert failed_state.is_failed()
    with get_client(sync_client=True) as client:
        running = client.create_flow_run(probe, state=Running()).id
        pending = client.create_flow_run(probe, state=Pending()).id
    gone = [leftover(completed), leftover(run_id(failed_state))]
    gone.append(leftover(uuid.uuid4(), age_seconds=2 * 24 * 3600))  # a run deleted long ago
    stay = [leftover(running), leftover(pending), leftover(uuid.uuid4())]  # unknown, but new
    not_ours = get_settings().work_root / "not-a-run"
    not_ours.mkdir(exist_ok=True)

    (tmp_path / "leads.csv").write_text("Account,Phone\n" + GOOD)
    state = cast(
        State,
        import_calling_list(
            "Sweep", str(tmp_path / "leads.csv"), mapping=MAPPING, return_state=True
        ),
    )
    assert state.is_completed(), state.message
    assert [f for f in gone if f.exists()] == []
    assert all((f / "leads.csv").exists() for f in stay) and not_ours.exists()
    assert not work_folder(run_id(state)).exists()  # its own, removed as it ended
    # Once the running run has ended, the next sweep removes its folder too.
    with get_client(sync_client=True) as client:
        client.set_flow_run_state(running, Completed(), force=True)
    assert work_folder(running) in sweep_work_folders()
    assert work_folder(pending).exists()


# --- work folders on every exit path --------------------------------------------------------


def test_a_failed_export_and_report_remove_their_work_files(
    engine: sa.Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[Path] = []

    def refuse(local_file: Path, *args: Any, **kwargs: Any) -> Any:
        assert local_file.exists()
        seen.append(local_file)
        raise DeliveryFailed("the destination refused the file")

    monkeypatch.setattr(results_export, "deliver", refuse)
    monkeypatch.setattr(
        results_export, "deliver_export", results_export.deliver_export.with_options(retries=0)
    )
    monkeypatch.setattr(report_flow, "deliver", refuse)
    monkeypatch.setattr(
        report_flow, "deliver_report", report_flow.deliver_report.with_options(retries=0)
    )
    seed_list(engine, RECORDS)
    export = cast(
        State,
        results_export.export_campaign_results(CAMPAIGN, str(tmp_path / "out"), return_state=True),
    )
    report = cast(
        State,
        report_flow.run_report(
            report="list-status",
            period="2026-03-07/2026-03-08",
            formats=["csv"],
            destination=str(tmp_path / "out"),
            return_state=True,
        ),
    )
    assert export.is_failed() and report.is_failed()
    # Each rendered its file in its own work folder, which is gone now.
    assert [p.parent for p in seen] == [work_folder(run_id(export)), work_folder(run_id(report))]
    assert not any(p.parent.exists() for p in seen)
    assert not (tmp_path / "out").exists()


# --- rejects ---------------------------------------------------------------------------------


def test_failed_import_marks_its_rejects_and_the_counts_agree(
    sshd: Any, sftp_block: str, engine: sa.Engine
) -> None:
    folder = sshd.home / "litter"
    folder.mkdir(exist_ok=True)
    (folder / "leads.csv").write_text("Account,Phone\n" + GOOD + BAD)
    source = f"sftp://{sftp_block}/litter/leads.csv"
    state = cast(
        State,
        import_calling_list(
            "Litter", source, mapping=MAPPING, max_reject_ratio=0.1, return_state=True
        ),
    )
    assert state.is_failed() and "max_reject_ratio" in (state.message or "")
    with engine.connect() as conn:
        assert conn.scalar(sa.select(sa.func.count()).select_from(ListRecord)) == 0
        assert conn.scalar(sa.select(sa.func.count()).select_from(CallingList)) == 0
    assert not work_folder(run_id(state)).exists()  # the downloaded copy and staged rejects
    (failed,) = rejects_files(state)
    assert failed.name.endswith(FAILED_SUFFIX)
    assert [r["reason"] for r in read_rows(failed)] == [
        "missing_key",
        "no_valid_phone",
        "duplicate_key",
    ]
    outcome = recorded_outcome(state)
    assert (outcome.status, outcome.loaded, outcome.rejected) == ("failed", 0, 3)
    assert outcome.rejects_by_reason == REASONS and str(failed) in outcome.files
    (table,) = rejects_tables(state)
    assert table.description.startswith("FAILED run, nothing loaded: first 3 of the 3 rows")
    assert failed.name in table.description and len(json.loads(table.data)) == 3

    # The same file committed: a plain rejects file, whose rows the outcome counts.
    state = cast(State, import_calling_list("Litter", source, mapping=MAPPING, return_state=True))
    assert state.is_completed(), state.message
    (committed,) = rejects_files(state)
    assert not committed.name.endswith(FAILED_SUFFIX) and len(read_rows(committed)) == 3
    outcome = recorded_outcome(state)
    assert (outcome.loaded, outcome.rejected, outcome.rejects_by_reason) == (3, 3, REASONS)
    (table,) = rejects_tables(state)
    assert table.description.startswith("First 3 of 3 rejected rows of Litter · import")
    assert not work_folder(run_id(state)).exists()


def test_failed_exclusion_import_marks_its_rejects(
    sshd: Any, sftp_block: str, engine: sa.Engine
) -> None:
    folder = sshd.home / "litter"
    folder.mkdir(exist_ok=True)
    (folder / "dnc.csv").write_text("account\nK1\n\n  \nK2\n")
    state = cast(
        State,
        import_exclusions(
            "Litter DNC",
            source=f"sftp://{sftp_block}/litter/dnc.csv",
            min_rows=5,
            return_state=True,
        ),
    )
    assert state.is_failed() and "min_rows" in (state.message or "")
    with engine.connect() as conn:
        assert conn.scalar(sa.select(sa.func.count()).select_from(ExclusionList)) == 0
        assert conn.scalar(sa.select(sa.func.count()).select_from(Exclusion)) == 0
    assert not work_folder(run_id(state)).exists()
    (failed,) = rejects_files(state)
    assert failed.name.endswith(FAILED_SUFFIX)
    outcome = recorded_outcome(state)
    assert outcome.status == "failed" and outcome.rejected == len(read_rows(failed)) > 0
    (table,) = rejects_tables(state)
    assert table.description.startswith("FAILED run, nothing loaded")
