"""SQLite's bulk path: multi-row ``INSERT`` statements, run by a writer thread.

Private to :mod:`contact_center.storage.bulk`. A part's rows become the values of
``INSERT ... VALUES (...), (...)`` statements of up to :data:`_STATEMENT_ROWS` rows,
bound by sqlite3 itself and run with ``executemany`` on the caller's connection by a
thread of their own, while the caller's thread turns the next part into values.
Many rows per statement means fewer statements to bind and step, and fewer hand-overs
of the GIL between the threads; docs/performance.md has the figures.
"""

from __future__ import annotations

import queue
import sqlite3
import threading
from contextlib import ExitStack
from datetime import datetime
from typing import Any, TypeAlias

import pyarrow as pa
import pyarrow.compute as pc
import sqlalchemy as sa

from contact_center.storage.db import sqlite_timestamp

# Rows per batch: bounds the Python objects alive at once.
BATCH_ROWS = 20_000
# Rows per INSERT statement (fewer when the variable limit is lower).
_STATEMENT_ROWS = 1000
# Batches of values that may wait for the writer thread: bounds the memory held
# (one more is being inserted and one more made).
_QUEUE_BATCHES = 1

# Statements and, for each, its parameter sets (as executemany takes them).
_Statements: TypeAlias = list[tuple[str, list[list[Any]]]]


class SqliteInserts:
    """The INSERT statements of one bulk writer into one table, and their writer thread.

    Args:
        dbapi: the sqlite3 connection of the caller's transaction.
        stack: where the writer thread is entered (the bulk writer's).
        dialect: the connection's dialect, which quotes the names and the constants.
        target: the table.
        columns: the columns of every part (checked identifiers).
        constants: column -> one value for every row.
    """

    def __init__(
        self,
        dbapi: sqlite3.Connection,
        stack: ExitStack,
        dialect: sa.Dialect,
        target: sa.TableClause | sa.Table,
        columns: list[str],
        constants: dict[str, Any],
    ) -> None:
        self._writer = stack.enter_context(_SqliteWriter(dbapi))
        self._preparer = dialect.identifier_preparer
        self._target = target
        self._columns = columns
        self._constants = list(constants)
        # SQL literals rendered by the dialect: cheaper for SQLite than a parameter
        # repeated in every row.
        self._literals = [_literal(dialect, value) for value in constants.values()]
        limit = dbapi.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER)
        self._statement_rows = max(1, min(_STATEMENT_ROWS, limit // len(columns)))
        self._statements: dict[int, str] = {}

    def add(self, arrow: pa.Table) -> int:
        """Turn one part into statements' values and hand them to the writer thread."""
        width = len(self._columns)
        for batch in arrow.to_batches(max_chunksize=BATCH_ROWS):
            values = _row_major_values(batch)
            statements: _Statements = []
            start = 0
            for rows, count in _statement_shapes(batch.num_rows, self._statement_rows):
                size = rows * width
                end = start + count * size
                params = [values[at : at + size] for at in range(start, end, size)]
                statements.append((self._statement(rows), params))
                start = end
            self._writer.put(statements)
        return int(arrow.num_rows)

    def _statement(self, rows: int) -> str:
        """``INSERT INTO t (a, b, k) VALUES (?, ?, 7), (?, ?, 7)`` for ``rows`` rows.

        Built from the table's checked identifiers, quoted by the dialect, sqlite3's
        parameters for the rows' values, and the constants as the dialect's literals.
        """
        statement = self._statements.get(rows)
        if statement is None:
            quote = self._preparer.quote
            names = ", ".join(quote(name) for name in [*self._columns, *self._constants])
            row = "(" + ", ".join(["?"] * len(self._columns) + self._literals) + ")"
            table = self._preparer.format_table(self._target)
            values = ", ".join([row] * rows)
            statement = f"INSERT INTO {table} ({names}) VALUES {values}"  # noqa: S608 - see above
            self._statements[rows] = statement
        return statement


def _literal(dialect: sa.Dialect, value: Any) -> str:
    """A constant as SQL text, quoted and escaped by the dialect."""
    if isinstance(value, datetime):
        value = sqlite_timestamp(value)  # as UTCDateTime stores it
    compiled = sa.literal(value).compile(dialect=dialect, compile_kwargs={"literal_binds": True})
    return str(compiled)


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
        self._queue: queue.Queue[_Statements | None] = queue.Queue(maxsize=_QUEUE_BATCHES)
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

    def put(self, statements: _Statements) -> None:
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

    def _execute(self, statements: _Statements) -> None:
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
