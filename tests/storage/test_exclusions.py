"""Exclusion keys: parsing (pure) and loading (SQLite and PostgreSQL), with a settable time."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import pandas as pd
import pytest
import sqlalchemy as sa

from contact_center.exceptions import InvalidFile, InvalidParameter
from contact_center.storage.exclusion_load import (
    ImportRecord,
    LoadCounts,
    ensure_exclusion_list,
    load_exclusion_keys,
    record_exclusion_import,
    reset_exclusion_list,
)
from contact_center.storage.exclusions import merge_parsed, parse_exclusion_keys
from contact_center.storage.models import Exclusion, ExclusionImport

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def parse(frame: pd.DataFrame, **kwargs: Any) -> Any:
    options: dict[str, Any] = {
        "key_column": "account",
        "case_sensitive": True,
        "now": T0,
        "expires_after_days": 90,
    }
    options.update(kwargs)
    return parse_exclusion_keys(frame, **options)


def text_frame(**columns: list[str]) -> pd.DataFrame:
    return pd.DataFrame({k: pd.array(v, dtype="str") for k, v in columns.items()})


# --- parsing -------------------------------------------------------------------------


def test_parse_trims_rejects_blanks_and_counts_duplicates() -> None:
    frame = text_frame(account=[" A1 ", "a2", "", "   ", "A1", "a2", "x" * 201, "b"])
    parsed = parse(frame)
    assert parsed.keys["key_value"].tolist() == ["A1", "a2", "b"]
    assert parsed.rows_read == 8
    assert parsed.duplicates == 2
    assert parsed.rejects["row"].tolist() == [4, 5, 8]  # header is row 1
    assert parsed.rejects_by_reason == {"missing_key": 2, "key_too_long": 1}
    expected = T0 + timedelta(days=90)
    assert set(parsed.keys["expires_at"]) == {pd.Timestamp(expected)}


def test_parse_case_insensitive_folds_before_duplicates() -> None:
    parsed = parse(text_frame(account=["AbC", "abc", "ABC ", "d"]), case_sensitive=False)
    assert parsed.keys["key_value"].tolist() == ["abc", "d"]
    assert parsed.duplicates == 2


def test_parse_expiry_column_and_never() -> None:
    frame = text_frame(
        account=["k1", "k2", "k3", "k4"],
        until=["2026-12-31", "2026-06-01T08:30:00+02:00", "", "31/12/2026"],
    )
    parsed = parse(frame, expiry_column="until", expires_after_days=10)
    got = dict(zip(parsed.keys["key_value"], parsed.keys["expires_at"], strict=True))
    # A date excludes through that day (UTC): it expires at the next midnight.
    assert got["k1"] == pd.Timestamp("2027-01-01T00:00:00Z")
    assert got["k2"] == pd.Timestamp("2026-06-01T06:30:00Z")
    assert got["k3"] == pd.Timestamp(T0 + timedelta(days=10))  # blank: the default
    assert parsed.rejects.to_dict("records") == [
        {"row": 5, "reason": "invalid_expiry", "value": "k4"}
    ]
    never = parse(text_frame(account=["k"]), expires_after_days=None)
    assert never.keys["expires_at"].isna().all()


def test_parse_missing_column_is_named() -> None:
    with pytest.raises(InvalidFile, match=r"file 'dnc.csv', column 'acct'"):
        parse(text_frame(account=["1"]), key_column="acct", file="dnc.csv")


def test_merge_counts_duplicates_across_chunks() -> None:
    first = parse(text_frame(account=["a", "b"]))
    second = parse(text_frame(account=["b", "c", ""]), first_row=4)
    merged = merge_parsed([first, second])
    assert merged.keys["key_value"].tolist() == ["a", "b", "c"]
    assert (merged.rows_read, merged.duplicates) == (5, 1)
    assert merged.rejects["row"].tolist() == [6]


# --- loading -------------------------------------------------------------------------


def keys_frame(keys: list[str], expires: datetime | None) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "key_value": pd.array(keys, dtype="str"),
            "expires_at": pd.Series([expires] * len(keys), dtype="datetime64[us, UTC]"),
        }
    )


def stored(engine: sa.Engine, list_id: int) -> dict[str, tuple[datetime | None, datetime | None]]:
    table = Exclusion.__table__
    with engine.connect() as conn:
        rows = conn.execute(
            sa.select(table.c.key_value, table.c.expires_at, table.c.renewed_at).where(
                table.c.exclusion_list_id == list_id
            )
        )
        return {r.key_value: (r.expires_at, r.renewed_at) for r in rows}


def load(
    engine: sa.Engine, name: str, keys: list[str], policy: str, now: datetime, days: int = 30
) -> tuple[int, LoadCounts]:
    with engine.begin() as conn:
        info = ensure_exclusion_list(
            conn, name, match_field="account", case_sensitive=True, update_policy=policy
        )
        counts = load_exclusion_keys(
            conn,
            info.id,
            keys_frame(keys, now + timedelta(days=days)),
            update_policy=policy,
            now=now,
        )
    return info.id, counts


def test_add_policy_adds_and_renews(engine: sa.Engine) -> None:
    list_id, counts = load(engine, "dnc", ["a", "b", "c"], "add", T0)
    assert counts == LoadCounts(added=3)
    assert stored(engine, list_id)["a"] == (T0 + timedelta(days=30), None)
    with engine.connect() as conn:
        added = conn.execute(sa.select(Exclusion.__table__.c.added_at)).scalars().all()
    assert added == [T0] * 3
    later = T0 + timedelta(days=5)
    _, counts = load(engine, "dnc", ["b", "c", "d"], "add", later)
    assert counts == LoadCounts(added=1, renewed=2)
    rows = stored(engine, list_id)
    assert sorted(rows) == ["a", "b", "c", "d"]
    assert rows["a"] == (T0 + timedelta(days=30), None)  # not in the file: untouched
    assert rows["b"] == (later + timedelta(days=30), later)  # renewed
    assert rows["d"] == (later + timedelta(days=30), None)
    # Idempotent: the same file again adds nothing and keeps the same keys.
    _, counts = load(engine, "dnc", ["b", "c", "d"], "add", later)
    assert counts == LoadCounts(added=0, renewed=3)
    assert sorted(stored(engine, list_id)) == ["a", "b", "c", "d"]


def test_replace_policy_makes_the_list_the_file(engine: sa.Engine) -> None:
    list_id, _ = load(engine, "dnc", ["a", "b", "c"], "replace", T0)
    _, counts = load(engine, "dnc", ["c", "d"], "replace", T0 + timedelta(hours=1))
    assert counts == LoadCounts(added=1, renewed=1, removed=2)
    assert sorted(stored(engine, list_id)) == ["c", "d"]
    _, counts = load(engine, "dnc", ["c", "d"], "replace", T0 + timedelta(hours=2))
    assert counts == LoadCounts(renewed=2)
    _, counts = load(engine, "dnc", [], "replace", T0 + timedelta(hours=3))
    assert counts == LoadCounts(removed=2) and stored(engine, list_id) == {}


def test_reset_and_import_rows(engine: sa.Engine) -> None:
    list_id, _ = load(engine, "dnc", ["a", "b"], "add", T0)
    with engine.begin() as conn:
        counts = reset_exclusion_list(conn, list_id)
        record_exclusion_import(
            conn, list_id, ImportRecord(step="reset", started_at=T0), counts, finished_at=T0
        )
    assert counts == LoadCounts(removed=2) and stored(engine, list_id) == {}
    with engine.connect() as conn:
        row = conn.execute(sa.select(ExclusionImport.__table__)).one()
    assert (row.step, row.removed, row.started_at) == ("reset", 2, T0)


def test_settings_change_needs_replace(engine: sa.Engine) -> None:
    with engine.begin() as conn:
        ensure_exclusion_list(
            conn, "dnc", match_field="account", case_sensitive=True, update_policy="add"
        )
    with engine.begin() as conn, pytest.raises(InvalidParameter, match="update_policy 'replace'"):
        ensure_exclusion_list(
            conn, "dnc", match_field="account", case_sensitive=False, update_policy="add"
        )
    with engine.begin() as conn:
        info = ensure_exclusion_list(
            conn, "dnc", match_field="phone1", case_sensitive=False, update_policy="replace"
        )
    assert (info.match_field, info.case_sensitive) == ("phone1", False)
    with engine.begin() as conn, pytest.raises(InvalidParameter, match="not a record field"):
        ensure_exclusion_list(
            conn, "x", match_field="email", case_sensitive=True, update_policy="add"
        )


@contextmanager
def refusing_key(engine: sa.Engine) -> Iterator[str]:
    """A trigger that makes the database refuse the key 'boom' on insert: a real failure."""
    pg = engine.dialect.name == "postgresql"
    with engine.begin() as conn:
        if pg:
            conn.execute(
                sa.text(
                    "CREATE FUNCTION refuse_key() RETURNS trigger LANGUAGE plpgsql AS $$ "
                    "BEGIN IF NEW.key_value = 'boom' THEN RAISE EXCEPTION 'key refused'; "
                    "END IF; RETURN NEW; END $$"
                )
            )
            conn.execute(
                sa.text(
                    "CREATE TRIGGER refuse_key BEFORE INSERT ON exclusions "
                    "FOR EACH ROW EXECUTE FUNCTION refuse_key()"
                )
            )
        else:
            conn.execute(
                sa.text(
                    "CREATE TRIGGER refuse_key BEFORE INSERT ON exclusions WHEN NEW.key_value = "
                    "'boom' BEGIN SELECT RAISE(ABORT, 'key refused'); END"
                )
            )
    try:
        yield "boom"
    finally:
        with engine.begin() as conn:
            if pg:
                conn.execute(sa.text("DROP TRIGGER refuse_key ON exclusions"))
                conn.execute(sa.text("DROP FUNCTION refuse_key()"))
            else:
                conn.execute(sa.text("DROP TRIGGER refuse_key"))


@pytest.mark.parametrize("policy", ["add", "replace"])
def test_failure_midway_changes_nothing(engine: sa.Engine, policy: str) -> None:
    list_id, _ = load(engine, "dnc", ["a", "b", "c"], "add", T0)
    before = stored(engine, list_id)
    # The renew (UPDATE) runs first and succeeds; the INSERT of the new keys then fails.
    with refusing_key(engine) as bad, pytest.raises(sa.exc.DBAPIError, match="key refused"):
        load(engine, "dnc", ["b", "new", bad], policy, T0 + timedelta(days=1))
    assert stored(engine, list_id) == before
