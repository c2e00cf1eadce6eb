"""The bulk path (COPY on PostgreSQL, multi-row INSERTs on SQLite), on both databases."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pytest
import sqlalchemy as sa

from contact_center.exceptions import InvalidParameter
from contact_center.storage.bulk import bulk_insert, check_identifier, staging_table

TRICKY = [
    "plain",
    "",
    None,
    'quote " and, comma',
    "new\nline",
    "Zoë Muñoz €",
    "02134",
    "tab\there",
    "back\\slash",
    "cr\r\nlf",
    "\\N",  # the text that COPY's text format uses for NULL, as a value
    "\\.",  # the text that ends COPY data, as a value
    '{"Notes": "say \\"hi\\"\\n"}',
]


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
    from contact_center.storage.models import CallingList

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

    from contact_center.storage.models import CallingList

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
    from contact_center.storage.bulk import bulk_writer

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

    from contact_center.storage.bulk import prefetch

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


def test_many_parts_of_odd_sizes_keep_every_value_in_order(engine: sa.Engine) -> None:
    from datetime import UTC, datetime, timedelta

    from contact_center.storage.bulk import bulk_writer, is_postgresql

    # 21,234 rows, then 7: more than one 20k batch, full 1000-row statements and a rest that
    # is cut into smaller statements.
    start = datetime(2026, 3, 4, 5, 6, 7, 89, tzinfo=UTC)
    count = 21_241
    texts = [TRICKY[i % len(TRICKY)] for i in range(count)]
    stamps = [None if i % 5 == 0 else start + timedelta(seconds=i) for i in range(count)]
    rows = pa.table(
        {
            "n": pa.array(range(count), pa.int64()),
            "v": pa.array(texts, pa.string()),
            "at": pa.array(stamps, pa.timestamp("us", tz="UTC")),
        }
    )
    columns = {"n": "bigint", "v": "text", "at": "timestamp"}
    with engine.begin() as conn, staging_table(conn, "odd", columns) as stg:
        with bulk_writer(conn, stg, list(columns)) as writer:
            assert writer.add(rows.slice(0, count - 7)) == count - 7
            assert writer.add(rows.slice(count - 7)) == 7
        got = conn.execute(sa.select(stg.c.n, stg.c.v, stg.c.at).order_by(stg.c.n)).all()
        if not is_postgresql(conn):  # a staging timestamp reads back naive (UTC) on SQLite
            stamps = [s and s.replace(tzinfo=None) for s in stamps]
        assert [tuple(r) for r in got] == list(zip(range(count), texts, stamps, strict=True))
        if not is_postgresql(conn):
            # SQLite keeps timestamps as UTCDateTime does: naive UTC text with microseconds.
            raw = sa.type_coerce(stg.c.at, sa.String())
            stored = conn.execute(sa.select(raw).where(stg.c.n < 3).order_by(stg.c.n)).scalars()
            assert list(stored) == [
                None,
                "2026-03-04 05:06:08.000089",
                "2026-03-04 05:06:09.000089",
            ]


def test_sqlite_statements_stay_within_the_variable_limit(tmp_path: Path) -> None:
    import sqlite3

    from contact_center.storage.db import create_db_engine, ensure_schema

    engine = ensure_schema(create_db_engine(f"sqlite:///{tmp_path / 'limit.db'}"))
    rows = [(f"k{i}", i, None if i % 3 else "x") for i in range(25)]
    with (
        engine.begin() as conn,
        staging_table(conn, "lim", {"a": "text", "b": "bigint", "c": "text"}) as stg,
    ):
        dbapi = conn.connection.driver_connection
        assert isinstance(dbapi, sqlite3.Connection)
        previous = dbapi.setlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER, 10)
        try:
            # 3 columns and 10 variables: 3 rows per statement.
            assert bulk_insert(conn, stg, ["a", "b", "c"], rows) == 25
        finally:
            dbapi.setlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER, previous)
        got = conn.execute(sa.select(stg.c.a, stg.c.b, stg.c.c).order_by(stg.c.b)).all()
    assert [tuple(r) for r in got] == rows


def test_statement_shapes_cover_the_rows_with_few_shapes() -> None:
    from contact_center.storage.bulk import _statement_shapes

    assert _statement_shapes(2_345, 1000) == [(1000, 2), (256, 1), (64, 1), (16, 1), (8, 1), (1, 1)]
    assert _statement_shapes(3, 1000) == [(2, 1), (1, 1)]
    assert _statement_shapes(0, 1000) == []
    shapes: set[int] = set()
    for rows in range(0, 5_000, 7):
        cut = _statement_shapes(rows, 1000)
        assert sum(size * times for size, times in cut) == rows
        shapes.update(size for size, _ in cut)
    assert len(shapes) <= 11  # 1000 and the powers of two below it


def _writer_threads() -> list[str]:
    import threading

    return [t.name for t in threading.enumerate() if t.name == "cctasks-sqlite-writer"]


def test_an_error_in_an_early_part_comes_out_and_nothing_is_kept(engine: sa.Engine) -> None:
    from contact_center.storage.bulk import bulk_writer, is_postgresql

    now = pd.Timestamp("2026-01-01", tz="UTC").to_pydatetime()
    stamps = {"key_field": "account", "created_at": now, "updated_at": now}
    # calling_lists.name is unique: the first part repeats a name, the later ones are fine.
    with pytest.raises(sa.exc.IntegrityError, match="name"):
        with engine.begin() as conn:
            with bulk_writer(conn, "calling_lists", ["name"], constants=stamps) as writer:
                writer.add([("twice",), ("twice",)])
                # On SQLite a writer thread inserts while the caller prepares parts.
                assert len(_writer_threads()) == (0 if is_postgresql(conn) else 1)
                for part in range(5):
                    writer.add(pd.DataFrame({"name": [f"p{part}-{i}" for i in range(30_000)]}))
    assert not _writer_threads()
    with engine.connect() as conn:
        assert conn.scalar(sa.text("SELECT count(*) FROM calling_lists")) == 0


def test_a_connection_bound_to_its_thread_inserts_in_the_callers_thread(tmp_path: Path) -> None:
    from contact_center.storage.bulk import bulk_writer

    # sqlite3's check_same_thread (the default for in-memory databases) forbids the
    # writer thread; the rows go in from the caller's thread instead.
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'bound.db'}?check_same_thread=true")
    try:
        rows = [(f"k{i}", i) for i in range(2_500)]
        columns = {"k": "text", "n": "bigint"}
        with engine.begin() as conn, staging_table(conn, "bound", columns) as stg:
            with bulk_writer(conn, stg, list(columns)) as writer:
                assert writer.add(rows) == 2_500
                assert not _writer_threads()
            got = conn.execute(sa.select(stg.c.k, stg.c.n).order_by(stg.c.n)).all()
        assert [tuple(r) for r in got] == rows
        with pytest.raises(sa.exc.IntegrityError, match="NOT NULL"):
            with engine.begin() as conn:
                conn.execute(sa.text("CREATE TABLE strict_t (a TEXT NOT NULL)"))
                bulk_insert(conn, "strict_t", ["a"], [("x",), (None,)])
    finally:
        engine.dispose()


ODD = [
    "it's",
    '"double"',
    "--",
    "'); DROP TABLE calling_lists; --",
    "?",
    "?1",
    ":name",
    "$1",
    "%s",
    "\\",
    "\x01\x1f",
    "   ",
    "é" * 10_000,
    "🙂",
]


def test_odd_values_and_keyword_column_names_with_constants(engine: sa.Engine) -> None:
    from datetime import UTC, datetime

    from contact_center.storage.bulk import bulk_writer

    at = datetime(2026, 7, 8, 9, 10, 11, 12, tzinfo=UTC)
    columns = {"order": "text", "values": "text", "group": "bigint", "select": "text"}
    columns |= {"where": "timestamp"}
    constants = {"select": "?1 it's", "where": at}
    rows = [(text, ODD[-1 - i], i) for i, text in enumerate(ODD)] + [(None, "", None)]
    with engine.begin() as conn, staging_table(conn, "kw", columns) as stg:
        with bulk_writer(conn, stg, ["order", "values", "group"], constants=constants) as w:
            assert w.add(rows) == len(rows)
            frame = pd.DataFrame({"order": ["x"], "values": ["y"], "group": [99]})
            assert w.add(frame) == 1
        got = conn.execute(sa.select(stg).order_by(stg.c.group.nulls_last())).all()
    stamp = at if engine.dialect.name == "postgresql" else at.replace(tzinfo=None)
    expected = [(*row, "?1 it's", stamp) for row in rows if row[2] is not None]
    expected += [("x", "y", 99, "?1 it's", stamp), (None, "", None, "?1 it's", stamp)]
    assert [tuple(r) for r in got] == expected


def test_sqlite_constants_are_literals_outside_the_variable_limit(tmp_path: Path) -> None:
    import sqlite3

    from contact_center.storage.db import create_db_engine, ensure_schema

    engine = ensure_schema(create_db_engine(f"sqlite:///{tmp_path / 'limit.db'}"))
    rows = [(f"k{i}", i, None if i % 3 else "x") for i in range(25)]
    columns = {"a": "text", "b": "bigint", "c": "text", "d": "text", "e": "bigint"}
    columns |= {"f": "text"}
    constants = {"d": "it's ?", "e": 7, "f": None}
    with engine.begin() as conn, staging_table(conn, "lim", columns) as stg:
        dbapi = conn.connection.driver_connection
        assert isinstance(dbapi, sqlite3.Connection)
        previous = dbapi.setlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER, 3)
        try:
            # 3 columns and 3 variables: one row per statement; the constants are SQL
            # literals, which take no variable.
            inserted = bulk_insert(conn, stg, ["a", "b", "c"], rows, constants=constants)
        finally:
            dbapi.setlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER, previous)
        assert inserted == 25
        got = conn.execute(sa.select(stg).order_by(stg.c.b)).all()
    assert [tuple(r) for r in got] == [(*row, "it's ?", 7, None) for row in rows]
