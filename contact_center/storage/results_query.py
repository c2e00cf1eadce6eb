"""Campaign results: the export query, its header and row counts, and writing the file.

The columns and the cell neutralisation are those of
:mod:`contact_center.storage.results_format`.

**Streaming.** The rows are never all in memory: on PostgreSQL the server renders the
CSV (``COPY (SELECT ...) TO STDOUT``, the neutralisation done in the same SQL) and the
blocks are written straight to the file; on SQLite the rows are fetched in batches
(``yield_per``) and written with :mod:`csv`.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import IO, Any, cast

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from contact_center.exceptions import DatabaseError, InvalidParameter
from contact_center.storage.models import (
    RECORD_FIELDS,
    CallAttempt,
    CallingList,
    Campaign,
    ListRecord,
)
from contact_center.storage.results_format import (
    DETAILED_COLUMNS,
    EXPORT_BATCH_ROWS,
    FORMATS,
    FORMULA_TRIGGERS,
    SIMPLE_COLUMNS,
    custom_columns,
    neutralise,
)

__all__ = [
    "RowProgress",
    "count_rows",
    "custom_keys",
    "export_query",
    "header",
    "write_export",
]

_ISO_UTC_PG = 'YYYY-MM-DD"T"HH24:MI:SS"Z"'
_ISO_UTC_SQLITE = "%Y-%m-%dT%H:%M:%SZ"

_attempts = cast(sa.Table, CallAttempt.__table__)
_records = cast(sa.Table, ListRecord.__table__)
_lists = cast(sa.Table, CallingList.__table__)
_campaigns = cast(sa.Table, Campaign.__table__)


# --- the export query ----------------------------------------------------------------------


_TRIGGER_CODES: tuple[sa.ColumnClause[Any], ...] = tuple(
    sa.literal_column(str(ord(c))) for c in FORMULA_TRIGGERS
)


def _empty_as_null(expr: sa.ColumnElement[Any]) -> sa.ColumnElement[Any]:
    """An empty string becomes NULL, so that both engines write it as an empty cell."""
    return sa.func.nullif(expr, sa.literal_column("''"), type_=sa.Text)


def _neutralised(expr: sa.ColumnElement[Any], dialect: str) -> sa.ColumnElement[Any]:
    """SQL for :func:`neutralise`.

    The first character's code point (NULL for NULL, 0 or NULL for an empty string)
    is tested against the triggers' codes: measured on PostgreSQL, half the CPU of a
    ``substr(...) IN (...)`` string test, which counts at 40 cells a row.
    """
    first = sa.func.ascii(expr) if dialect == "postgresql" else sa.func.unicode(expr)
    return sa.case(
        (first.in_(_TRIGGER_CODES), sa.literal_column("''''", sa.Text) + expr),
        else_=_empty_as_null(expr),
    )


def _iso_utc(expr: sa.ColumnElement[Any], dialect: str) -> sa.ColumnElement[Any]:
    if dialect == "postgresql":
        return sa.func.to_char(sa.func.timezone("UTC", expr), _ISO_UTC_PG)
    return sa.func.strftime(_ISO_UTC_SQLITE, expr)


def _flag(expr: sa.ColumnElement[Any]) -> sa.ColumnElement[Any]:
    return sa.case((expr, "true"), else_="false")


def _custom_document() -> sa.ColumnElement[Any]:
    """A record's custom fields as ``json`` (they are stored as its text, models.JsonText)."""
    return sa.cast(_records.c.custom_fields, sa.JSON())


def _custom_value(key: str, dialect: str) -> sa.ColumnElement[Any]:
    if dialect == "postgresql":
        return cast(sa.ColumnElement[Any], _custom_document()[key].as_string())
    # json_each matches any key exactly; a JSON path would need quoting rules.
    fields = sa.func.json_each(_records.c.custom_fields).table_valued("key", "value")
    return sa.select(sa.cast(fields.c.value, sa.Text)).where(fields.c.key == key).scalar_subquery()


def _window_filter(
    table: sa.Table | sa.Subquery, campaign_id: int, start: datetime, end: datetime
) -> sa.ColumnElement[bool]:
    return sa.and_(
        table.c.campaign_id == campaign_id,
        table.c.recorded_at >= start,
        table.c.recorded_at < end,
    )


def _record_columns(
    source: sa.Table | sa.Subquery, text: Callable[[sa.ColumnElement[Any]], Any]
) -> list[Any]:
    return [
        text(_campaigns.c.name),
        text(_lists.c.name),
        text(source.c.record_key),
        *(text(_records.c[field]) for field in RECORD_FIELDS),
    ]


def export_query(
    dialect: str,
    *,
    format: str,
    campaign_id: int,
    start: datetime,
    end: datetime,
    custom_keys: Sequence[str] = (),
    neutralise_formulas: bool = True,
) -> sa.Select[Any]:
    """The SELECT whose rows are the export's data rows, as text, in header order.

    Every column is labelled ``c0``, ``c1``, ...: the header is written separately
    (see :func:`header`), so no user text ever becomes an SQL identifier.

    Args:
        dialect: ``postgresql`` or ``sqlite``.
        format: ``simple`` or ``detailed``.
        campaign_id: the campaign.
        start: the window's start (inclusive), on ``recorded_at``.
        end: the window's end (exclusive).
        custom_keys: the custom-field keys to add as columns, in order.
        neutralise_formulas: neutralise cells that start with a formula trigger.
    """
    if format not in FORMATS:
        raise InvalidParameter(f"format {format!r} is not one of {', '.join(FORMATS)}")

    def text(expr: sa.ColumnElement[Any]) -> sa.ColumnElement[Any]:
        if neutralise_formulas:
            return _neutralised(expr, dialect)
        return _empty_as_null(expr)

    if format == "detailed":
        source: sa.Table | sa.Subquery = _attempts
        where = _window_filter(_attempts, campaign_id, start, end)
        columns = [
            *_record_columns(source, text),
            source.c.id,
            text(source.c.phone),
            _iso_utc(source.c.attempted_at, dialect),
            _iso_utc(source.c.recorded_at, dialect),
            _flag(source.c.is_call_attempt),
            _flag(source.c.completed),
            text(source.c.record_disposition),
            text(source.c.record_disposition_code),
            text(source.c.call_disposition),
            text(source.c.call_disposition_code),
            _flag(source.c.out_of_quota),
            text(source.c.call_note),
            text(source.c.global_interaction_id),
            text(source.c.action_applied),
            text(source.c.agent),
        ]
        order = (source.c.recorded_at, source.c.id)
    else:
        by_record = (_attempts.c.list_id, _attempts.c.record_key)
        ranked = (
            sa.select(
                _attempts,
                sa.func.row_number()
                .over(
                    partition_by=by_record,
                    order_by=(_attempts.c.attempted_at.desc(), _attempts.c.id.desc()),
                )
                .label("result_rank"),
                sa.func.sum(sa.case((_attempts.c.is_call_attempt, 1), else_=0))
                .over(partition_by=by_record)
                .label("dialled"),
            )
            .where(_window_filter(_attempts, campaign_id, start, end))
            .subquery("ranked")
        )
        source = ranked
        where = ranked.c.result_rank == 1
        columns = [
            *_record_columns(source, text),
            text(source.c.record_disposition),
            text(source.c.record_disposition_code),
            _flag(source.c.completed),
            source.c.dialled,
            _iso_utc(source.c.attempted_at, dialect),
            text(source.c.phone),
            text(source.c.call_disposition),
            text(source.c.call_disposition_code),
            text(source.c.agent),
        ]
        order = (source.c.list_id, source.c.record_key)
    columns += [text(_custom_value(key, dialect)) for key in custom_keys]
    joined = (
        source.join(_campaigns, _campaigns.c.id == source.c.campaign_id)
        .outerjoin(_lists, _lists.c.id == source.c.list_id)
        .outerjoin(
            _records,
            sa.and_(
                _records.c.list_id == source.c.list_id,
                _records.c.record_key == source.c.record_key,
            ),
        )
    )
    return (
        sa.select(*(column.label(f"c{i}") for i, column in enumerate(columns)))
        .select_from(joined)
        .where(where)
        .order_by(*order)
    )


def header(
    format: str, custom_keys: Sequence[str], *, neutralise_formulas: bool = True
) -> list[str]:
    """The header row of an export: the format's columns, then the custom fields."""
    standard = SIMPLE_COLUMNS if format == "simple" else DETAILED_COLUMNS
    names = [*standard, *custom_columns(custom_keys)]
    return [cast(str, neutralise(n)) for n in names] if neutralise_formulas else names


def _window_lists(campaign_id: int, start: datetime, end: datetime) -> sa.Select[Any]:
    return (
        sa.select(_attempts.c.list_id)
        .where(_window_filter(_attempts, campaign_id, start, end))
        .distinct()
    )


def count_rows(
    conn: Connection, *, format: str, campaign_id: int, start: datetime, end: datetime
) -> int:
    """How many data rows the export of the window will have, for progress.

    Exact for ``detailed``. For ``simple``, the fewer of the window's result rows and
    the records of its calling lists: counting the distinct records of a large
    window costs as much as a third of the export itself.
    """
    results = sa.select(sa.func.count()).where(_window_filter(_attempts, campaign_id, start, end))
    total = int(conn.execute(results).scalar_one())
    if format == "detailed" or total == 0:
        return total
    records = sa.select(sa.func.count()).where(
        _records.c.list_id.in_(_window_lists(campaign_id, start, end))
    )
    return min(total, int(conn.execute(records).scalar_one()))


def custom_keys(conn: Connection, *, campaign_id: int, start: datetime, end: datetime) -> list[str]:
    """The custom-field keys of the calling lists that the window's results belong to, sorted.

    Computed once before the rows are streamed, so that every row has the same
    columns. Taking every record of those lists (not only the records attempted in
    the window) gives a list's exports the same columns from one window to the next,
    and costs a fifth of the per-record query at 1,000,000 results.
    """
    lists = _window_lists(campaign_id, start, end)
    if conn.dialect.name == "postgresql":
        keys = (
            sa.func.json_object_keys(_custom_document())
            .table_valued("key")
            .render_derived(name="object_keys")
        )
        is_object = sa.func.json_typeof(_custom_document()) == "object"
    else:
        keys = sa.func.json_each(_records.c.custom_fields).table_valued("key", "value")
        is_object = sa.func.json_type(_records.c.custom_fields) == "object"
    query = (
        sa.select(keys.c.key)
        .select_from(_records)
        .join(keys, sa.true())
        .where(_records.c.list_id.in_(lists), is_object)
        .distinct()
    )
    return sorted(str(key) for key in conn.execute(query).scalars())


# --- writing the file -----------------------------------------------------------------------


RowProgress = Callable[[int], None]


def write_export(
    conn: Connection,
    query: sa.Select[Any],
    columns: Sequence[str],
    target: IO[bytes],
    progress: RowProgress | None = None,
) -> int:
    """Stream the rows of ``query`` as CSV (UTF-8, ``\\n``) into ``target``.

    Args:
        conn: a connection to the contact-centre database.
        query: from :func:`export_query`.
        columns: the header row (from :func:`header`).
        target: a binary file (e.g. a ``gzip.GzipFile``) to write to.
        progress: called with the rows written so far, now and then.

    Returns:
        The number of data rows written.
    """
    text = io.TextIOWrapper(target, encoding="utf-8", newline="", write_through=True)
    try:
        csv.writer(text, lineterminator="\n").writerow(columns)
        text.flush()
        if conn.dialect.name == "postgresql":
            return _copy_out(conn, query, target, progress)
        return _write_rows(conn, query, text, progress)
    finally:
        text.detach()


def _copy_out(
    conn: Connection, query: sa.Select[Any], target: IO[bytes], progress: RowProgress | None
) -> int:
    compiled = query.compile(dialect=conn.dialect, compile_kwargs={"render_postcompile": True})
    # COPY cannot take server-side parameters; psycopg binds them on the client, quoted.
    statement = f"COPY ({compiled}) TO STDOUT WITH (FORMAT csv)"
    dbapi = conn.connection.driver_connection
    assert dbapi is not None
    import psycopg

    rows = 0
    try:
        with dbapi.cursor() as cursor:
            cursor.execute("SET LOCAL client_encoding TO 'UTF8'")
            with cursor.copy(statement, compiled.params) as copy:
                # Each block of COPY OUT is one row, whatever newlines its cells hold.
                for block in copy:
                    target.write(block)
                    rows += 1
                    if progress is not None and rows % EXPORT_BATCH_ROWS == 0:
                        progress(rows)
    except psycopg.Error as exc:
        # The raw cursor bypasses SQLAlchemy, so its errors are mapped here.
        raise DatabaseError(
            f"the export query failed after {rows} rows: {type(exc).__name__}: {exc}"
        ) from exc
    if progress is not None:
        progress(rows)
    return rows


def _has_cr(row: Sequence[Any]) -> bool:
    return any(isinstance(cell, str) and "\r" in cell for cell in row)


def _line_quoting_cr(row: Sequence[Any]) -> str:
    """One CSV line that quotes cells holding a bare CR, as PostgreSQL's COPY does.

    :mod:`csv` quotes only the characters of its line terminator, so the row goes
    through a ``\r\n`` writer whose terminator is then replaced by ``\n``.
    """
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\r\n").writerow(row)
    return buffer.getvalue()[:-2] + "\n"


def _write_rows(
    conn: Connection, query: sa.Select[Any], text: IO[str], progress: RowProgress | None
) -> int:
    writer = csv.writer(text, lineterminator="\n")
    rows = 0
    result = conn.execution_options(yield_per=EXPORT_BATCH_ROWS).execute(query)
    for batch in result.partitions():
        if any(_has_cr(row) for row in batch):
            for row in batch:
                if _has_cr(row):
                    text.write(_line_quoting_cr(row))
                else:
                    writer.writerow(row)
        else:
            writer.writerows(batch)
        rows += len(batch)
        if progress is not None:
            progress(rows)
    text.flush()
    if progress is not None:
        progress(rows)
    return rows
