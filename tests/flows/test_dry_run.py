"""Dry runs of the two imports: the counts of the real import, and nothing changed.

Real Prefect server, real SQLite and PostgreSQL (``db_url``), real files; the CLI's
``cctasks preview`` runs a real deployment of the list import (a thread plays the
worker) and its output is checked.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import pytest
import sqlalchemy as sa
from prefect.client.schemas.objects import State
from prefect.logging.handlers import APILogWorker
from rich.console import Console
from support.tasklog_support import deploy, execute_next_run, unique
from test_calling_list_import import (
    BAD,
    GOOD,
    LIST,
    MAPPING,
    artifacts,
    recorded_outcome,
    run,
    run_id,
    run_logs,
    write_csv,
)
from typer.testing import CliRunner

from cli.main import app
from cli.preview import read_preview, render_preview
from contact_center.outcome import Outcome
from contact_center.preview import PREVIEW_ROWS, Preview
from contact_center.settings import PREVIEW_ARTIFACT_KEY
from contact_center.storage.models import Base
from flows.calling_list_import import import_calling_list
from flows.exclusion_import import import_exclusions

# The tables a run could change (every table of the contact-centre database).
TABLES = [t.name for t in Base.metadata.sorted_tables]


@pytest.fixture(autouse=True)
def _info_logs() -> Iterator[None]:
    """The runs' INFO lines reach the server (the suite logs only warnings)."""
    loggers = [logging.getLogger(n) for n in ("prefect.flow_runs", "prefect.task_runs")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.INFO)
    yield
    for logger, level in zip(loggers, levels, strict=True):
        logger.setLevel(level)


def snapshot(engine: sa.Engine) -> dict[str, Any]:
    """Row counts of every table and a digest of every row of every table."""
    found: dict[str, Any] = {}
    with engine.connect() as conn:
        for table in Base.metadata.sorted_tables:
            rows = conn.execute(sa.select(table)).all()
            digest = hashlib.sha256()
            for row in sorted(json.dumps(list(r), default=str) for r in rows):
                digest.update(row.encode())
            found[table.name] = (len(rows), digest.hexdigest())
    return found


def preview_of(state: State) -> Preview:
    found = artifacts(state, PREVIEW_ARTIFACT_KEY)
    assert len(found) == 1
    rows = json.loads(found[0].data)
    return Preview.from_dict(json.loads(rows[0]["preview"]))


def flushed_logs(state: State) -> str:
    """The run's logs, once the log handler has sent them to the server."""
    APILogWorker.drain_all(timeout=5)
    deadline = time.monotonic() + 30
    while "dry run" not in (logs := run_logs(state)) and time.monotonic() < deadline:
        time.sleep(0.2)
    return logs


def many_rows(count: int, start: int = 0) -> list[list[str]]:
    return [
        [f"B{i}", f"Name{i}", f"212736{i % 10000:04d}", "", "10001", f"p{i}"]
        for i in range(start, start + count)
    ]


def test_list_dry_run_changes_nothing_and_counts_as_the_import(
    tmp_path: Path, engine: sa.Engine
) -> None:
    first = write_csv(tmp_path / "drop" / "first.csv", GOOD + many_rows(30))
    assert run(source=str(first)).is_completed()
    # The second file: one record changed, 20 kept, 10 gone, 25 new, 3 rejected.
    changed = [["A1", "Ann-Marie", "(212) 736-5000", "", "02134", "gold"], GOOD[1], GOOD[2]]
    second = write_csv(
        tmp_path / "drop" / "second.csv", changed + many_rows(20) + many_rows(25, 100) + BAD
    )
    before = snapshot(engine)
    params = {"source": str(second), "update_policy": "replace", "max_removed_ratio": 0.5}
    dry = run(**params, dry_run=True, after_import="delete")
    assert dry.is_completed(), dry.message
    assert snapshot(engine) == before  # no records, no import history, no checksum
    assert second.exists()  # after_import is not applied
    outcome = dry.result()
    assert isinstance(outcome, Outcome)
    assert outcome.step == "dry run" and outcome.extra["dry_run"] is True
    assert outcome.message is not None and outcome.message.startswith("dry run, nothing changed")
    assert recorded_outcome(dry).step == "dry run"
    assert not any(f.endswith(".csv") and "rejects" in f for f in outcome.files)
    assert "dry run (rolled back)" in flushed_logs(dry)
    preview = preview_of(dry)
    # The real import that follows: the same counts.
    real = run(**params)
    assert real.is_completed(), real.message
    done = real.result()
    counts = {k: getattr(done, k) for k in ("rows_read", "loaded", "updated", "unchanged")}
    counts |= {k: getattr(done, k) for k in ("removed", "rejected", "excluded")}
    assert counts == {
        "rows_read": 51, "loaded": 25, "updated": 1, "unchanged": 22,
        "removed": 10, "rejected": 3, "excluded": 0,
    }  # fmt: skip
    assert {k: preview.counts[k] for k in counts} == counts
    assert (outcome.loaded, outcome.updated, outcome.removed) == (25, 1, 10)
    assert preview.rejects_by_reason == done.rejects_by_reason
    assert snapshot(engine) != before
    # What the preview holds.
    assert preview.gates == {"min_rows": None, "max_reject_ratio": None, "max_removed_ratio": None}
    assert preview.detected == {
        "format": "csv", "encoding": "utf-8", "delimiter": ",", "encrypted": False,
    }  # fmt: skip
    assert preview.custom_fields == ["Plan"]
    assert len(preview.rows) == PREVIEW_ROWS
    assert preview.rows[0]["record_key"] == "A1" and preview.rows[0]["first_name"] == "Ann-Marie"
    assert preview.rows[0]["phone1"] == "+12127365000"
    assert preview.rows[1]["phone1"] == "+442071838750"
    assert json.loads(preview.rows[0]["custom_fields"]) == {"Plan": "gold"}
    assert [(r["row"], r["reason"]) for r in preview.rejected_rows] == [
        ("50", "missing_key"), ("51", "no_valid_phone"), ("52", "duplicate_key"),
    ]  # fmt: skip
    assert preview.rejected_rows[0]["First Name"] == "No Key"


def test_dry_run_of_a_new_list_creates_nothing(tmp_path: Path, engine: sa.Engine) -> None:
    source = write_csv(tmp_path / "drop" / "new.csv", GOOD + BAD)
    before = snapshot(engine)
    state = run(source=str(source), dry_run=True)
    assert state.is_completed(), state.message
    assert snapshot(engine) == before
    assert preview_of(state).counts["loaded"] == 3
    # The same file again: a real run would import it (it is not the last import).
    assert run(source=str(source)).result().loaded == 3


def test_a_failing_gate_is_reported_not_raised(tmp_path: Path, engine: sa.Engine) -> None:
    first = write_csv(tmp_path / "drop" / "full.csv", many_rows(40))
    assert run(source=str(first)).is_completed()
    small = write_csv(tmp_path / "drop" / "small.csv", many_rows(4) + BAD)
    before = snapshot(engine)
    params = {"source": str(small), "update_policy": "replace", "max_reject_ratio": 0.2}
    dry = run(**params, dry_run=True)
    assert dry.is_completed(), dry.message
    assert snapshot(engine) == before
    preview = preview_of(dry)
    assert preview.gates["min_rows"] is None
    # BAD's A1 is no duplicate here: 2 of the 7 rows are rejected, A1 is new.
    assert "2 of 7 rows rejected" in (preview.gates["max_reject_ratio"] or "")
    assert "would remove 36 of the 40 records" in (preview.gates["max_removed_ratio"] or "")
    assert not preview.gates_pass
    assert preview.counts["removed"] == 36
    outcome = recorded_outcome(dry)
    assert outcome.extra["gates"] == "fail"
    # The real run fails on the first gate and changes nothing.
    real = run(**params)
    assert real.is_failed() and "max_reject_ratio" in (real.message or "")
    assert snapshot(engine) == before


def test_dry_run_of_the_same_file_as_the_last_import(tmp_path: Path, engine: sa.Engine) -> None:
    source = write_csv(tmp_path / "drop" / "same.csv", GOOD)
    assert run(source=str(source)).is_completed()
    before = snapshot(engine)
    dry = run(source=str(source), dry_run=True)
    assert dry.is_completed() and dry.name == "Completed", dry.message
    assert snapshot(engine) == before  # not even a ``skipped`` import row
    preview = preview_of(dry)
    assert preview.counts["unchanged"] == 3
    assert any("same as the last import" in note for note in preview.notes)


def test_exclusion_dry_run_changes_nothing_and_counts_as_the_import(
    tmp_path: Path, engine: sa.Engine
) -> None:
    name = "Company DNC"
    first = tmp_path / "drop" / "dnc1.csv"
    first.parent.mkdir(parents=True, exist_ok=True)
    first.write_text("account\n" + "".join(f"K{i}\n" for i in range(10)), encoding="utf-8")
    first_state = import_exclusions(exclusion_list=name, source=str(first), return_state=True)
    assert first_state.is_completed()
    second = tmp_path / "drop" / "dnc2.csv"
    second.write_text(
        "account\n" + "".join(f"K{i}\n" for i in range(5, 15)) + "  \nK6\n", encoding="utf-8"
    )
    before = snapshot(engine)
    params = {"exclusion_list": name, "source": str(second), "update_policy": "replace"}
    params |= {"max_removed_ratio": 0.6}
    dry = cast(State, import_exclusions(**params, dry_run=True, return_state=True))
    assert dry.is_completed(), dry.message
    assert snapshot(engine) == before
    preview = preview_of(dry)
    real = cast(State, import_exclusions(**params, return_state=True))
    assert real.is_completed(), real.message
    done = real.result()
    assert isinstance(done, Outcome)
    assert (done.loaded, done.updated, done.removed, done.rejected) == (5, 5, 5, 1)
    assert {k: preview.counts[k] for k in ("added", "renewed", "removed", "rejected")} == {
        "added": 5, "renewed": 5, "removed": 5, "rejected": 1,
    }  # fmt: skip
    assert preview.counts["duplicates"] == 1
    assert preview.gates == {"min_rows": None, "max_removed_ratio": None}
    assert [r["key_value"] for r in preview.rows[:3]] == ["K5", "K6", "K7"]
    assert [(r["row"], r["reason"]) for r in preview.rejected_rows] == [("12", "missing_key")]
    assert dry.result().step == "dry run"


def test_preview_renders_every_part(tmp_path: Path, engine: sa.Engine) -> None:
    source = write_csv(tmp_path / "drop" / "show.csv", GOOD + BAD)
    state = run(source=str(source), dry_run=True, min_rows=5)
    preview = read_preview(run_id(state))
    assert preview == preview_of(state)
    console = Console(record=True, width=200)
    assert preview is not None
    render_preview(preview, console)
    text = console.export_text()
    assert f"Dry run of {LIST} ← show.csv: would FAIL; nothing changed" in text
    assert "fewer than min_rows=5" in text and "max_reject_ratio │ pass" in text
    assert re.search(r"rejected: duplicate_key\s+│\s+1 │", text)
    assert "First 3 rejected rows" in text and "No Phone" in text
    assert "First 3 rows as stored" in text and "+442071838750" in text
    assert "Custom fields: Plan" in text and "delimiter ','" in text


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_cctasks_preview_runs_the_deployment_dry(tmp_path: Path, engine: sa.Engine) -> None:
    name = unique("Preview Leads")
    source = write_csv(tmp_path / "drop" / "preview.csv", GOOD + BAD)
    task = unique("preview-import")
    deployment_id = deploy(
        import_calling_list, task, {"list_name": name, "source": str(source), "mapping": MAPPING}
    )
    before = snapshot(engine)
    worker = execute_next_run(import_calling_list, deployment_id)
    result = CliRunner().invoke(
        app,
        ["preview", task, "-p", "update_policy=replace", "--interval", "0.2", "--timeout", "120"],
        env={"COLUMNS": "200"},
    )
    worker.join(60)
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert f"Dry run of {name} ← preview.csv: would pass; nothing changed" in out
    assert re.search(r"rows_read\s+│\s+6 │", out) and re.search(r"loaded\s+│\s+3 │", out)
    assert "No Key" in out and "+12127365000" in out
    assert out.rstrip().splitlines()[-1].startswith("see the run at ")
    assert snapshot(engine) == before
    # dry_run is the command's own: a --param of it is refused before any run.
    refused = CliRunner().invoke(app, ["preview", task, "-p", "dry_run=false"])
    assert refused.exit_code == 2 and "preview sets dry_run itself" in refused.output
