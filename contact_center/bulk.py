"""The fast bulk path into the contact-centre database, for both engines.

Every bulk load in cctasks goes through here, so that each engine uses its fast
path and the whole load stays in the caller's ONE transaction:

- PostgreSQL: ``COPY ... FROM STDIN`` (text format) through psycopg's
  ``cursor.copy()``, fed in blocks of :data:`~contact_center.settings.COPY_BLOCK_BYTES`
  by a writer thread, so that Python prepares the next block while the server
  ingests this one.
- SQLite: ``INSERT ... VALUES`` statements of up to 1000 rows each, run with
  DB-API ``executemany`` on the same connection by a writer thread, so that Python
  turns the next part into values while sqlite3 inserts this one. sqlite3 releases
  the GIL while it steps a statement; with many rows per statement the threads
  (the writer, the caller, a parser running ahead in :func:`prefetch`) pass the GIL
  a thousand times less often than with one row per statement, and binding costs
  less.

Never the ORM, and never row by row. The functions take the SQLAlchemy
``Connection`` of the caller's transaction and use its DB-API connection, so a
failure anywhere rolls back everything the caller did, bulk rows included.

Staging tables are temporary tables with plain columns and no index; build one
with :func:`staging_table`, fill it with :func:`bulk_insert`, then move its rows
with set-based SQL (SQLAlchemy Core on the returned ``Table``).

Example:
    ```python
    with engine.begin() as conn, staging_table(conn, "keys", {"key": "text"}) as stg:
        bulk_insert(conn, stg, ["key"], frame)
        conn.execute(sa.insert(target).from_select(["key"], sa.select(stg.c.key)))
    ```
"""

from __future__ import annotations

import queue
import re
import sqlite3
import sys
import threading
import uuid
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from datetime import datetime
from typing import Any, TypeAlias, TypeVar

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import sqlalchemy as sa
from psycopg.copy import QueuedLibpqWriter
from sqlalchemy.engine import Connection

from contact_center.db import sqlite_timestamp
from contact_center.exceptions import InvalidParameter
from contact_center.files import string_bytes
from contact_center.settings import COPY_BLOCK_BYTES

__all__ = [
    "STAGING_TYPES",
    "BulkRows",
    "BulkWriter",
    "bulk_insert",
    "bulk_writer",
    "check_identifier",
    "driver_connection",
    "is_postgresql",
    "prefetch",
    "staging_table",
]

#: Column types a staging table may use (name -> SQLAlchemy type).
STAGING_TYPES: dict[str, sa.types.TypeEngine[Any]] = {
    "text": sa.Text(),
    "integer": sa.Integer(),
    "bigint": sa.BigInteger(),
    "boolean": sa.Boolean(),
    "float": sa.Float(),
    "timestamp": sa.DateTime(timezone=True),
}

#: What :func:`bulk_insert` takes: a DataFrame, an Arrow table, or rows of values.
BulkRows: TypeAlias = pd.DataFrame | pa.Table | Iterable[Sequence[Any]]

T = TypeVar("T")
# SQLite statements and, for each, its rows of values (as executemany takes them).
_Statements: TypeAlias = tuple[str, list[list[Any]]]

# Thread switch interval while a producer runs ahead (see prefetch).
_SWITCH_INTERVAL = 0.0005

_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")
# Pieces (psycopg cuts writes into 128 KiB) that may wait for the COPY writer thread.
_COPY_QUEUE_BLOCKS = 64
# Rows per batch on SQLite: bounds the Python objects alive at once.
_SQLITE_BATCH_ROWS = 20_000
# Rows per INSERT statement on SQLite (fewer when the variable limit is lower). 1M list
# rows, alone: 1 row per statement 3.9 s, 100-1000 rows 2.7 s. Beside the parser thread
# 250-1000 did as well and 4000 was 0.4 s slower: sqlite3 holds the GIL while it binds
# a statement's values, and takes it back once per statement.
_SQLITE_STATEMENT_ROWS = 1000
# Batches of values that may wait for the SQLite writer thread: bounds the memory held
# (one more is being inserted and one more made); a longer queue was no faster.
_SQLITE_QUEUE_BATCHES = 1


def check_identifier(name: str) -> str:
    """Return ``name`` if it is a plain SQL identifier (letters, digits, underscore).

    Raises:
        InvalidParameter: anything else, so no user text reaches SQL as a name.
    """
    if not isinstance(name, str) or not _IDENTIFIER.match(name):
        raise InvalidParameter(f"{name!r} is not a valid table or column name")
    return name


def is_postgresql(conn: Connection) -> bool:
    """Whether ``conn`` is a PostgreSQL connection."""
    return conn.dialect.name == "postgresql"


def driver_connection(conn: Connection) -> Any:
    """The DB-API connection under ``conn``, inside the same transaction."""
    return conn.connection.driver_connection


@contextmanager
def staging_table(
    conn: Connection,
    name: str,
    columns: Mapping[str, str] | Sequence[str],
) -> Iterator[sa.Table]:
    """Create a temporary staging table for the block; it is gone afterwards.

    Args:
        conn: the connection of the caller's transaction.
        name: a base name; a unique suffix is added so runs never collide.
        columns: column name -> type (a key of :data:`STAGING_TYPES`), or names only
            (all ``text``).

    Yields:
        The table, to fill with :func:`bulk_insert` and read with SQLAlchemy Core.

    On PostgreSQL the table is ``ON COMMIT DROP``, so it ends with the transaction
    whatever happens; on SQLite (where temporary tables live as long as the
    pooled connection) it is dropped when the block ends.
    """
    spec = dict(columns) if isinstance(columns, Mapping) else dict.fromkeys(columns, "text")
    table_name = f"{check_identifier(name)}_{uuid.uuid4().hex[:12]}"
    cols = []
    for column, kind in spec.items():
        if kind not in STAGING_TYPES:
            raise InvalidParameter(
                f"staging column {column!r} has the type {kind!r}; "
                f"use one of {', '.join(STAGING_TYPES)}"
            )
        cols.append(sa.Column(check_identifier(column), STAGING_TYPES[kind]))
    table = sa.Table(
        table_name,
        sa.MetaData(),
        *cols,
        prefixes=["TEMPORARY"],
        postgresql_on_commit="DROP",
    )
    table.create(conn)
    try:
        yield table
    finally:
        if not is_postgresql(conn):
            # SQLite keeps temp tables per connection; the pool would hand it on.
            table.drop(conn, checkfirst=True)


def _table_and_columns(
    conn: Connection, table: str | sa.Table, columns: Sequence[str]
) -> tuple[sa.TableClause | sa.Table, list[str]]:
    names = [check_identifier(c) for c in columns]
    if not names:
        raise InvalidParameter("bulk_insert needs at least one column")
    if isinstance(table, sa.Table):
        missing = [c for c in names if c not in table.c]
        if missing:
            raise InvalidParameter(f"table {table.name!r} has no column {missing[0]!r}")
        return table, names
    return sa.table(check_identifier(table), *[sa.column(c) for c in names]), names


def _as_arrow(rows: pd.DataFrame | pa.Table, columns: list[str]) -> pa.Table:
    if isinstance(rows, pa.Table):
        return rows.select(columns)
    missing = [c for c in columns if c not in rows.columns]
    if missing:
        raise InvalidParameter(f"the rows to load have no column {missing[0]!r}")
    return pa.Table.from_pandas(rows[columns], preserve_index=False)


def bulk_insert(
    conn: Connection,
    table: str | sa.Table,
    columns: Sequence[str],
    rows: BulkRows,
    *,
    constants: Mapping[str, Any] | None = None,
) -> int:
    """Insert ``rows`` into ``table`` on the engine's fast path, in ``conn``'s transaction.

    Args:
        conn: the connection of the caller's transaction.
        table: a table name (a plain identifier) or a ``Table`` (e.g. a staging table).
        columns: the columns to fill, in the order of the values.
        rows: a DataFrame or Arrow table holding those columns (missing values are
            NULL, empty strings stay empty strings), or an iterable of value rows.
        constants: column -> one value for every row (an int, a string, an aware
            datetime or None), e.g. the list's id; cheaper than a repeated column.

    Returns:
        The number of rows inserted.

    Raises:
        InvalidParameter: a table or column name that is not a plain identifier, or a
            constant of another type.
        sqlalchemy.exc.DBAPIError: the database refused the rows (the driver's error,
            wrapped as SQLAlchemy wraps it elsewhere; callers map it).
    """
    with bulk_writer(conn, table, columns, constants=constants) as writer:
        writer.add(rows)
    return writer.rows


@contextmanager
def bulk_writer(
    conn: Connection,
    table: str | sa.Table,
    columns: Sequence[str],
    *,
    constants: Mapping[str, Any] | None = None,
) -> Iterator[BulkWriter]:
    """A bulk insert fed in parts (e.g. one chunk of a file at a time).

    On PostgreSQL it is ONE ``COPY`` for all the parts, so Python renders the next
    part while the server ingests this one; on SQLite a writer thread runs each
    part's ``INSERT ... VALUES`` statements (up to 1000 rows each) while Python
    prepares the next part. The arguments are those of :func:`bulk_insert`; every
    part holds the same ``columns``. The rows are in once the block ends; until
    then, do not use ``conn`` for anything else (the COPY or the writer thread is
    using it).

    Raises:
        sqlalchemy.exc.DBAPIError: the database refused the rows.
    """
    fixed = _check_constants(constants or {})
    target, names = _table_and_columns(conn, table, [*columns, *fixed])
    writer = BulkWriter(conn, target, names[: len(columns)], fixed)
    dbapi_error = conn.dialect.loaded_dbapi.Error
    try:
        with writer.stack:
            yield writer
    except dbapi_error as exc:
        # The fast paths talk to the driver directly; wrap its errors the way
        # SQLAlchemy does everywhere else, so callers map one kind of error.
        raise sa.exc.DBAPIError.instance(
            f"bulk insert into {target.name}", None, exc, dbapi_error
        ) from exc


class BulkWriter:
    """An open bulk insert into one table; see :func:`bulk_writer`.

    Attributes:
        rows: the rows added so far.
    """

    def __init__(
        self,
        conn: Connection,
        target: sa.TableClause | sa.Table,
        columns: list[str],
        constants: dict[str, Any],
    ) -> None:
        self.rows = 0
        self.stack = ExitStack()
        self._conn = conn
        self._target = target
        self._columns = columns
        self._constants = constants
        self._copy: Any = None
        self._sqlite: _SqliteWriter | None = None
        self._statement_rows = 1
        self._statements: dict[int, str] = {}

    def add(self, rows: BulkRows) -> int:
        """Add one part: a DataFrame, an Arrow table or value rows; return its row count."""
        if isinstance(rows, pd.DataFrame | pa.Table):
            parts: Iterable[pa.Table] = [_as_arrow(rows, self._columns)]
        else:
            parts = (_rows_as_arrow(batch, self._columns) for batch in _batched(rows))
        added = 0
        for arrow in parts:
            if arrow.num_rows:
                added += self._add_arrow(arrow)
        self.rows += added
        return added

    def _add_arrow(self, arrow: pa.Table) -> int:
        if is_postgresql(self._conn):
            for name, value in self._constants.items():
                arrow = arrow.append_column(name, _repeated(value, arrow.num_rows))
            self._copy_arrow(arrow)
            return int(arrow.num_rows)
        return self._insert_arrow(arrow)

    # -- PostgreSQL: COPY --------------------------------------------------------------

    def _copy_arrow(self, arrow: pa.Table) -> None:
        if self._copy is None:
            cursor = self.stack.enter_context(driver_connection(self._conn).cursor())
            statement = _copy_statement(self._target.name, [*self._columns, *self._constants])
            self._copy = self.stack.enter_context(
                cursor.copy(statement, writer=_BoundedQueuedWriter(cursor))
            )
        data = _copy_text(arrow)
        for start in range(0, len(data), COPY_BLOCK_BYTES):
            self._copy.write(data[start : start + COPY_BLOCK_BYTES])

    # -- SQLite: INSERT ... VALUES of many rows ----------------------------------------

    def _insert_arrow(self, arrow: pa.Table) -> int:
        # Values are made here, in the caller's thread; the writer thread inserts them.
        if self._sqlite is None:
            dbapi = driver_connection(self._conn)
            self._sqlite = self.stack.enter_context(_SqliteWriter(dbapi))
            self._statement_rows = _statement_rows(dbapi, len(self._columns))
        width = len(self._columns)
        for batch in arrow.to_batches(max_chunksize=_SQLITE_BATCH_ROWS):
            values = _row_major_values(batch)
            statements: list[_Statements] = []
            start = 0
            for rows, count in _statement_shapes(batch.num_rows, self._statement_rows):
                size = rows * width
                end = start + count * size
                params = [values[at : at + size] for at in range(start, end, size)]
                statements.append((self._statement(rows), params))
                start = end
            self._sqlite.put(statements)
        return int(arrow.num_rows)

    def _statement(self, rows: int) -> str:
        """``INSERT INTO t (...) VALUES (?, ..., constant), ...`` with ``rows`` rows."""
        statement = self._statements.get(rows)
        if statement is None:
            if not self._statements:
                self._statements[1] = self._insert_statement()
            # The first " VALUES " is the keyword: the names before it are plain
            # identifiers, and any constant's text comes after it.
            head, keyword, row = self._statements[1].partition(" VALUES ")
            statement = self._statements[rows] = head + keyword + ", ".join([row] * rows)
        return statement

    def _insert_statement(self) -> str:
        # Compiled by SQLAlchemy, so names are quoted by the dialect, never f-stringed;
        # constants are rendered once as literals by the dialect instead of bound per row.
        dialect = self._conn.dialect
        values: dict[str, Any] = {c: sa.bindparam(c) for c in self._columns}
        for name, value in self._constants.items():
            if isinstance(value, datetime):
                value = sqlite_timestamp(value)
            literal = sa.literal(value).compile(
                dialect=dialect, compile_kwargs={"literal_binds": True}
            )
            values[name] = sa.literal_column(str(literal))
        return str(sa.insert(self._target).values(values).compile(dialect=dialect))


def _check_constants(constants: Mapping[str, Any]) -> dict[str, Any]:
    for name, value in constants.items():
        check_identifier(name)
        if isinstance(value, datetime) and value.tzinfo is None:
            raise InvalidParameter(f"constant {name!r} must be an aware datetime")
        if value is not None and not isinstance(value, int | str | datetime):
            raise InvalidParameter(
                f"constant {name!r} is a {type(value).__name__}; use an int, text or datetime"
            )
    return dict(constants)


def _repeated(value: Any, count: int) -> pa.Array:
    """A constant column for COPY. A time goes as ISO text, which COPY parses once per
    row for nothing like the cost of Arrow formatting a zoned timestamp (1.2 s per
    million rows here)."""
    if value is None:
        return pa.nulls(count)
    if isinstance(value, datetime):
        return pa.repeat(pa.scalar(value.isoformat(), pa.string()), count)
    return pa.repeat(value, count)


class _SqliteWriter:
    """Runs a SQLite bulk insert's statements in a thread of its own.

    While sqlite3 binds and steps one batch there (it releases the GIL while it
    steps), the caller's thread turns the next part into values, as the COPY writer
    thread does on PostgreSQL. Nothing else uses the connection meanwhile: the
    caller does not use it inside the bulk writer's block, and the block's end
    waits for the thread. The first error stops the inserts; it is raised in the
    caller's thread, at its next part or at the end of the block.

    A connection that only its own thread may use (``check_same_thread``, e.g. an
    in-memory database) runs the statements in the caller's thread instead.
    """

    def __init__(self, dbapi: sqlite3.Connection) -> None:
        self._dbapi = dbapi
        self._cursor: sqlite3.Cursor | None = None
        self._queue: queue.Queue[list[_Statements] | None] = queue.Queue(
            maxsize=_SQLITE_QUEUE_BATCHES
        )
        self._error: BaseException | None = None
        self._threaded = False
        self._started = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="cctasks-sqlite-writer", daemon=True)

    def __enter__(self) -> _SqliteWriter:
        self._thread.start()
        self._started.wait()
        self._threaded = self._cursor is not None
        if not self._threaded:  # the connection is bound to the caller's thread
            self._thread.join()
            self._cursor = self._dbapi.cursor()
        return self

    def put(self, statements: list[_Statements]) -> None:
        """Run (or queue) one batch: statements, each with the rows for ``executemany``.

        Raises:
            sqlite3.Error: the database refused this batch or an earlier one.
        """
        self._raise_error()
        if self._threaded:
            self._queue.put(statements)
        else:
            self._execute(statements)

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if self._threaded:
            if exc is not None:
                self._stop.set()  # the caller failed: skip what is still queued
            self._queue.put(None)
            self._thread.join()
        if self._cursor is not None:
            self._cursor.close()
        if exc is None:
            self._raise_error()

    def _raise_error(self) -> None:
        if self._error is not None:
            raise self._error

    def _execute(self, statements: list[_Statements]) -> None:
        assert self._cursor is not None
        for statement, params in statements:
            self._cursor.executemany(statement, params)

    def _run(self) -> None:
        try:
            self._cursor = self._dbapi.cursor()
        except sqlite3.ProgrammingError:
            return  # created in (and bound to) another thread: __enter__ falls back
        finally:
            self._started.set()
        while (statements := self._queue.get()) is not None:
            if self._error is not None or self._stop.is_set():
                continue  # keep taking batches, so the caller never waits on a full queue
            try:
                self._execute(statements)
            except BaseException as exc:  # raised in the caller's thread
                self._error = exc


class _BoundedQueuedWriter(QueuedLibpqWriter):
    """psycopg's queued COPY writer, with a short queue.

    The writer thread sends while Python renders the next part, which is the point;
    but psycopg's queue holds 1024 blocks, so a fast producer could park a whole
    file in memory. A short queue makes the producer wait for the server instead.
    """

    def __init__(self, cursor: Any) -> None:
        super().__init__(cursor)
        self._queue = type(self._queue)(maxsize=_COPY_QUEUE_BLOCKS)


def _copy_text(arrow: pa.Table) -> memoryview:
    """The rows in COPY's text format: tab-separated, ``\\N`` for NULL, one line a row.

    Built over whole columns by Arrow. The server reads it faster than CSV (nothing
    is quoted, so a JSON document's quotes are not doubled), and only a column that
    holds a backslash, tab or line break pays for escaping.
    """
    columns = []
    for column in arrow.columns:
        values = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
        if not pa.types.is_string(values.type):
            values = pc.cast(values, pa.string())
        if len(values) > values.null_count:
            # Look at the bytes (a regex over the column costs ten times more), and
            # replace only the characters that occur.
            data = string_bytes(values)[1]
            for char, escaped in _COPY_ESCAPES:
                if (data == ord(char)).any():
                    values = pc.replace_substring(values, char, escaped)
        columns.append(values)
    lines = pc.binary_join_element_wise(
        *columns, "\t", null_handling="replace", null_replacement="\\N"
    )
    lines = pc.binary_join_element_wise(lines, "", "\n")  # each line ends with a newline
    _, offsets, data = lines.buffers()
    bounds = np.frombuffer(offsets, dtype=np.int32)[lines.offset : lines.offset + len(lines) + 1]
    return memoryview(data)[int(bounds[0]) : int(bounds[-1])]


# COPY text format: the backslash first, so that the escapes it adds stay as they are.
_COPY_ESCAPES = (("\\", "\\\\"), ("\t", "\\t"), ("\n", "\\n"), ("\r", "\\r"))


def _copy_statement(table: str, columns: list[str]) -> Any:
    from psycopg import sql

    return sql.SQL("COPY {} ({}) FROM STDIN").format(
        sql.Identifier(table), sql.SQL(", ").join(sql.Identifier(c) for c in columns)
    )


def _rows_as_arrow(batch: list[Sequence[Any]], columns: list[str]) -> pa.Table:
    """Value rows as an Arrow table (types inferred per column), for the COPY path."""
    values = list(zip(*batch, strict=True)) if batch else [() for _ in columns]
    if len(values) != len(columns):
        raise InvalidParameter(f"rows have {len(values)} values; expected {len(columns)}")
    return pa.table({name: pa.array(list(col)) for name, col in zip(columns, values, strict=True)})


def _sqlite_values(column: pa.ChunkedArray | pa.Array) -> list[Any]:
    if pa.types.is_timestamp(column.type):
        # Stored the way UTCDateTime stores them (naive UTC text), so bulk rows compare
        # with ORM rows; formatted by Arrow, not once per value in Python.
        utc = column.cast(pa.timestamp("us", tz="UTC"))  # naive values are UTC already
        column = pc.strftime(utc, format="%Y-%m-%d %H:%M:%S")  # %S carries the microseconds
    values: list[Any] = column.to_pylist()
    return values


def _row_major_values(batch: pa.RecordBatch) -> list[Any]:
    """The batch's values row after row (row 0's columns, then row 1's, ...).

    Each column lands in its slots by one extended-slice assignment, which copies
    references in C: no per-row tuple is built.
    """
    width = batch.num_columns
    values: list[Any] = [None] * (batch.num_rows * width)
    for index, column in enumerate(batch.columns):
        values[index::width] = _sqlite_values(column)
    return values


def _statement_rows(dbapi: sqlite3.Connection, width: int) -> int:
    """Rows per INSERT statement: ``_SQLITE_STATEMENT_ROWS``, within the variable limit."""
    limit = dbapi.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER)
    return max(1, min(_SQLITE_STATEMENT_ROWS, limit // width))


def _statement_shapes(rows: int, per_statement: int) -> list[tuple[int, int]]:
    """How to cut ``rows`` into statements: (rows per statement, statements) pairs.

    Full statements of ``per_statement`` rows, then the rest in powers of two, so
    that a writer prepares at most a dozen statement shapes whatever its part sizes
    (sqlite3 keeps each prepared statement in its cache).
    """
    shapes = [(per_statement, rows // per_statement)] if rows >= per_statement else []
    rest = rows % per_statement
    while rest:
        size = 1 << (rest.bit_length() - 1)
        shapes.append((size, 1))
        rest -= size
    return shapes


def _batched(rows: Iterable[Sequence[Any]]) -> Iterator[list[Sequence[Any]]]:
    batch: list[Sequence[Any]] = []
    for row in rows:
        batch.append(row)
        if len(batch) >= _SQLITE_BATCH_ROWS:
            yield batch
            batch = []
    if batch:
        yield batch


# --- overlapping the producer with the load ------------------------------------------------


class _End:
    """Marks the end of a prefetched stream (carrying the producer's error, if any)."""

    def __init__(self, error: BaseException | None = None) -> None:
        self.error = error


def prefetch(
    items: Iterable[T], depth: int = 2, switch_interval: float | None = _SWITCH_INTERVAL
) -> Iterator[T]:
    """Iterate ``items`` in a background thread, up to ``depth`` items ahead.

    A load uses it to parse the next chunk of a file while the database ingests
    this one: pyarrow, regexes and the socket all release the GIL, so on two cores
    the two overlap. The producer's exception is re-raised here, in the consumer,
    at the point where its item would have come; when the consumer stops early
    (an error, a gate), the producer is told to stop and is joined.

    While it runs, the interpreter switches threads every ``switch_interval``
    seconds instead of every 5 ms (``sys.setswitchinterval``, restored afterwards):
    a producer busy in Python code otherwise holds the GIL for 5 ms each time the
    COPY writer thread needs it for its next 128 KiB, which starved the COPY and
    made a 1M-row import about 25% slower.

    Args:
        items: the iterable to run ahead (e.g. parsed chunks).
        depth: how many items may wait; bounds the memory held.
        switch_interval: the thread switch interval while running; None leaves it.
    """
    handoff: queue.Queue[Any] = queue.Queue(maxsize=max(1, depth))
    stop = threading.Event()

    def offer(item: Any) -> bool:
        while not stop.is_set():
            try:
                handoff.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for item in items:
                if not offer(item):
                    return
        except BaseException as exc:  # handed to the consumer, which re-raises it
            offer(_End(exc))
            return
        offer(_End())

    previous = sys.getswitchinterval()
    if switch_interval is not None:
        sys.setswitchinterval(switch_interval)
    worker = threading.Thread(target=produce, name="cctasks-prefetch", daemon=True)
    worker.start()
    try:
        while True:
            item = handoff.get()
            if isinstance(item, _End):
                if item.error is not None:
                    raise item.error
                return
            yield item
    finally:
        stop.set()
        worker.join()
        sys.setswitchinterval(previous)
