"""Campaign results: the call attempts, their two export formats, and export bookkeeping.

This is the domain half of the ``export-campaign-results`` flow; no Prefect here.

**Formats.** Both are CSV in UTF-8 with a header row; their columns are fixed
(:data:`SIMPLE_COLUMNS`, :data:`DETAILED_COLUMNS`) and followed by the records'
custom fields, one column per key, sorted (see :func:`custom_columns`):

- ``detailed``: one row per result row (dialled or not), oldest first.
- ``simple``: one row per record attempted in the window, with its final
  disposition (from its latest result row in the window) and its number of dialled
  attempts in the window.

**Windows.** A window ``[start, end)`` applies to ``call_attempts.recorded_at``, the
time the contact centre wrote the row, not to ``attempted_at``: an attempt written
late still lands in the next window instead of being skipped by a window that has
already moved past its attempt time. ``since: last`` runs from the stored watermark
of the (campaign, destination) pair up to the run's scheduled time, and moves the
watermark when the file has been delivered; an explicit ``START/END`` window
(a backfill) never moves it.

**Exactly once.** :func:`plan_export` writes a ``pending`` ``results_exports`` row
before anything is delivered; its id is the export's id, part of the default file
name (:mod:`contact_center.storage.export_naming`). A later run (a retry, or the next
scheduled run) that finds it resumes that same window under the same id and file
name, so a file that was renamed into place just before a crash is replaced by the
same export, never repeated in a second file. No export ever replaces a file that
another export delivered. :func:`complete_export` marks the row ``delivered`` and
advances the watermark in one transaction, after the rename. A backfill (an explicit
window) reserves a ``backfill`` row the same way, for its id; it is never resumed.

**Safety.** Every text cell that starts with ``=``, ``+``, ``-``, ``@``, a tab or a
carriage return gets a leading apostrophe (:func:`neutralise`), so spreadsheets show
it as text instead of running it. This includes E.164 phone numbers: ``+12125550100``
is written ``'+12125550100``, which a spreadsheet shows as text (never a number that
loses its ``+``, never a formula); a program that reads the file strips one leading
apostrophe. ``neutralise_formulas=False`` writes cells exactly as stored, for
machine-to-machine feeds.

**Streaming.** The rows are never all in memory: on PostgreSQL the server renders the
CSV (``COPY (SELECT ...) TO STDOUT``, the neutralisation done in the same SQL) and the
blocks are written straight to the file; on SQLite the rows are fetched in batches
(``yield_per``) and written with :mod:`csv`.

:func:`deployments.demo.attempts.generate_call_attempts` writes realistic results for the
demo, tests and benchmarks.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import IO, Any, Literal, cast

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql as pg_dialect
from sqlalchemy.dialects import sqlite as sqlite_dialect
from sqlalchemy.engine import Connection, Engine

from contact_center.exceptions import DatabaseError, InvalidParameter
from contact_center.storage.campaigns import CampaignInfo, get_campaign, transaction
from contact_center.storage.export_naming import (
    DEFAULT_FILE_NAME,
    destination_key,
    render_file_name,
)
from contact_center.storage.models import (
    RECORD_FIELDS,
    CallAttempt,
    CallingList,
    Campaign,
    CampaignList,
    ExportWatermark,
    ListRecord,
    ResultsExport,
    utcnow,
)

__all__ = [
    "DEFAULT_FILE_NAME",
    "ATTEMPT_FIELDS",
    "DETAILED_COLUMNS",
    "EXPORT_BATCH_ROWS",
    "FORMATS",
    "FORMULA_TRIGGERS",
    "SIMPLE_COLUMNS",
    "ExportPlan",
    "ExportWindow",
    "Since",
    "complete_export",
    "count_rows",
    "custom_columns",
    "custom_keys",
    "destination_key",
    "export_query",
    "header",
    "neutralise",
    "parse_since",
    "parse_time",
    "plan_export",
    "render_file_name",
    "write_export",
]

FORMATS = ("simple", "detailed")
#: A cell that starts with one of these is neutralised (OWASP's CSV-injection list).
FORMULA_TRIGGERS = ("=", "+", "-", "@", "\t", "\r")
#: Rows fetched per batch where the rows pass through Python (SQLite).
EXPORT_BATCH_ROWS = 1_000

# The record's standard fields, shared by both formats (custom fields come last).
_RECORD_COLUMNS = ("campaign", "list", "record_key", *RECORD_FIELDS)

#: A result row's own fields, as stored in ``call_attempts`` and written by ``detailed``.
ATTEMPT_FIELDS = (
    "phone",
    "attempted_at",
    "recorded_at",
    "is_call_attempt",
    "completed",
    "record_disposition",
    "record_disposition_code",
    "call_disposition",
    "call_disposition_code",
    "out_of_quota",
    "call_note",
    "global_interaction_id",
    "action_applied",
    "agent",
)

#: The columns of the ``detailed`` format, in order (custom fields follow).
DETAILED_COLUMNS: tuple[str, ...] = (*_RECORD_COLUMNS, "attempt_id", *ATTEMPT_FIELDS)

#: The columns of the ``simple`` format, in order (custom fields follow).
SIMPLE_COLUMNS: tuple[str, ...] = (
    *_RECORD_COLUMNS,
    "record_disposition",
    "record_disposition_code",
    "completed",
    "attempts",
    "last_attempt_at",
    "last_phone",
    "last_call_disposition",
    "last_call_disposition_code",
    "last_agent",
)

_ISO_UTC_PG = 'YYYY-MM-DD"T"HH24:MI:SS"Z"'
_ISO_UTC_SQLITE = "%Y-%m-%dT%H:%M:%SZ"

_attempts = cast(sa.Table, CallAttempt.__table__)
_records = cast(sa.Table, ListRecord.__table__)
_lists = cast(sa.Table, CallingList.__table__)
_campaigns = cast(sa.Table, Campaign.__table__)
_campaign_lists = cast(sa.Table, CampaignList.__table__)
_watermarks = cast(sa.Table, ExportWatermark.__table__)
_exports = cast(sa.Table, ResultsExport.__table__)


# --- parameters (pure) ---------------------------------------------------------------------


@dataclass(frozen=True)
class Since:
    """The ``since`` parameter, parsed.

    Attributes:
        mode: ``last`` (from the watermark) or ``window`` (an explicit backfill).
        start: the explicit window's start (UTC), for ``window``.
        end: the explicit window's end (UTC, exclusive), for ``window``.
    """

    mode: Literal["last", "window"]
    start: datetime | None = None
    end: datetime | None = None


def parse_time(text: str, name: str) -> datetime:
    """Parse an ISO 8601 time; a time without an offset is UTC.

    Args:
        text: e.g. ``2026-11-01T00:00``, ``2026-11-01``, ``2026-11-01T00:00-05:00``.
        name: the parameter's name, for the message.

    Raises:
        InvalidParameter: not an ISO 8601 date or time.
    """
    try:
        value = datetime.fromisoformat(text.strip())
    except (ValueError, AttributeError):
        raise InvalidParameter(
            f"{name} {text!r} is not an ISO 8601 time (e.g. 2026-11-01T00:00)"
        ) from None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def parse_since(since: str) -> Since:
    """Parse ``since``: ``last``, or ``START/END`` in ISO 8601 (``END`` exclusive).

    Raises:
        InvalidParameter: neither form, or a window whose end is not after its start.
    """
    if not isinstance(since, str) or not since.strip():
        raise InvalidParameter("since must be 'last' or an ISO window 'START/END'")
    text = since.strip()
    if text == "last":
        return Since("last")
    start_text, sep, end_text = text.partition("/")
    if not sep:
        raise InvalidParameter(
            f"since {since!r} must be 'last' or a window 'START/END' "
            "(e.g. 2026-11-01T00:00/2026-11-02T00:00)"
        )
    start = parse_time(start_text, "since start")
    end = parse_time(end_text, "since end")
    if end <= start:
        raise InvalidParameter(f"since {since!r}: the end must be after the start")
    return Since("window", start, end)


def neutralise(value: str | None) -> str | None:
    """Prefix a cell that a spreadsheet would run (``=+-@``, tab, CR) with ``'``.

    This is the rule that :func:`export_query` applies in SQL to every text cell;
    the header is written through this function.
    """
    if value and value[0] in FORMULA_TRIGGERS:
        return "'" + value
    return value


def custom_columns(keys: Sequence[str]) -> list[str]:
    """Header names for custom-field keys: the key itself, unless a standard column
    of either format already has that name (then ``custom_<key>``)."""
    taken = set(SIMPLE_COLUMNS) | set(DETAILED_COLUMNS)
    names: list[str] = []
    for key in keys:
        name = key
        while name in taken:
            name = f"custom_{name}"
        taken.add(name)
        names.append(name)
    return names


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


# --- windows, watermarks and the export record --------------------------------------------


@dataclass(frozen=True)
class ExportWindow:
    """The window one export covers, on ``recorded_at``: ``[start, end)``.

    Attributes:
        start: inclusive, UTC.
        end: exclusive, UTC.
        advances_watermark: ``since: last`` (the watermark moves to ``end`` once
            delivered); an explicit window does not move it.
        export_id: the export's ``results_exports`` row, reserved before the delivery
            (``pending`` for ``since: last``, ``backfill`` for an explicit window).
        resumed: the window is that of an earlier, interrupted export.
        up_to_date: nothing to do: the watermark is already at or past the run's time.
    """

    start: datetime
    end: datetime
    advances_watermark: bool
    export_id: int | None = None
    resumed: bool = False
    up_to_date: bool = False


@dataclass(frozen=True)
class ExportPlan:
    """What the select step decided: the campaign, the window, the columns, the name.

    Attributes:
        campaign: the campaign.
        destination: the destination as the user wrote it.
        format: ``simple`` or ``detailed``.
        window: the window.
        custom_keys: the custom-field keys that become columns, sorted.
        rows: how many data rows are expected (for progress).
        file_name: the final file name at the destination.
        replace: whether the delivery may replace a file of that name: only when the
            export resumes its own interrupted delivery and no other export
            delivered that name.
    """

    campaign: CampaignInfo
    destination: str
    format: str
    window: ExportWindow
    custom_keys: tuple[str, ...]
    rows: int
    file_name: str
    replace: bool = False


def _read_watermark(conn: Connection, campaign_id: int, destination: str) -> datetime | None:
    return conn.execute(
        sa.select(ExportWatermark.watermark).where(
            ExportWatermark.campaign_id == campaign_id,
            ExportWatermark.destination == destination,
        )
    ).scalar()


def _pending_export(
    conn: Connection, campaign_id: int, destination: str, watermark: datetime | None
) -> Any:
    query = (
        sa.select(_exports.c.id, _exports.c.window_start, _exports.c.window_end)
        .where(
            _exports.c.campaign_id == campaign_id,
            _exports.c.destination == destination,
            _exports.c.status == "pending",
        )
        .order_by(_exports.c.id.desc())
        .limit(1)
    )
    if watermark is not None:
        query = query.where(_exports.c.window_start == watermark)
    return conn.execute(query).first()


def _first_start(conn: Connection, campaign_id: int, end: datetime) -> datetime:
    """The start of a first export without ``first_since``: its oldest row, else ``end``."""
    oldest = conn.execute(
        sa.select(sa.func.min(CallAttempt.recorded_at)).where(
            CallAttempt.campaign_id == campaign_id, CallAttempt.recorded_at < end
        )
    ).scalar()
    return oldest if oldest is not None else end


def plan_export(
    bind: Connection | Engine,
    *,
    campaign: str,
    destination: str,
    since: Since,
    run_time: datetime,
    first_since: datetime | None = None,
    format: str = "detailed",
    file_name: Callable[[datetime, datetime, int], str] | None = None,
    flow_run_id: str | None = None,
) -> tuple[CampaignInfo, ExportWindow]:
    """Choose the window of an export and reserve its ``results_exports`` row (its id).

    ``since: last`` resumes the newest ``pending`` export of the pair whose start is
    the watermark (an interrupted run: same window and id, so the same file name);
    else it runs from the watermark (or ``first_since``, or the campaign's oldest
    row) to ``run_time``, and records the window as a ``pending`` row. An explicit
    window reserves a ``backfill`` row, which is never resumed.

    Args:
        bind: an engine or a connection.
        campaign: the campaign's name.
        destination: the destination as written (see :func:`destination_key`).
        since: from :func:`parse_since`.
        run_time: the run's scheduled time: the end of a ``since: last`` window.
        first_since: the start of the very first export, if not everything.
        format: recorded on the export row.
        file_name: renders the file name from (start, end, export id), recorded on
            the row.
        flow_run_id: the Prefect flow run, recorded on the row.

    Raises:
        ObjectNotFound: no such campaign.
    """
    key = destination_key(destination)
    with transaction(bind) as conn:
        info = get_campaign(conn, campaign)
        if since.mode == "window":
            assert since.start is not None and since.end is not None
            reserve = _Reservation(info.id, key, format, flow_run_id, file_name)
            export_id = reserve(conn, since.start, since.end, status="backfill")
            return info, ExportWindow(since.start, since.end, False, export_id=export_id)
        watermark = _read_watermark(conn, info.id, key)
        pending = _pending_export(conn, info.id, key, watermark)
        if pending is not None:
            conn.execute(
                sa.update(_exports)
                .where(_exports.c.id == pending.id)
                .values(flow_run_id=flow_run_id, format=format)
            )
            start = pending.window_start
            return info, ExportWindow(
                start, pending.window_end, True, export_id=pending.id, resumed=True
            )
        run_time = run_time.astimezone(UTC)
        if watermark is not None and watermark >= run_time:
            return info, ExportWindow(watermark, watermark, True, up_to_date=True)
        if watermark is not None:
            start = watermark
        elif first_since is not None:
            start = min(first_since, run_time)
        else:
            start = _first_start(conn, info.id, run_time)
        reserve = _Reservation(info.id, key, format, flow_run_id, file_name)
        export_id = reserve(conn, start, run_time, status="pending")
        return info, ExportWindow(start, run_time, True, export_id=export_id)


@dataclass(frozen=True)
class _Reservation:
    """Writes the ``results_exports`` row of an export about to be delivered."""

    campaign_id: int
    destination: str
    format: str
    flow_run_id: str | None
    file_name: Callable[[datetime, datetime, int], str] | None

    def __call__(self, conn: Connection, start: datetime, end: datetime, *, status: str) -> int:
        """Insert the row; then record its file name, which holds the row's id."""
        export_id = int(
            conn.execute(
                sa.insert(_exports)
                .values(
                    campaign_id=self.campaign_id,
                    destination=self.destination,
                    format=self.format,
                    window_start=start,
                    window_end=end,
                    rows=0,
                    bytes=0,
                    flow_run_id=self.flow_run_id,
                    exported_at=utcnow(),
                    status=status,
                )
                .returning(_exports.c.id)
            ).scalar_one()
        )
        if self.file_name is not None:
            name = self.file_name(start, end, export_id)
            conn.execute(
                sa.update(_exports).where(_exports.c.id == export_id).values(file_name=name)
            )
        return export_id


def _advance_watermark(conn: Connection, campaign_id: int, destination: str, to: datetime) -> None:
    values = {
        "campaign_id": campaign_id,
        "destination": destination,
        "watermark": to,
        "updated_at": utcnow(),
    }
    dialect = pg_dialect if conn.dialect.name == "postgresql" else sqlite_dialect
    insert = dialect.insert(_watermarks).values(**values)
    # Never backwards: a late retry of an older window leaves a newer watermark alone.
    conn.execute(
        insert.on_conflict_do_update(
            index_elements=[_watermarks.c.campaign_id, _watermarks.c.destination],
            set_={"watermark": insert.excluded.watermark, "updated_at": insert.excluded.updated_at},
            where=_watermarks.c.watermark < insert.excluded.watermark,
        )
    )


def complete_export(
    bind: Connection | Engine,
    *,
    campaign_id: int,
    destination: str,
    window: ExportWindow,
    format: str,
    file_name: str | None,
    rows: int,
    bytes: int,
    flow_run_id: str | None = None,
) -> int:
    """Record a delivered export and, for ``since: last``, advance the watermark.

    One transaction: the export row becomes ``delivered`` and the watermark moves to
    the window's end together, or neither happens. Call it only after the file was
    renamed into place (or when an empty window wrote no file).

    Returns:
        The ``results_exports`` row's id.
    """
    key = destination_key(destination)
    values = {
        "file_name": file_name,
        "format": format,
        "rows": rows,
        "bytes": bytes,
        "flow_run_id": flow_run_id,
        "exported_at": utcnow(),
        "status": "delivered",
    }
    with transaction(bind) as conn:
        if window.export_id is not None:
            conn.execute(
                sa.update(_exports).where(_exports.c.id == window.export_id).values(values)
            )
            export_id = window.export_id
        else:
            export_id = conn.execute(
                sa.insert(_exports)
                .values(
                    campaign_id=campaign_id,
                    destination=key,
                    window_start=window.start,
                    window_end=window.end,
                    **values,
                )
                .returning(_exports.c.id)
            ).scalar_one()
        if window.advances_watermark:
            _advance_watermark(conn, campaign_id, key, window.end)
    return int(export_id)
