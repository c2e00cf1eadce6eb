"""The load side of the calling-list import, on SQLite and PostgreSQL.

The chunks here are made by hand in the parser's shape (``valid`` + ``rejects``), so
these tests pin the load's own rules: policies, counts, scrub, bookkeeping, parameters.
The gates and all or nothing (errors midway, a killed process) are in
``test_list_load_gates.py``.
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from prefect.exceptions import ParameterTypeError
from support.list_load_support import (
    NOW,
    chunk,
    counts,
    keys,
    load,
    record,
    records,
    source,
)

from contact_center.exceptions import InvalidParameter, ObjectNotFound, QualityGateFailed
from contact_center.parsing.record_fields import FIELD_LENGTHS, RECORD_FIELDS
from contact_center.storage.list_imports import (
    imported_file_names,
    last_import_sha256,
    record_skipped_import,
)
from contact_center.storage.list_options import ImportOptions
from contact_center.storage.models import (
    CallingList,
    Exclusion,
    ExclusionList,
    ListImport,
    ListRecord,
)
from flows.calling_list_import import import_calling_list

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


# --- the import's time and the table's columns ---------------------------------------


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
