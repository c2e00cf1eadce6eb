"""The load side of the calling-list import, on SQLite and PostgreSQL.

The chunks here are made by hand in the parser's shape (``valid`` + ``rejects``), so
these tests pin the load's own rules: policies, counts, gates, scrub, all or nothing.
"""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import sqlalchemy as sa
from prefect.exceptions import ParameterTypeError

from contact_center.exceptions import (
    DatabaseError,
    InvalidFile,
    InvalidParameter,
    ObjectNotFound,
    QualityGateFailed,
)
from contact_center.parsing.record_fields import FIELD_LENGTHS, RECORD_FIELDS
from contact_center.storage.list_imports import (
    imported_file_names,
    last_import_sha256,
    record_skipped_import,
)
from contact_center.storage.list_load import load_list_records
from contact_center.storage.list_options import ImportOptions
from contact_center.storage.list_results import LoadResult, SourceFile
from contact_center.storage.models import (
    CallingList,
    Exclusion,
    ExclusionList,
    ListImport,
    ListRecord,
)
from flows.calling_list_import import import_calling_list

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


@dataclass
class Parsed:
    """A parsed chunk in the shape of ``contact_center.parsing.lists.ParsedChunk``."""

    valid: pd.DataFrame
    rejects: pd.DataFrame
    invalid_phones: int = 0


def record(key: str, row: int, phone: str = "+12125550100", **fields: Any) -> dict[str, Any]:
    custom = fields.pop("custom", None)
    values: dict[str, Any] = dict.fromkeys(RECORD_FIELDS)
    values.update(account=key, phone1=phone, **fields)
    return {
        "row": row,
        "record_key": key,
        **values,
        "custom_fields": json.dumps(custom) if custom is not None else None,
    }


def chunk(records: list[dict[str, Any]], rejects: list[tuple[int, str]] = ()) -> Parsed:
    columns = ["row", "record_key", *RECORD_FIELDS, "custom_fields"]
    valid = pd.DataFrame(records, columns=columns)
    for column in columns[1:]:
        valid[column] = valid[column].astype("string")
    reject_frame = pd.DataFrame(
        {
            "Account": ["?"] * len(rejects),
            "row": [r for r, _ in rejects],
            "reason": [x for _, x in rejects],
        }
    )
    return Parsed(valid, reject_frame)


def keys(n: int, start: int = 0, prefix: str = "A") -> list[dict[str, Any]]:
    return [record(f"{prefix}{i:05d}", i + 2, first_name=f"n{i}") for i in range(start, start + n)]


def options(list_name: str = "Spring Leads", **params: Any) -> ImportOptions:
    return ImportOptions.from_parameters(list_name=list_name, source="drop/leads.csv", **params)


def source(name: str = "leads.csv", sha: str = "a" * 64) -> SourceFile:
    return SourceFile(name=name, location=f"drop/{name}", sha256=sha, size=1234)


def load(engine: sa.Engine, chunks: list[Parsed] | Iterator[Parsed], **params: Any) -> LoadResult:
    src = params.pop("src", source())
    now = params.pop("now", NOW)
    return load_list_records(engine, chunks, options(**params), src, now=now, flow_run_id="run-1")


def records(engine: sa.Engine, list_name: str = "Spring Leads") -> dict[str, dict[str, Any]]:
    columns = (*RECORD_FIELDS, "custom_fields", "expires_at", "updated_at", "import_id", "id")
    with engine.connect() as conn:
        rows = conn.execute(
            sa.select(ListRecord.record_key, *(getattr(ListRecord, c) for c in columns))
            .join(CallingList, CallingList.id == ListRecord.list_id)
            .where(CallingList.name == list_name)
        ).all()
    return {r[0]: dict(zip(columns, r[1:], strict=True)) for r in rows}


def counts(result: LoadResult) -> tuple[int, ...]:
    return (
        result.rows_read,
        result.loaded,
        result.updated,
        result.unchanged,
        result.removed,
        result.rejected,
        result.excluded,
    )


# --- loading and the policies ------------------------------------------------------------


def test_first_import_creates_the_list_and_records(engine: sa.Engine) -> None:
    first = chunk(
        [record("A1", 2, zip="02134", custom={"Plan": "gold", "Note": "é"}), record("A2", 3)],
        rejects=[(4, "no_valid_phone")],
    )
    second = chunk([record("A3", 5, phone="+442071838750")], rejects=[(6, "duplicate_key")])
    result = load(engine, [first, second], expires_after_days=30)
    assert result.created_list
    assert counts(result) == (5, 3, 0, 0, 0, 2, 0)
    assert result.rejects_by_reason == {"duplicate_key": 1, "no_valid_phone": 1}
    got = records(engine)
    assert sorted(got) == ["A1", "A2", "A3"]
    assert got["A1"]["zip"] == "02134" and got["A3"]["phone1"] == "+442071838750"
    assert got["A1"]["custom_fields"] == {"Plan": "gold", "Note": "é"}
    assert got["A2"]["custom_fields"] is None
    assert got["A1"]["expires_at"] == NOW + timedelta(days=30)
    assert got["A1"]["import_id"] == result.import_id
    with engine.connect() as conn:
        row = conn.execute(sa.select(ListImport.__table__)).one()
        assert (row.status, row.file_name, row.sha256, row.loaded, row.rejected, row.rows_read) == (
            "completed",
            "leads.csv",
            "a" * 64,
            3,
            2,
            5,
        )
        assert row.flow_run_id == "run-1" and row.update_policy == "update"
        assert conn.scalar(sa.select(CallingList.key_field)) == "account"


def test_update_rerun_changes_nothing(engine: sa.Engine) -> None:
    data = [chunk(keys(300)), chunk(keys(200, start=300))]
    load(engine, data)
    before = records(engine)
    again = load(engine, data, now=NOW + timedelta(days=1))
    assert counts(again) == (500, 0, 0, 500, 0, 0, 0)
    assert records(engine) == before  # same ids, same updated_at: nothing was written


def test_update_upserts_and_counts(engine: sa.Engine) -> None:
    load(engine, [chunk([record("A1", 2, custom={"x": "1"}), record("A2", 3), record("A3", 4)])])
    changed = chunk(
        [
            record("A1", 2, custom={"x": "2"}),  # custom field changed
            record("A2", 3, phone="+12125550199"),  # phone changed
            record("A3", 4),  # same
            record("A4", 5),  # new
        ]
    )
    later = NOW + timedelta(hours=1)
    result = load(engine, [changed], now=later)
    assert counts(result) == (4, 1, 2, 1, 0, 0, 0)
    got = records(engine)
    assert got["A1"]["custom_fields"] == {"x": "2"} and got["A2"]["phone1"] == "+12125550199"
    assert got["A1"]["updated_at"] == later and got["A3"]["updated_at"] == NOW
    assert len(got) == 4


def test_append_adds_new_keys_only(engine: sa.Engine) -> None:
    load(engine, [chunk([record("A1", 2, first_name="Ann")])])
    result = load(
        engine,
        [chunk([record("A1", 2, first_name="CHANGED"), record("A2", 3)])],
        update_policy="append",
    )
    assert counts(result) == (2, 1, 0, 1, 0, 0, 0)
    got = records(engine)
    assert got["A1"]["first_name"] == "Ann" and sorted(got) == ["A1", "A2"]


def test_replace_makes_the_list_exactly_the_file(engine: sa.Engine) -> None:
    load(engine, [chunk(keys(5))])
    other = load(engine, [chunk(keys(2))], list_name="Other")  # another list is untouched
    new_file = [record("A00003", 5, first_name="n3"), record("A00004", 6, first_name="new")]
    # 3 of the 5 records go: more than max_removed_ratio (0.5) allows without force.
    result = load(
        engine, [chunk(new_file + [record("B1", 7)])], update_policy="replace", force=True
    )
    assert counts(result) == (3, 1, 1, 1, 3, 0, 0)
    got = records(engine)
    assert sorted(got) == ["A00003", "A00004", "B1"] and got["A00004"]["first_name"] == "new"
    assert len(records(engine, "Other")) == 2 and other.loaded == 2


# --- gates and all or nothing --------------------------------------------------------------


def test_replace_with_an_empty_file_never_wipes_the_list(engine: sa.Engine) -> None:
    load(engine, [chunk(keys(3))])
    before = records(engine)
    with pytest.raises(QualityGateFailed, match=r"min_rows.*0 row\(s\) to load.*min_rows=1"):
        load(engine, [chunk([])], update_policy="replace")
    with pytest.raises(QualityGateFailed, match="min_rows"):
        load(engine, [chunk([], rejects=[(2, "missing_key")])], update_policy="replace")
    assert records(engine) == before
    with engine.connect() as conn:
        assert conn.scalar(sa.select(sa.func.count()).select_from(ListImport)) == 1
    # An explicit min_rows=0 and force (past max_removed_ratio) empty it on purpose.
    result = load(engine, [chunk([])], update_policy="replace", min_rows=0, force=True)
    assert result.removed == 3 and records(engine) == {}


def test_max_reject_ratio_gate_changes_nothing(engine: sa.Engine) -> None:
    rejects = [(i, "no_valid_phone") for i in range(10, 13)] + [(13, "missing_key")]
    data = [chunk(keys(16)), chunk([], rejects=rejects)]
    with pytest.raises(
        QualityGateFailed,
        match=r"max_reject_ratio: file 'leads.csv' has 4 of 20 rows rejected \(20.0% > 10.0%; "
        r"no_valid_phone 3, missing_key 1\).*'Spring Leads' was not changed",
    ):
        load(engine, data, max_reject_ratio=0.1)
    with engine.connect() as conn:
        assert conn.scalar(sa.select(sa.func.count()).select_from(CallingList)) == 0
    assert load(engine, data, max_reject_ratio=0.2).loaded == 16


@pytest.mark.parametrize("existing", [False, True], ids=["new-list", "existing-list"])
def test_a_parse_error_in_a_later_chunk_rolls_everything_back(
    engine: sa.Engine, existing: bool
) -> None:
    if existing:
        load(engine, [chunk(keys(3))])
    before = records(engine)

    def chunks() -> Iterator[Parsed]:
        yield chunk(keys(1000, prefix="X"))
        raise InvalidFile("unterminated quote", file="leads.csv", row=1500)

    with pytest.raises(InvalidFile, match="file 'leads.csv', row 1500: unterminated quote"):
        load(engine, chunks(), update_policy="replace")
    assert records(engine) == before
    with engine.connect() as conn:
        assert conn.scalar(sa.select(sa.func.count()).select_from(CallingList)) == int(existing)
        assert conn.scalar(sa.select(sa.func.count()).select_from(ListImport)) == int(existing)


def _fail_on_key(engine: sa.Engine, key: str) -> None:
    """A trigger that makes the database refuse one record: a real error midway."""
    with engine.begin() as conn:
        if engine.dialect.name == "sqlite":
            conn.exec_driver_sql(
                "CREATE TRIGGER boom BEFORE INSERT ON list_records "
                f"WHEN NEW.record_key = '{key}' BEGIN SELECT RAISE(ABORT, 'injected failure'); END"
            )
        else:
            conn.exec_driver_sql(
                "CREATE OR REPLACE FUNCTION boom() RETURNS trigger AS $$ BEGIN "
                f"IF NEW.record_key = '{key}' THEN RAISE EXCEPTION 'injected failure'; END IF; "
                "RETURN NEW; END $$ LANGUAGE plpgsql"
            )
            conn.exec_driver_sql(
                "CREATE TRIGGER boom BEFORE INSERT ON list_records "
                "FOR EACH ROW EXECUTE FUNCTION boom()"
            )


def _drop_trigger(engine: sa.Engine) -> None:
    with engine.begin() as conn:
        if engine.dialect.name == "sqlite":
            conn.exec_driver_sql("DROP TRIGGER IF EXISTS boom")
        else:
            conn.exec_driver_sql("DROP TRIGGER IF EXISTS boom ON list_records")


@pytest.mark.parametrize("existing", [False, True], ids=["straight-path", "staged-path"])
def test_a_database_failure_midway_leaves_the_list_unchanged(
    engine: sa.Engine, existing: bool
) -> None:
    if existing:
        load(engine, [chunk(keys(3))])
    before = records(engine)
    _fail_on_key(engine, "X01500")
    try:
        data = [chunk(keys(1000, prefix="X")), chunk(keys(1000, start=1000, prefix="X"))]
        with pytest.raises(
            DatabaseError,
            match=r"loading file 'leads.csv' of calling list 'Spring Leads' in "
            r"(sqlite|postgresql)\S+ failed: \w+: injected failure",
        ):
            load(engine, data)
    finally:
        _drop_trigger(engine)
    assert records(engine) == before
    assert load(engine, data).loaded == 2000  # and nothing was left locked or half-done


# --- scrub --------------------------------------------------------------------------------


def _exclusion_list(
    engine: sa.Engine, name: str, keys: list[str], *, case_sensitive: bool = True, **extra: Any
) -> None:
    with engine.begin() as conn:
        list_id = conn.execute(
            sa.insert(ExclusionList)
            .values(name=name, case_sensitive=case_sensitive, **extra)
            .returning(ExclusionList.id)
        ).scalar_one()
        expired = NOW - timedelta(days=1)
        for key in keys:
            expires = expired if key.startswith("expired:") else None
            conn.execute(
                sa.insert(Exclusion).values(
                    exclusion_list_id=list_id,
                    key_value=key.removeprefix("expired:"),
                    expires_at=expires,
                )
            )


@pytest.mark.parametrize("existing", [False, True], ids=["new-list", "existing-list"])
def test_scrub_excludes_keys_of_the_named_lists(engine: sa.Engine, existing: bool) -> None:
    _exclusion_list(engine, "dnc", ["A00001", "expired:A00002"])
    _exclusion_list(engine, "dnc-ci", ["a00003"], case_sensitive=False)
    _exclusion_list(engine, "not-scrubbed", ["A00004"])
    _exclusion_list(engine, "inactive", ["A00005"], active=False)
    if existing:
        load(engine, [chunk(keys(1, start=9))])
    result = load(
        engine,
        [chunk(keys(6)), chunk([], rejects=[(9, "missing_key")])],
        scrub_exclusions=["dnc", "dnc-ci", "inactive"],
    )
    assert result.excluded == 2 and result.rejected == 1 and result.rows_read == 7
    assert result.loaded == 4 and result.unchanged == 0
    assert sorted(records(engine)) == sorted(
        ["A00000", "A00002", "A00004", "A00005"] + (["A00009"] if existing else [])
    )
    with pytest.raises(ObjectNotFound, match="exclusion list 'nope'"):
        load(engine, [chunk(keys(1))], scrub_exclusions=["dnc", "nope"])


def test_min_rows_counts_rows_left_after_the_scrub(engine: sa.Engine) -> None:
    _exclusion_list(engine, "dnc", ["A00000", "A00001"])
    with pytest.raises(
        QualityGateFailed, match=r"0 row\(s\) to load \(2 read, 0 rejected, 2 excluded\)"
    ):
        load(engine, [chunk(keys(2))], scrub_exclusions=["dnc"], update_policy="replace")


# --- bookkeeping --------------------------------------------------------------------------


def test_imports_checksums_and_skips(engine: sa.Engine) -> None:
    assert last_import_sha256(engine, "Spring Leads") is None
    assert imported_file_names(engine, "Spring Leads") == set()
    load(engine, [chunk(keys(2))], src=source("a.csv", "1" * 64))
    load(engine, [chunk(keys(2))], src=source("b.csv", "2" * 64))
    record_skipped_import(engine, "Spring Leads", source("c.csv", "2" * 64), update_policy="update")
    assert last_import_sha256(engine, "Spring Leads") == "2" * 64
    assert imported_file_names(engine, "Spring Leads") == {"a.csv", "b.csv", "c.csv"}
    assert imported_file_names(engine, "Other") == set()
    with engine.connect() as conn:
        statuses = conn.scalars(sa.select(ListImport.status).order_by(ListImport.id)).all()
    assert statuses == ["completed", "completed", "skipped"]
    with pytest.raises(ObjectNotFound, match="'Nope'"):
        record_skipped_import(engine, "Nope", source(), update_policy="update")


def test_key_field_must_match_the_list_unless_replacing(engine: sa.Engine) -> None:
    load(engine, [chunk(keys(2))])
    with pytest.raises(InvalidParameter, match="keyed by 'account', not 'phone1'"):
        load(engine, [chunk(keys(2))], key_field="phone1")
    load(engine, [chunk(keys(2))], key_field="phone1", update_policy="replace")
    with engine.connect() as conn:
        assert conn.scalar(sa.select(CallingList.key_field)) == "phone1"


# --- parameters (no database) -----------------------------------------------------------


@pytest.mark.parametrize(
    "params, match",
    [
        ({"list_name": ""}, "list_name"),
        ({"source": "ftp://x/y.csv"}, "unsupported scheme"),
        ({"mapping": {"A": "phone1", "B": "phone1"}}, "more than one column to the field 'phone1'"),
        ({"encoding": "klingon"}, "encoding 'klingon' is not known"),
        ({"widths": [3, 4], "columns": ["a"]}, "widths has 2 entries but columns has 1"),
        ({"default_country": "XX"}, "default_country 'XX'"),
        ({"scrub_exclusions": ["dnc\x00"]}, "scrub_exclusions"),
    ],
)
def test_parameters_are_checked_up_front(params: dict[str, Any], match: str) -> None:
    """What the flow's parameter types cannot express (tests/flows/test_typed_parameters.py
    has what they do)."""
    values = {"list_name": "L", "source": "drop/x.csv", **params}
    with pytest.raises(InvalidParameter, match=match):
        ImportOptions.from_parameters(**values)


@pytest.mark.parametrize(
    "params, match",
    [
        ({"update_policy": "merge"}, "update_policy: Input should be 'append', 'update' or"),
        ({"key_field": "email"}, "key_field: Input should be 'account'"),
        ({"mapping": {"Mobile": "mobile"}}, "mapping.Mobile: Input should be 'account'"),
        ({"mapping": ["account"]}, "mapping: Input should be a valid dictionary"),
        ({"format": "json"}, "format: Input should be 'auto', 'csv', 'xlsx' or 'fixed'"),
        ({"delimiter": ";;"}, "delimiter: Input should be ',', ';'"),
        ({"widths": [3, 0]}, "widths.1: Input should be greater than 0"),
        ({"expires_after_days": 0}, "expires_after_days: Input should be greater than or equal"),
        ({"min_rows": -1}, "min_rows: Input should be greater than or equal to 0"),
        ({"max_reject_ratio": 5}, "max_reject_ratio: Input should be less than or equal to 1"),
        ({"scrub_exclusions": "dnc"}, "scrub_exclusions: Input should be a valid list"),
        ({"after_import": "move"}, "after_import: String should match pattern"),
        ({"force": "yes"}, "force: Input should be a valid boolean"),
    ],
)
def test_parameter_types_refuse_bad_values(params: dict[str, Any], match: str) -> None:
    values = {"list_name": "L", "source": "drop/x.csv", **params}
    with pytest.raises(ParameterTypeError, match=re.escape(match)):
        import_calling_list.validate_parameters(values)


def test_parameter_defaults() -> None:
    opts = ImportOptions.from_parameters(list_name=" L ", source="x.csv", update_policy="replace")
    assert (opts.list_name, opts.min_rows, opts.key_field, opts.default_country) == (
        "L",
        1,
        "account",
        "US",
    )
    assert ImportOptions.from_parameters(list_name="L", source="x.csv").min_rows == 0
    gb = ImportOptions.from_parameters(
        list_name="L", source="x.csv", default_country="gb", scrub_exclusions=["a", "a", "b"]
    )
    assert gb.default_country == "GB" and gb.scrub_exclusions == ("a", "b")


# --- a killed process --------------------------------------------------------------------

_KILLED_LOAD = """
import sys, time
from pathlib import Path
import pandas as pd
from contact_center.storage.db import create_db_engine
from contact_center.storage.list_load import load_list_records
from contact_center.storage.list_options import ImportOptions
from contact_center.storage.list_results import SourceFile
from contact_center.parsing.record_fields import RECORD_FIELDS

url, marker = sys.argv[1], Path(sys.argv[2])

class Parsed:
    def __init__(self, start):
        keys = [f"K{i:06d}" for i in range(start, start + 5000)]
        frame = {"row": list(range(start + 2, start + 5002)), "record_key": keys}
        frame.update({f: None for f in RECORD_FIELDS})
        frame.update(account=keys, phone1=["+12127365000"] * 5000, custom_fields=None)
        self.valid = pd.DataFrame(frame).astype({"record_key": "string", "account": "string"})
        self.rejects = pd.DataFrame({"row": [], "reason": []})

def chunks():
    yield Parsed(0)
    yield Parsed(5000)
    marker.write_text("two chunks are in")
    time.sleep(120)
    yield Parsed(10000)

options = ImportOptions.from_parameters(
    list_name="Spring Leads", source="x.csv", update_policy="replace"
)
source = SourceFile("x.csv", "x.csv", "f" * 64, 1)
load_list_records(create_db_engine(url), chunks(), options, source)
"""


def test_a_killed_process_leaves_the_list_unchanged(
    engine: sa.Engine, db_url: str, tmp_path: Path
) -> None:
    load(engine, [chunk(keys(3))])
    before = records(engine)
    marker = tmp_path / "marker"
    script = tmp_path / "killed_load.py"
    script.write_text(_KILLED_LOAD)
    child = subprocess.Popen(
        [sys.executable, str(script), db_url, str(marker)],
        cwd=Path(__file__).parents[2],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 120
        while not marker.exists():
            assert child.poll() is None, child.communicate()[1].decode()
            assert time.monotonic() < deadline, "the load never got to its third chunk"
            time.sleep(0.1)
    finally:
        child.kill()
        child.communicate(timeout=30)  # also closes its pipes (no ResourceWarning)
    assert child.returncode == -signal.SIGKILL
    assert records(engine) == before
    with engine.connect() as conn:
        assert conn.scalar(sa.select(sa.func.count()).select_from(ListImport)) == 1
    # Nothing stays locked or half-written: the next import goes through.
    assert load(engine, [chunk(keys(4))]).loaded == 1


def test_default_time_is_the_imports_start_on_every_record(engine: sa.Engine) -> None:
    # No time given: the database's (on PostgreSQL the transaction's, which
    # list_records.updated_at defaults to, so a bulk load leaves it out).
    fresh = load(engine, [chunk([record("A1", 2), record("A2", 3)])], now=None)
    again = chunk([record("A1", 2, phone="+12125550199"), record("A3", 4)])
    changed = load(engine, [again], now=None)
    with engine.connect() as conn:
        started = dict(conn.execute(sa.select(ListImport.id, ListImport.started_at)).all())
    got = records(engine)
    assert got["A2"]["updated_at"] == started[fresh.import_id]  # loaded straight in
    assert got["A1"]["updated_at"] == got["A3"]["updated_at"] == started[changed.import_id]
    assert started[changed.import_id] > started[fresh.import_id]


def test_field_lengths_are_the_list_records_columns() -> None:
    """Parsing checks a row against FIELD_LENGTHS; the table must take exactly those."""
    lengths = {
        column.name: column.type.length
        for column in ListRecord.__table__.columns
        if column.name in ("record_key", *RECORD_FIELDS) and getattr(column.type, "length", None)
    }
    assert lengths == FIELD_LENGTHS
