"""Dialable records and the exclusion matching, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from contact_center.exceptions import ObjectNotFound
from contact_center.storage.dialing import (
    dialable_counts,
    dialable_records,
    dialable_records_for_list,
    has_dialable_records,
)
from contact_center.storage.exclusions import key_is_excluded
from contact_center.storage.models import (
    CallingList,
    Campaign,
    CampaignExclusionList,
    CampaignList,
    Exclusion,
    ExclusionList,
    ListRecord,
)

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def _insert(conn: sa.Connection, model: Any, rows: list[dict[str, Any]]) -> None:
    # executemany needs the same keys in every row
    columns = {key for row in rows for key in row}
    conn.execute(sa.insert(model.__table__), [{c: row.get(c) for c in columns} for row in rows])


def seed(engine: sa.Engine) -> None:
    """Campaign 'Spring' with lists A (enabled) and B (disabled); two DNC lists."""
    with engine.begin() as conn:
        _insert(conn, Campaign, [{"id": 1, "name": "Spring"}, {"id": 2, "name": "Idle"}])
        _insert(conn, CallingList, [{"id": 1, "name": "A"}, {"id": 2, "name": "B"}])
        _insert(
            conn,
            CampaignList,
            [
                {"campaign_id": 1, "list_id": 1, "enabled": True},
                {"campaign_id": 1, "list_id": 2, "enabled": False},
                {"campaign_id": 2, "list_id": 2, "enabled": True},
            ],
        )
        records = [
            # list A
            {"list_id": 1, "record_key": "a1", "account": "a1", "phone1": "+12125550101"},
            {"list_id": 1, "record_key": "a2", "account": "a2", "phone1": "+12125550102"},
            {"list_id": 1, "record_key": "A3", "account": "A3", "phone1": "+12125550103"},
            {"list_id": 1, "record_key": "a4", "account": "a4", "phone1": "+12125550104"},
            {
                "list_id": 1,
                "record_key": "old",
                "account": "old",
                "expires_at": NOW - timedelta(seconds=1),
            },
            # list B (disabled in Spring)
            {"list_id": 2, "record_key": "b1", "account": "b1"},
        ]
        _insert(conn, ListRecord, records)
        lists = [
            (1, "dnc", "account", True, True),
            (2, "dnc-ci", "account", False, True),
            (3, "phones", "phone1", True, True),
            (4, "off", "account", True, False),
            (5, "unlinked", "account", True, True),
        ]
        _insert(
            conn,
            ExclusionList,
            [
                {"id": i, "name": n, "match_field": f, "case_sensitive": cs, "active": a}
                for i, n, f, cs, a in lists
            ],
        )
        _insert(
            conn,
            CampaignExclusionList,
            [{"campaign_id": 1, "exclusion_list_id": i} for i in (1, 2, 3, 4)],
        )


def add_keys(engine: sa.Engine, list_id: int, keys: dict[str, datetime | None]) -> None:
    with engine.begin() as conn:
        _insert(
            conn,
            Exclusion,
            [
                {"exclusion_list_id": list_id, "key_value": k, "expires_at": exp, "added_at": NOW}
                for k, exp in keys.items()
            ],
        )


def keys_of(engine: sa.Engine, stmt: sa.Select[Any]) -> list[str]:
    with engine.connect() as conn:
        return sorted(row.record_key for row in conn.execute(stmt))


def test_campaign_without_exclusions(engine: sa.Engine) -> None:
    seed(engine)
    with engine.connect() as conn:
        stmt = dialable_records(conn, "Spring", now=NOW)
        # Disabled list B and the expired record are out.
        assert keys_of(engine, stmt) == ["A3", "a1", "a2", "a4"]
        assert dialable_counts(conn, "Spring", now=NOW) == {"A": 4}
        assert has_dialable_records(conn, "Spring", now=NOW)
        with pytest.raises(ObjectNotFound, match="'Nope'"):
            dialable_records(conn, "Nope")


def test_exclusions_case_expiry_active_and_match_field(engine: sa.Engine) -> None:
    seed(engine)
    add_keys(engine, 1, {"a1": NOW + timedelta(days=1), "a3": None})  # case-sensitive
    add_keys(engine, 2, {"a3": None})  # case-insensitive: matches record "A3"
    add_keys(engine, 3, {"+12125550102": None})  # matches phone1 of a2
    add_keys(engine, 4, {"a4": None})  # inactive list: no effect
    add_keys(engine, 5, {"a4": None})  # not linked to Spring: no effect
    with engine.connect() as conn:
        assert keys_of(engine, dialable_records(conn, "Spring", now=NOW)) == ["a4"]
        # After a1's exclusion expires it is dialable again.
        later = NOW + timedelta(days=1)
        assert keys_of(engine, dialable_records(conn, "Spring", now=later)) == ["a1", "a4"]
        assert dialable_counts(conn, "Spring", now=later) == {"A": 2}
        assert has_dialable_records(conn, "Spring", now=NOW)


def test_nothing_dialable_and_per_list(engine: sa.Engine) -> None:
    seed(engine)
    add_keys(engine, 2, {k: None for k in ("a1", "a2", "a3", "a4")})
    with engine.connect() as conn:
        assert not has_dialable_records(conn, "Spring", now=NOW)
        assert dialable_counts(conn, "Spring", now=NOW) == {"A": 0}
        # Campaign Idle dials list B and has no exclusion list.
        assert has_dialable_records(conn, "Idle", now=NOW)
        # Per list: A is enabled in Spring, so Spring's exclusion lists apply.
        assert keys_of(engine, dialable_records_for_list(conn, "A", now=NOW)) == []
        # B is enabled only in Idle (no exclusion lists), so "b1" stays dialable even
        # when Spring's list excludes it.
        add_keys(engine, 1, {"b1": None})
        assert keys_of(engine, dialable_records_for_list(conn, "B", now=NOW)) == ["b1"]
        spring_b = dialable_records_for_list(conn, "B", campaign="Spring", now=NOW)
        assert keys_of(engine, spring_b) == []
        with pytest.raises(ObjectNotFound, match="calling list named 'Z'"):
            dialable_records_for_list(conn, "Z")


def test_key_is_excluded_by_names_and_ids(engine: sa.Engine) -> None:
    """The scrub's form: a plain key column against named lists."""
    seed(engine)
    add_keys(engine, 1, {"a1": None, "a2": NOW})  # a2 expires exactly now: no effect
    add_keys(engine, 2, {"a3": None})
    records = ListRecord.__table__
    by_names = sa.select(records).where(
        records.c.list_id == 1,
        key_is_excluded(records.c.account, exclusion_list_names=["dnc", "dnc-ci"], now=NOW),
    )
    assert keys_of(engine, by_names) == ["A3", "a1"]
    by_ids = sa.select(records).where(
        records.c.list_id == 1,
        key_is_excluded(records.c.account, exclusion_list_ids=[1], now=NOW),
    )
    assert keys_of(engine, by_ids) == ["a1"]
    with pytest.raises(ValueError, match="exactly one"):
        key_is_excluded(records.c.account, now=NOW)


def test_key_is_excluded_correlated_to_each_records_own_list(engine: sa.Engine) -> None:
    """A correlated ``calling_list_id`` ties each record to the campaigns of its own list.

    List B is disabled in Spring (which has the DNC lists) and enabled only in Idle
    (which has none), so its record b1 is not excluded, though its key is on dnc.
    """
    seed(engine)
    add_keys(engine, 1, {"a1": None, "b1": None})
    records = ListRecord.__table__
    stmt = sa.select(records.c.record_key).where(
        key_is_excluded(records.c.account, now=NOW, calling_list_id=records.c.list_id)
    )
    assert keys_of(engine, stmt) == ["a1"]
