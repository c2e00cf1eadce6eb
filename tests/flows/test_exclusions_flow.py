"""The ``import-exclusions`` flow end to end: files on the real test sshd, both databases."""

from __future__ import annotations

import asyncio
import io
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
import yaml
from prefect.client.orchestration import get_client
from prefect.exceptions import ParameterTypeError
from prefect.settings import PREFECT_FLOWS_HEARTBEAT_FREQUENCY, temporary_settings
from test_exclusions import refusing_key

from contact_center.exceptions import (
    DatabaseError,
    InvalidFile,
    InvalidParameter,
    QualityGateFailed,
)
from contact_center.storage.dialing import dialable_records
from contact_center.storage.exclusions import key_is_excluded
from contact_center.storage.models import (
    CallingList,
    Campaign,
    CampaignExclusionList,
    CampaignList,
    Exclusion,
    ExclusionImport,
    ExclusionList,
    ListRecord,
    utcnow,
)
from flows.exclusion_import import import_exclusions

DOCS = Path(__file__).resolve().parents[2] / "docs" / "exclusions.md"


@pytest.fixture(autouse=True)
def fast_flows() -> Iterator[None]:
    """No heartbeat thread: a sync flow call then takes a fraction of a second."""
    with temporary_settings(updates={PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None}):
        yield


@pytest.fixture
def drop(sshd: Any, sftp_block: str) -> Any:
    """Write a file into the sshd's ``dnc`` folder; returns its sftp:// location."""
    folder = sshd.home / "dnc"
    folder.mkdir(exist_ok=True)
    for old in folder.iterdir():
        if old.is_file():
            old.unlink()

    def write(name: str, content: str | bytes) -> str:
        data = content.encode() if isinstance(content, str) else content
        (folder / name).write_bytes(data)
        return f"sftp://{sftp_block}/dnc/{name}"

    write.folder = folder  # type: ignore[attr-defined]
    return write


def keys_in(engine: sa.Engine, name: str) -> list[str]:
    e, lists = Exclusion.__table__, ExclusionList.__table__
    with engine.connect() as conn:
        rows = conn.execute(
            sa.select(e.c.key_value)
            .join(lists, lists.c.id == e.c.exclusion_list_id)
            .where(lists.c.name == name)
        )
        return sorted(r.key_value for r in rows)


def imports_of(engine: sa.Engine) -> list[Any]:
    with engine.connect() as conn:
        table = ExclusionImport.__table__
        return list(conn.execute(sa.select(table).order_by(table.c.id)))


def test_add_then_replace_with_counts(engine: sa.Engine, drop: Any) -> None:
    first = drop("dnc_1.csv", "Account,Name\n 1001 ,a\n1002,b\n1002,dup\n,blank\n1003,c\n")
    outcome = import_exclusions("Global DNC", source=first, key_column=" account ")
    assert outcome.status == "completed"
    assert (outcome.rows_read, outcome.loaded, outcome.updated, outcome.removed) == (5, 3, 0, 0)
    assert (outcome.rejected, outcome.rejects_by_reason) == (1, {"missing_key": 1})
    assert outcome.extra["duplicates"] == 1
    assert outcome.bytes == len((drop.folder / "dnc_1.csv").read_bytes())
    assert outcome.files[0] == first and outcome.sha256
    rejects = Path(outcome.files[1]).read_text()
    assert rejects.splitlines() == ["value,row,reason", ",5,missing_key"]
    assert keys_in(engine, "Global DNC") == ["1001", "1002", "1003"]

    second = drop("dnc_2.csv", "account\n1003\n1004\n")
    outcome = import_exclusions("Global DNC", source=second)
    assert (outcome.loaded, outcome.updated, outcome.removed) == (1, 1, 0)
    assert keys_in(engine, "Global DNC") == ["1001", "1002", "1003", "1004"]

    outcome = import_exclusions("Global DNC", source=second, update_policy="replace")
    assert (outcome.loaded, outcome.updated, outcome.removed) == (0, 2, 2)
    assert keys_in(engine, "Global DNC") == ["1003", "1004"]

    rows = imports_of(engine)
    assert [(r.step, r.update_policy, r.added, r.renewed, r.removed) for r in rows] == [
        ("import", "add", 3, 0, 0),
        ("import", "add", 1, 1, 0),
        ("import", "replace", 0, 2, 2),
    ]
    assert rows[0].file_name == "dnc_1.csv" and rows[0].duplicates == 1 and rows[0].rejected == 1


def test_expiry_from_import_time_and_column(engine: sa.Engine, drop: Any) -> None:
    before = utcnow()
    import_exclusions("dnc", source=drop("a.csv", "account\nk1\n"), expires_after_days=2)
    after = utcnow()
    with engine.connect() as conn:
        (expires,) = conn.execute(sa.select(Exclusion.__table__.c.expires_at)).one()
    assert before + timedelta(days=2) <= expires <= after + timedelta(days=2)

    text = "account,until\nk2,2031-01-31\nk3,\nk4,someday\n"
    outcome = import_exclusions(
        "dnc", source=drop("b.csv", text), expiry_column="UNTIL", expires_after_days=None
    )
    assert outcome.rejects_by_reason == {"invalid_expiry": 1}
    table = Exclusion.__table__
    with engine.connect() as conn:
        got = dict(conn.execute(sa.select(table.c.key_value, table.c.expires_at)).all())
    assert got["k2"] == datetime(2031, 2, 1, tzinfo=UTC) and got["k3"] is None


def seed_campaign(engine: sa.Engine) -> None:
    with engine.begin() as conn:
        conn.execute(sa.insert(Campaign.__table__).values(id=1, name="Spring"))
        conn.execute(sa.insert(CallingList.__table__).values(id=1, name="Leads"))
        conn.execute(
            sa.insert(CampaignList.__table__).values(campaign_id=1, list_id=1, enabled=True)
        )
        conn.execute(
            sa.insert(ListRecord.__table__),
            [{"list_id": 1, "record_key": k, "account": k} for k in ("1001", "1002", "ab-1")],
        )


def dialable(engine: sa.Engine, now: datetime | None = None) -> list[str]:
    with engine.connect() as conn:
        return sorted(r.record_key for r in conn.execute(dialable_records(conn, "Spring", now=now)))


def test_dialable_records_before_after_import_and_expiry(engine: sa.Engine, drop: Any) -> None:
    seed_campaign(engine)
    source = drop("dnc.csv", "account\n1001\nAB-1\n")
    import_exclusions("dnc", source=source, case_sensitive=False, expires_after_days=1)
    assert dialable(engine) == ["1001", "1002", "ab-1"]  # not linked to the campaign yet
    with engine.begin() as conn:
        list_id = conn.execute(sa.select(ExclusionList.__table__.c.id)).scalar_one()
        conn.execute(
            sa.insert(CampaignExclusionList.__table__).values(
                campaign_id=1, exclusion_list_id=list_id
            )
        )
    # Case-insensitive: "AB-1" in the file excludes record "ab-1".
    assert dialable(engine) == ["1002"]
    # A day and a bit later the exclusions have expired and have no effect.
    assert dialable(engine, utcnow() + timedelta(days=1, minutes=1)) == ["1001", "1002", "ab-1"]
    # The list import's scrub matches the same way: by name, on the key value.
    records = ListRecord.__table__
    scrub = sa.select(records.c.record_key).where(
        key_is_excluded(records.c.account, exclusion_list_names=["dnc"], now=utcnow())
    )
    with engine.connect() as conn:
        assert sorted(conn.execute(scrub).scalars()) == ["1001", "ab-1"]
    # The daily reset empties the list: everything is dialable again.
    outcome = import_exclusions("dnc", step="reset")
    assert (outcome.step, outcome.removed) == ("reset", 2)
    assert dialable(engine) == ["1001", "1002", "ab-1"]
    assert [r.step for r in imports_of(engine)] == ["import", "reset"]


def test_min_rows_gate_and_empty_replace(engine: sa.Engine, drop: Any) -> None:
    import_exclusions("dnc", source=drop("full.csv", "account\n1\n2\n"))
    empty = drop("empty.csv", "account\n")
    with pytest.raises(QualityGateFailed, match=r"0 valid keys, fewer than min_rows=1"):
        import_exclusions("dnc", source=empty, update_policy="replace")
    assert keys_in(engine, "dnc") == ["1", "2"]
    with pytest.raises(QualityGateFailed, match=r"max_removed_ratio.*remove 2 of the 2 keys"):
        import_exclusions("dnc", source=empty, update_policy="replace", min_rows=0)
    assert keys_in(engine, "dnc") == ["1", "2"]
    outcome = import_exclusions(
        "dnc", source=empty, update_policy="replace", min_rows=0, force=True
    )
    assert outcome.removed == 2 and keys_in(engine, "dnc") == []


def test_bad_files_are_named_and_change_nothing(engine: sa.Engine, drop: Any) -> None:
    import_exclusions("dnc", source=drop("ok.csv", "account\nkeep\n"))
    wrong_column = drop("cols.csv", "acct_no\n1\n")
    with pytest.raises(InvalidFile, match=r"'cols.csv'.*column 'account'"):
        import_exclusions("dnc", source=wrong_column)
    workbook = io.BytesIO()
    import openpyxl

    book = openpyxl.Workbook()
    book.active.append(["account"])
    book.save(workbook)
    xlsx_named_csv = drop("dnc.csv", workbook.getvalue())
    with pytest.raises(InvalidFile, match=r"'dnc.csv'.*ZIP archive"):
        import_exclusions("dnc", source=xlsx_named_csv, update_policy="replace", min_rows=0)
    assert keys_in(engine, "dnc") == ["keep"]
    assert len(imports_of(engine)) == 1


def test_database_failure_midway_changes_nothing(engine: sa.Engine, drop: Any) -> None:
    import_exclusions("dnc", source=drop("a.csv", "account\na\nb\n"), expires_after_days=5)
    with engine.connect() as conn:
        before = conn.execute(sa.select(Exclusion.__table__).order_by("key_value")).all()
    with (
        refusing_key(engine) as bad,
        pytest.raises(DatabaseError, match=r"loading exclusion list 'dnc' failed.*key refused"),
    ):
        import_exclusions(
            "dnc", source=drop("b.csv", f"account\nb\nc\n{bad}\n"), update_policy="replace"
        )
    with engine.connect() as conn:
        after = conn.execute(sa.select(Exclusion.__table__).order_by("key_value")).all()
    assert after == before
    assert len(imports_of(engine)) == 1


def test_glob_takes_new_files_and_after_import(
    engine: sa.Engine, drop: Any, sftp_block: str
) -> None:
    drop("dnc_20260301.csv", "account\n1\n")
    source = f"sftp://{sftp_block}/dnc/dnc_*.csv"
    outcome = import_exclusions("dnc", source=source, after_import="archive:dnc/done")
    assert outcome.extra["after_import"] == "archived to dnc/done/dnc_20260301.csv"
    assert (drop.folder / "done" / "dnc_20260301.csv").exists()
    drop("dnc_20260302.csv", "account\n2\n")
    outcome = import_exclusions("dnc", source=source, after_import="delete")
    assert outcome.files[0].endswith("dnc_20260302.csv") and outcome.loaded == 1
    assert not (drop.folder / "dnc_20260302.csv").exists()
    assert keys_in(engine, "dnc") == ["1", "2"]


def test_list_import_scrubs_with_the_imported_exclusions(engine: sa.Engine, drop: Any) -> None:
    """The two flows together: the list import's scrub sees what this flow loaded."""
    from flows.calling_list_import import import_calling_list

    leads = drop(
        "leads.csv",
        "account,phone1\nA1,2127365000\nA2,2127365001\nA3,2127365002\nA4,2127365003\n",
    )
    # "a1" (folded) is current; "A4" expired yesterday, so it has no effect.
    dnc = drop("dnc.csv", "Account,Until\nA1,\nA4,2000-01-01\n")
    import_exclusions("dnc", source=dnc, case_sensitive=False, expiry_column="until")
    outcome = import_calling_list("Leads", source=leads, scrub_exclusions=["dnc"])
    assert (outcome.loaded, outcome.excluded) == (3, 1)
    records = ListRecord.__table__
    with engine.connect() as conn:
        loaded = sorted(conn.execute(sa.select(records.c.record_key)).scalars())
    assert loaded == ["A2", "A3", "A4"]
    # After the daily reset nothing is scrubbed any more.
    import_exclusions("dnc", step="reset")
    outcome = import_calling_list("Leads", source=leads, scrub_exclusions=["dnc"], force=True)
    assert outcome.excluded == 0
    with engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(records)).scalar_one() == 4


@pytest.mark.parametrize(
    "params, error, match",
    [
        ({"source": None}, InvalidParameter, "source is required"),
        ({"step": "purge"}, ParameterTypeError, "step: Input should be 'import' or 'reset'"),
        ({"update_policy": "append"}, ParameterTypeError, "update_policy: Input should be 'add'"),
        ({"expires_after_days": 0}, ParameterTypeError, "expires_after_days: Input should be"),
        ({"min_rows": -1}, ParameterTypeError, "min_rows: Input should be greater than or equal"),
        ({"match_field": "email"}, ParameterTypeError, "match_field: Input should be 'account'"),
        ({"after_import": "move"}, ParameterTypeError, "after_import: String should match"),
        ({"format": "json"}, ParameterTypeError, "format: Input should be 'auto'"),
        ({"encoding": "klingon"}, InvalidParameter, "encoding 'klingon' is not known"),
    ],
)
def test_invalid_parameters(params: dict[str, Any], error: type[Exception], match: str) -> None:
    kwargs: dict[str, Any] = {"exclusion_list": "dnc", "source": "dnc.csv", **params}
    with pytest.raises(error, match=match):
        import_exclusions(**kwargs)


def test_reset_of_unknown_list_is_skipped(engine: sa.Engine) -> None:
    outcome = import_exclusions("Nope", step="reset")
    assert outcome.status == "skipped" and "no exclusion list named 'Nope'" in outcome.message
    assert imports_of(engine) == []


def test_runs_in_the_task_log_with_their_step(engine: sa.Engine, drop: Any) -> None:
    from runlog.history import task_log

    name = f"VIP DNC {engine.dialect.name}"  # the Prefect server is shared by the session
    content = "account\n" + "\n".join(str(k) for k in range(1000, 2000)) + "\n"
    imported = import_exclusions(name, source=drop("v.csv", content), return_state=True)
    reset = import_exclusions(name, step="reset", return_state=True)
    with get_client(sync_client=True) as client:
        runs = [client.read_flow_run(s.state_details.flow_run_id) for s in (imported, reset)]
    assert [r.name for r in runs] == [f"{name} · import", f"{name} · reset"]
    rows = task_log(object_name=name, sort="start_time", descending=False)
    assert [(r.type, r.step, r.result) for r in rows] == [
        ("Import exclusions by account", "import", "completed"),
        ("Import exclusions by account", "reset", "completed"),
    ]
    assert rows[0].size_kb == pytest.approx(len(content) / 1024, abs=0.1)


# --- the daily reset's schedule across DST ------------------------------------------------


def docs_deployments() -> list[dict[str, Any]]:
    text = DOCS.read_text()
    block = re.search(r"```yaml\n(.*?)```", text, re.S)
    assert block, "docs/exclusions.md has a prefect.yaml example"
    return list(yaml.safe_load(block.group(1))["deployments"])


@pytest.mark.parametrize(
    "start, offsets",
    [
        # 2026-03-08: clocks spring forward in New York (EST -5 -> EDT -4).
        (datetime(2026, 3, 6, 12, tzinfo=UTC), [-5, -5, -4, -4]),
        # 2026-11-01: clocks fall back (EDT -4 -> EST -5).
        (datetime(2026, 10, 30, 12, tzinfo=UTC), [-4, -4, -5, -5]),
    ],
)
def test_daily_reset_stays_at_local_midnight_across_dst(
    start: datetime, offsets: list[int]
) -> None:
    """The reset schedule of the docs' example, computed as Prefect's scheduler does."""
    from zoneinfo import ZoneInfo

    from prefect.server.schemas.schedules import CronSchedule

    reset = next(
        s
        for d in docs_deployments()
        for s in d.get("schedules", [])
        if s.get("parameters", {}).get("step") == "reset"
    )
    assert reset["timezone"] == "America/New_York"
    schedule = CronSchedule(cron=reset["cron"], timezone=reset["timezone"])
    dates = asyncio.run(schedule.get_dates(n=4, start=start))
    local = [d.astimezone(ZoneInfo("America/New_York")) for d in dates]
    assert [(d.hour, d.minute) for d in local] == [(0, 0)] * 4
    assert [int(d.utcoffset().total_seconds() // 3600) for d in local] == offsets
    assert [d.date() for d in local] == [(start + timedelta(days=i + 1)).date() for i in range(4)]
