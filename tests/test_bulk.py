"""The bulk path (COPY on PostgreSQL, executemany on SQLite), on both databases."""

from __future__ import annotations

from typing import Any

import pandas as pd
import pyarrow as pa
import pytest
import sqlalchemy as sa

from contact_center.bulk import bulk_insert, check_identifier, staging_table
from contact_center.exceptions import InvalidParameter

TRICKY = ["plain", "", None, 'quote " and, comma', "new\nline", "Zoë Muñoz €", "02134"]


def test_values_round_trip_exactly(engine: sa.Engine) -> None:
    frame = pd.DataFrame(
        {"k": [str(i) for i in range(len(TRICKY))], "v": pd.array(TRICKY, dtype="string")}
    )
    with engine.begin() as conn, staging_table(conn, "stg", {"k": "text", "v": "text"}) as stg:
        assert bulk_insert(conn, stg, ["k", "v"], frame) == len(TRICKY)
        got = dict(conn.execute(sa.select(stg.c.k, stg.c.v)).all())
    # None stays NULL and "" stays an empty string: the two must not be confused.
    assert [got[str(i)] for i in range(len(TRICKY))] == TRICKY


def test_typed_columns_arrow_and_plain_rows(engine: sa.Engine) -> None:
    columns = {"n": "bigint", "flag": "boolean", "name": "text"}
    arrow = pa.table({"n": [1, 2], "flag": [True, None], "name": ["a", "b"]})
    with engine.begin() as conn, staging_table(conn, "typed", columns) as stg:
        assert bulk_insert(conn, stg, list(columns), arrow) == 2
        assert bulk_insert(conn, stg, list(columns), iter([(3, False, None), (4, True, "d")])) == 2
        rows = conn.execute(sa.select(stg).order_by(stg.c.n)).all()
    assert [tuple(r) for r in rows] == [
        (1, True, "a"),
        (2, None, "b"),
        (3, False, None),
        (4, True, "d"),
    ]


def test_a_failure_rolls_back_the_bulk_rows(engine: sa.Engine) -> None:
    from contact_center.models import CallingList

    now = pd.Timestamp("2026-01-02 03:04:05", tz="UTC")
    rows = pd.DataFrame(
        {
            "name": [f"list {i}" for i in range(50_000)],
            "key_field": "account",
            "created_at": now,
            "updated_at": now,
        }
    )
    with pytest.raises(RuntimeError, match="midway"):
        with engine.begin() as conn:
            assert bulk_insert(conn, "calling_lists", list(rows.columns), rows) == 50_000
            assert conn.scalar(sa.select(sa.func.count()).select_from(CallingList)) == 50_000
            first = conn.execute(sa.select(CallingList.created_at).limit(1)).scalar_one()
            # Bulk timestamps read back through the model's UTCDateTime as the same instant.
            assert first == now.to_pydatetime()
            raise RuntimeError("midway")
    with engine.connect() as conn:
        assert conn.scalar(sa.select(sa.func.count()).select_from(CallingList)) == 0


def test_staging_table_is_gone_afterwards(engine: sa.Engine) -> None:
    with engine.begin() as conn, staging_table(conn, "gone", ["a"]) as stg:
        name = stg.name
        bulk_insert(conn, stg, ["a"], pd.DataFrame({"a": ["x"]}))
    with engine.connect() as conn:
        with pytest.raises(sa.exc.DBAPIError):
            conn.execute(sa.text(f"SELECT count(*) FROM {name}"))  # noqa: S608 - a test name


def test_names_are_whitelisted(engine: sa.Engine) -> None:
    assert check_identifier("list_records") == "list_records"
    for bad in ["x; DROP TABLE y", 'a"b', "", "1abc", "a b"]:
        with pytest.raises(InvalidParameter, match="not a valid"):
            check_identifier(bad)
    with engine.begin() as conn:
        with pytest.raises(InvalidParameter, match="not a valid"):
            bulk_insert(conn, "calling_lists", ["name; --"], [("x",)])
        with pytest.raises(InvalidParameter, match="type 'json'"):
            with staging_table(conn, "bad", {"a": "json"}):
                pass


def test_constants_fill_every_row(engine: sa.Engine) -> None:
    from datetime import UTC, datetime

    from contact_center.models import CallingList

    now = datetime(2026, 5, 6, 7, 8, 9, 123456, tzinfo=UTC)
    names = pd.DataFrame({"name": ["a", "b", "it's"]})
    constants = {"key_field": "account", "created_at": now, "updated_at": now}
    with engine.begin() as conn:
        assert bulk_insert(conn, "calling_lists", ["name"], names, constants=constants) == 3
        assert bulk_insert(conn, "calling_lists", ["name"], [("c",)], constants=constants) == 1
        rows = conn.execute(
            sa.select(CallingList.name, CallingList.key_field, CallingList.created_at).order_by(
                CallingList.name
            )
        ).all()
    assert [tuple(r) for r in rows] == [
        ("a", "account", now),
        ("b", "account", now),
        ("c", "account", now),
        ("it's", "account", now),
    ]
    with engine.begin() as conn:
        with pytest.raises(InvalidParameter, match="aware"):
            bulk_insert(
                conn,
                "calling_lists",
                ["name"],
                names,
                constants={"created_at": now.replace(tzinfo=None)},
            )
        with pytest.raises(InvalidParameter, match="not a valid"):
            bulk_insert(conn, "calling_lists", ["name"], names, constants={"x; --": 1})


def test_driver_errors_come_wrapped_like_sqlalchemy_errors(engine: sa.Engine) -> None:
    # calling_lists.key_field is NOT NULL: the database refuses the rows on both paths.
    frame = pd.DataFrame({"name": ["a", "b"]})
    for rows in (frame, [("a",), ("b",)]):
        with pytest.raises(sa.exc.IntegrityError, match="key_field"):
            with engine.begin() as conn:
                bulk_insert(conn, "calling_lists", ["name"], rows)


def test_a_writer_takes_several_parts_and_aborts_cleanly(engine: sa.Engine) -> None:
    from contact_center.bulk import bulk_writer

    with engine.begin() as conn, staging_table(conn, "parts", {"k": "text", "n": "bigint"}) as stg:
        with bulk_writer(conn, stg, ["k", "n"]) as writer:
            assert writer.add(pd.DataFrame({"k": ["a", "b"], "n": [1, 2]})) == 2
            assert writer.add(pa.table({"k": ["c"], "n": [3]})) == 1
            assert writer.add([("d", 4), ("e", None)]) == 2
        assert writer.rows == 5
        assert conn.scalar(sa.select(sa.func.count()).select_from(stg)) == 5
        assert conn.scalar(sa.select(sa.func.sum(stg.c.n))) == 10
    # An error of the caller's inside the block ends the COPY and comes out as it was.
    with pytest.raises(ValueError, match="parser broke"):
        with engine.begin() as conn:
            now = pd.Timestamp("2026-01-01", tz="UTC").to_pydatetime()
            stamps = {"created_at": now, "updated_at": now}
            with bulk_writer(conn, "calling_lists", ["name", "key_field"], constants=stamps) as w:
                w.add([("x", "account")])
                raise ValueError("parser broke")
    with engine.connect() as conn:
        assert conn.scalar(sa.text("SELECT count(*) FROM calling_lists")) == 0


def test_prefetch_keeps_order_reraises_and_stops_its_producer() -> None:
    import sys
    import threading

    from contact_center.bulk import prefetch

    interval = sys.getswitchinterval()
    assert list(prefetch(iter(range(100)), depth=2)) == list(range(100))

    def failing() -> Any:
        yield 1
        raise ValueError("chunk 2 is bad")

    got: list[int] = []
    with pytest.raises(ValueError, match="chunk 2 is bad"):
        for item in prefetch(failing()):
            got.append(item)
    assert got == [1]
    produced: list[int] = []

    def endless() -> Any:
        n = 0
        while True:
            produced.append(n)
            yield n
            n += 1

    stream = prefetch(endless(), depth=1)
    assert next(stream) == 0
    stream.close()  # the consumer stops early (a gate, an error)
    assert not [t for t in threading.enumerate() if t.name == "cctasks-prefetch"]
    assert len(produced) <= 4  # it ran at most a few items ahead
    assert sys.getswitchinterval() == interval
