"""The fast bulk path into the contact-centre database, for both engines.

Every bulk load in cctasks goes through here, so that each engine uses its fast
path and the whole load stays in the caller's ONE transaction:

- PostgreSQL: ``COPY ... FROM STDIN`` (text format) through psycopg's
  ``cursor.copy()``, fed in blocks of :data:`~contact_center.settings.COPY_BLOCK_BYTES`
  by a writer thread, so that Python prepares the next block while the server
  ingests this one (the private ``_postgresql`` module).
- SQLite: ``INSERT ... VALUES`` statements of up to 1000 rows each, run with
  DB-API ``executemany`` on the same connection by a writer thread, so that Python
  turns the next part into values while sqlite3 inserts this one (``_sqlite``).

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

import re
import uuid
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from datetime import datetime
from typing import Any, TypeAlias

import pandas as pd
import pyarrow as pa
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from contact_center.exceptions import InvalidParameter
from contact_center.storage.bulk._postgresql import CopyStream
from contact_center.storage.bulk._prefetch import prefetch
from contact_center.storage.bulk._sqlite import BATCH_ROWS, SqliteInserts
from contact_center.storage.bulk._sqlite import _statement_shapes as _statement_shapes

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

_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")


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
        self._sink: CopyStream | SqliteInserts | None = None

    def add(self, rows: BulkRows) -> int:
        """Add one part: a DataFrame, an Arrow table or value rows; return its row count."""
        if isinstance(rows, pd.DataFrame | pa.Table):
            parts: Iterable[pa.Table] = [_as_arrow(rows, self._columns)]
        else:
            parts = (_rows_as_arrow(batch, self._columns) for batch in _batched(rows))
        added = 0
        for arrow in parts:
            if arrow.num_rows:
                added += self._open().add(arrow)
        self.rows += added
        return added

    def _open(self) -> CopyStream | SqliteInserts:
        """The engine's sink, opened with the first rows (in :attr:`stack`)."""
        if self._sink is None:
            dbapi = driver_connection(self._conn)
            if is_postgresql(self._conn):
                self._sink = CopyStream(
                    dbapi, self.stack, self._target.name, self._columns, self._constants
                )
            else:
                self._sink = SqliteInserts(
                    dbapi,
                    self.stack,
                    self._conn.dialect,
                    self._target,
                    self._columns,
                    self._constants,
                )
        return self._sink


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


def _rows_as_arrow(batch: list[Sequence[Any]], columns: list[str]) -> pa.Table:
    """Value rows as an Arrow table (types inferred per column), for the COPY path."""
    values = list(zip(*batch, strict=True)) if batch else [() for _ in columns]
    if len(values) != len(columns):
        raise InvalidParameter(f"rows have {len(values)} values; expected {len(columns)}")
    return pa.table({name: pa.array(list(col)) for name, col in zip(columns, values, strict=True)})


def _batched(rows: Iterable[Sequence[Any]]) -> Iterator[list[Sequence[Any]]]:
    batch: list[Sequence[Any]] = []
    for row in rows:
        batch.append(row)
        if len(batch) >= BATCH_ROWS:
            yield batch
            batch = []
    if batch:
        yield batch
