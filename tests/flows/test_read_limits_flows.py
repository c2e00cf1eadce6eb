"""The read limits in the import flows: real sshd, real Prefect, SQLite and PostgreSQL.

A file over a limit fails the run with one message naming the file, the limit and
its setting, and loads nothing: the list is as it was before.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import pytest
import sqlalchemy as sa
from prefect.client.schemas.objects import State
from prefect.settings import PREFECT_FLOWS_HEARTBEAT_FREQUENCY, temporary_settings
from test_calling_list_import import GOOD, HEADER, MAPPING, records
from test_exclusions_flow import imports_of, keys_in
from test_read_limits import one_cell_bomb

from contact_center.storage.models import ListImport
from flows.calling_list_import import import_calling_list
from flows.exclusion_import import import_exclusions

LIST = "Spring Leads"


@pytest.fixture(autouse=True)
def _fast_flows() -> Iterator[None]:
    """No heartbeat thread: a sync flow call then takes a fraction of a second."""
    with temporary_settings(updates={PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None}):
        yield


@pytest.fixture
def folder(sshd: Any) -> Path:
    path = sshd.home / "limits"
    path.mkdir(exist_ok=True)
    for old in path.iterdir():
        old.unlink()
    return cast(Path, path)


def write_list(path: Path, rows: list[list[str]]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(HEADER)
        writer.writerows(rows)
    return path


def import_list(source: str, **parameters: Any) -> State:
    state = import_calling_list(
        list_name=LIST, source=source, mapping=MAPPING, return_state=True, **parameters
    )
    return cast(State, state)


def completed_imports(engine: sa.Engine) -> int:
    with engine.connect() as conn:
        query = (
            sa.select(sa.func.count())
            .select_from(ListImport)
            .where(ListImport.status == "completed")
        )
        return int(conn.scalar(query) or 0)


def test_import_calling_list_over_a_limit_fails_and_changes_nothing(
    folder: Path, sftp_block: str, engine: sa.Engine
) -> None:
    write_list(folder / "first.csv", GOOD)
    assert import_list(f"sftp://{sftp_block}/limits/first.csv").is_completed()
    before = records(engine)
    assert set(before) == {"A1", "A2", "A3"}

    # A value of 2 MB: over the 1 MiB value limit; the list must stay as it was.
    long_value = [["A9", "Ida", "2127365009", "", "", "z" * (2 << 20)]]
    write_list(folder / "long.csv", [*GOOD, ["A5", "Eve", "2127365005", "", "", ""], *long_value])
    state = import_list(f"sftp://{sftp_block}/limits/long.csv", update_policy="replace")
    assert state.is_failed()
    message = state.message or ""
    assert "LimitExceeded: file 'long.csv', row 6, column 'Plan': the value is too long" in message
    assert "CCTASKS_MAX_FIELD_CHARS" in message and len(message) < 600
    assert records(engine) == before and completed_imports(engine) == 1

    # A 1 MB workbook of one 1 GB cell: refused before openpyxl reads it.
    one_cell_bomb(folder / "bomb.xlsx", 1024)
    state = import_list(f"sftp://{sftp_block}/limits/bomb.xlsx", update_policy="replace")
    assert state.is_failed()
    message = state.message or ""
    assert "LimitExceeded: file 'bomb.xlsx', row 2, column 'A'" in message
    assert records(engine) == before and completed_imports(engine) == 1


def test_import_exclusions_over_a_limit_fails_and_changes_nothing(
    folder: Path, sftp_block: str, engine: sa.Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    (folder / "dnc.csv").write_text("account\nk1\nk2\n")
    source = f"sftp://{sftp_block}/limits/dnc.csv"
    assert import_exclusions("Global DNC", source=source).status == "completed"

    (folder / "long.csv").write_text("account\nk3\n" + "k" * (2 << 20) + "\n")
    state = import_exclusions(
        "Global DNC",
        source=f"sftp://{sftp_block}/limits/long.csv",
        update_policy="replace",
        return_state=True,
    )
    assert state.is_failed()
    assert "file 'long.csv', row 3, column 'account': the value is too long" in (
        state.message or ""
    )
    assert keys_in(engine, "Global DNC") == ["k1", "k2"] and len(imports_of(engine)) == 1

    # The limits are settings, read when the file is read.
    (folder / "many.csv").write_text("account\n" + "".join(f"m{i}\n" for i in range(6)))
    monkeypatch.setenv("CCTASKS_MAX_ROWS", "5")
    state = import_exclusions(
        "Global DNC",
        source=f"sftp://{sftp_block}/limits/many.csv",
        update_policy="replace",
        return_state=True,
    )
    assert state.is_failed()
    assert (
        "file 'many.csv', row 7: the file has too many data rows (the limit is 5 rows; "
        "set CCTASKS_MAX_ROWS to change it)"
    ) in (state.message or "")
    assert keys_in(engine, "Global DNC") == ["k1", "k2"] and len(imports_of(engine)) == 1
