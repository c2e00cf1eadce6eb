"""Loading parsed list records into a calling list: all or nothing, set-based.

One import is ONE transaction (:func:`load_list_records`):

1. lock the list's row (create the list when it is new) and open a ``list_imports`` row;
2. stream the parsed chunks into the database with the engine's fast path
   (:mod:`contact_center.storage.bulk`): into a temporary staging table, or straight into
   ``list_records`` when the list is empty and nothing is scrubbed (then every
   valid row is new, and the staging round trip would only cost time);
3. after the last chunk: drop the rows whose key is in a scrubbed exclusion list
   (``excluded``), check the quality gates, and apply the update policy with a few
   set-based statements that also give the counts;
4. complete the ``list_imports`` row and commit.

Any error before the commit (a parse error in a later chunk, a gate, a database
error, a killed process) leaves the list exactly as it was. Re-running a file
with ``update`` finds every record unchanged and writes nothing.

Parsing is not done here (see :mod:`contact_center.parsing.lists`); this module takes
the parser's chunks: ``valid`` rows (``row``, ``record_key``, the record fields,
``custom_fields`` as JSON text) and ``rejects``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Collection, Iterable
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import pandas as pd
import pyarrow as pa
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from contact_center.exceptions import InvalidParameter, ObjectNotFound, QualityGateFailed
from contact_center.parsing.gates import RemovalGate
from contact_center.parsing.record_fields import LOADED_FIELDS
from contact_center.storage.bulk import BulkWriter, bulk_writer, is_postgresql, staging_table
from contact_center.storage.exclusions import key_is_excluded, record_match_columns
from contact_center.storage.list_imports import list_database_errors, record_skipped_import
from contact_center.storage.list_merge import (
    VALID_COLUMNS,
    RecordStamps,
    insert_new,
    merge_records,
    update_changed,
)
from contact_center.storage.list_options import ImportOptions
from contact_center.storage.list_results import LoadResult, ParsedRows, SourceFile
from contact_center.storage.list_rows import insert_new_list
from contact_center.storage.models import CallingList, ExclusionList, ListImport, ListRecord

__all__ = ["load_list_records"]


#: The staging table: the file row, then the valid columns as text.
_STAGING_COLUMNS = {"row": "bigint", **dict.fromkeys(VALID_COLUMNS, "text")}

_records = cast(sa.Table, ListRecord.__table__)
_lists = cast(sa.Table, CallingList.__table__)
_imports = cast(sa.Table, ListImport.__table__)
_exclusion_lists = cast(sa.Table, ExclusionList.__table__)


# --- the load -----------------------------------------------------------------------------


def load_list_records(
    engine: Engine,
    chunks: Iterable[ParsedRows],
    options: ImportOptions,
    source: SourceFile,
    *,
    now: datetime | None = None,
    flow_run_id: str | None = None,
    on_chunk: Callable[[int], None] | None = None,
    fields: Collection[str] | None = None,
    final_source: Callable[[], SourceFile] | None = None,
    last_sha256: str | None = None,
) -> LoadResult:
    """Load the parsed ``chunks`` of ``source`` into the list, in one transaction.

    Args:
        engine: the contact-centre database.
        chunks: the parser's chunks, consumed inside the transaction; an error
            raised while producing one rolls everything back.
        options: the import's checked parameters.
        source: the file, recorded in ``list_imports``.
        now: the import time (expiries count from it; records' ``updated_at``);
            defaults to now (on PostgreSQL, the transaction's time).
        flow_run_id: the Prefect flow run, recorded in ``list_imports``.
        on_chunk: called with the rows read so far after each chunk (progress).
        fields: the record fields the file fills (the mapping's fields); the others
            are NULL in every row and are not sent. Default: all of them.
        final_source: for a file still arriving while it is loaded, what
            ``list_imports`` records of it once all chunks are in (its checksum and
            size are only known then); ``source`` gives the name meanwhile.
        last_sha256: the checksum of the list's last completed import: a file with
            the same one is rolled back once all chunks are in, and recorded as
            ``skipped`` (None: never skip).

    Returns:
        The committed counts, or a result with ``skipped`` set; for
        ``options.dry_run``, the counts of a load that was then rolled back (nothing
        changed), with each gate's verdict instead of a :class:`QualityGateFailed`.

    Raises:
        ObjectNotFound: a ``scrub_exclusions`` list does not exist.
        QualityGateFailed: ``min_rows``, ``max_reject_ratio`` or (``replace``)
            ``max_removed_ratio`` stopped the load.
        DatabaseError: the database refused the load.
        InvalidParameter: ``key_field`` differs from the existing list's (except
            with ``replace``, which re-keys the list).
    """
    with (
        list_database_errors(engine, options.list_name, file=source.name),
        engine.connect() as conn,
        conn.begin() as transaction,
    ):
        database_time = now is None and is_postgresql(conn)
        if now is None:
            # PostgreSQL: the transaction's own time, which list_records.updated_at
            # defaults to, so that a bulk COPY need not send it with every row.
            now = conn.scalar(sa.select(sa.func.now())) if database_time else None
            now = (now or datetime.now(UTC)).astimezone(UTC)
        run = _ListLoad(conn, options, source, now, flow_run_id, fields)
        run.database_time = database_time
        run.final_source, run.last_sha256 = final_source, last_sha256
        result = run.execute(chunks, on_chunk)
        result.dry_run = options.dry_run
        if result.skipped or result.dry_run:
            # Both were done in full, so the counts are the real ones; now undo it all
            # (records, the list_imports row, a list the run created).
            transaction.rollback()
    if result.skipped and not result.dry_run:
        result.import_id = record_skipped_import(
            engine,
            options.list_name,
            run.source,
            update_policy=options.update_policy,
            flow_run_id=flow_run_id,
        )
    return result


class _ListLoad:
    """The state of one import inside its transaction."""

    def __init__(
        self,
        conn: Connection,
        options: ImportOptions,
        source: SourceFile,
        now: datetime,
        flow_run_id: str | None,
        fields: Collection[str] | None = None,
    ) -> None:
        self.conn = conn
        # The parser derives each row's zone and its source, whatever the file fills;
        # with no source and no default, both are NULL in every row (not sent).
        derived = {"timezone", "timezone_source"}
        zones = bool(options.timezone_precedence) or options.default_timezone is not None
        chosen = LOADED_FIELDS if fields is None else [*fields, *derived]
        self.fields = frozenset(f for f in chosen if zones or f not in derived)
        self.options = options
        self.source = source
        self.now = now
        self.flow_run_id = flow_run_id
        self.expires_at = (
            now + timedelta(days=options.expires_after_days)
            if options.expires_after_days is not None
            else None
        )
        self.final_source: Callable[[], SourceFile] | None = None
        self.last_sha256: str | None = None
        # Whether ``now`` is the database's transaction time (list_records.updated_at's
        # default on PostgreSQL), so that bulk rows can leave it out.
        self.database_time = False
        self.rejects: Counter[str] = Counter()
        self.rows_read = 0
        self.valid_rows = 0
        self.invalid_phones = 0

    # -- the steps ---------------------------------------------------------------------

    def execute(
        self, chunks: Iterable[ParsedRows], on_chunk: Callable[[int], None] | None
    ) -> LoadResult:
        scrub_ids = self._exclusion_list_ids()
        list_id, created = self._lock_or_create_list()
        import_id = self._open_import(list_id)
        self.result = LoadResult(list_id=list_id, import_id=import_id, created_list=created)
        has_records = bool(
            self.conn.scalar(sa.select(sa.exists().where(_records.c.list_id == list_id)))
        )
        if not has_records and not scrub_ids:
            self._load_straight(chunks, on_chunk)
        else:
            self._load_staged(chunks, on_chunk, scrub_ids)
        if not self.result.skipped:
            self._close_import()
        return self.result

    def _exclusion_list_ids(self) -> list[int]:
        names = self.options.scrub_exclusions
        if not names:
            return []
        rows = self.conn.execute(
            sa.select(_exclusion_lists.c.id, _exclusion_lists.c.name).where(
                _exclusion_lists.c.name.in_(names)
            )
        ).all()
        found = {name: id_ for id_, name in rows}
        missing = [n for n in names if n not in found]
        if missing:
            raise ObjectNotFound(
                f"scrub_exclusions names the exclusion list {missing[0]!r}, which does not exist"
            )
        return [found[n] for n in names]

    def _lock_or_create_list(self) -> tuple[int, bool]:
        opts = self.options
        # FOR UPDATE serialises two imports into one list on PostgreSQL; SQLite's
        # single writer does it for us (the clause is left out there).
        locked = (
            sa.select(_lists.c.id, _lists.c.key_field)
            .where(_lists.c.name == opts.list_name)
            .with_for_update()
        )
        row = self.conn.execute(locked).first()
        if row is None:
            created = insert_new_list(
                self.conn, _lists, name=opts.list_name, key_field=opts.key_field
            )
            if created is not None:
                return created, True
            # Another first import created the list meanwhile; its commit ended our wait.
            row = self.conn.execute(locked).one()
        list_id, key_field = int(row[0]), row[1]
        if key_field != opts.key_field:
            if opts.update_policy != "replace":
                raise InvalidParameter(
                    f"calling list {opts.list_name!r} is keyed by {key_field!r}, not "
                    f"{opts.key_field!r}; use that key_field, or update_policy replace to re-key it"
                )
            self.conn.execute(
                sa.update(CallingList)
                .where(CallingList.id == list_id)
                .values(key_field=opts.key_field)
            )
        return list_id, False

    def _open_import(self, list_id: int) -> int:
        # Written now (so records can point at it) and completed at the end; nobody
        # else sees it before the commit.
        return int(
            self.conn.execute(
                sa.insert(ListImport)
                .values(
                    list_id=list_id,
                    file_name=self.source.name,
                    location=self.source.location,
                    sha256=self.source.sha256,
                    bytes=self.source.size,
                    status="running",
                    update_policy=self.options.update_policy,
                    flow_run_id=self.flow_run_id,
                    started_at=self.now,
                )
                .returning(ListImport.id)
            ).scalar_one()
        )

    def _is_last_import_again(self) -> bool:
        """After the last chunk: the file as it finally is, and whether it is the same
        as the list's last import (then the load is rolled back as a skip)."""
        if self.final_source is not None:
            self.source = self.final_source()
        same = self.last_sha256 is not None and self.source.sha256 == self.last_sha256
        self.result.skipped = same
        return same

    def _close_import(self) -> None:
        r = self.result
        source = self.source
        self.conn.execute(
            sa.update(ListImport)
            .where(ListImport.id == r.import_id)
            .values(
                file_name=source.name,
                location=source.location,
                sha256=source.sha256,
                bytes=source.size,
                status="completed",
                rows_read=r.rows_read,
                loaded=r.loaded,
                updated=r.updated,
                unchanged=r.unchanged,
                removed=r.removed,
                rejected=r.rejected,
                excluded=r.excluded,
                finished_at=datetime.now(UTC),
            )
        )

    # -- taking the chunks ---------------------------------------------------------------

    def _take(self, parsed: ParsedRows) -> pa.Table | pd.DataFrame:
        valid, rejects = parsed.valid, parsed.rejects
        self.rows_read += len(valid) + len(rejects)
        self.valid_rows += len(valid)
        if len(rejects):
            counts = rejects["reason"].astype(str).value_counts()
            self.rejects.update({str(k): int(v) for k, v in counts.items()})
        self.invalid_phones += int(getattr(parsed, "invalid_phones", 0) or 0)
        return valid

    def _load_straight(
        self, chunks: Iterable[ParsedRows], on_chunk: Callable[[int], None] | None
    ) -> None:
        """An empty list and no scrub: every valid row is new, so COPY it in directly."""
        constants: dict[str, Any] = {
            "list_id": self.result.list_id,
            "import_id": self.result.import_id,
        }
        if not self.database_time:
            # Else the column's default is ``now`` already; sending it would make the
            # server parse the same time once per row (about 0.5 s per million).
            constants["updated_at"] = self.now
        if self.expires_at is not None:
            constants["expires_at"] = self.expires_at
        columns = self._columns()
        with bulk_writer(self.conn, "list_records", columns, constants=constants) as writer:
            self._feed(writer, chunks, columns, on_chunk)
        if self._is_last_import_again():
            return
        self._check_gates(self.valid_rows)
        self._finish_counts(loaded=self.valid_rows)
        if self.options.update_policy == "replace":
            self._gate("max_removed_ratio", None)  # an empty list loses nothing

    def _columns(self, *first: str) -> list[str]:
        """The columns to send: the key, the fields the file fills, the custom fields.

        A field the file does not fill is NULL in every row; sending it would cost
        bytes and parsing for nothing (its column is nullable, without a default).
        """
        return [
            *first,
            "record_key",
            *(f for f in LOADED_FIELDS if f in self.fields),
            "custom_fields",
        ]

    def _feed(
        self,
        writer: BulkWriter,
        chunks: Iterable[ParsedRows],
        columns: list[str],
        on_chunk: Callable[[int], None] | None,
    ) -> None:
        # One bulk writer for every chunk: on PostgreSQL one COPY, so Python renders
        # the next chunk while the server ingests this one.
        schema = pa.schema([(c, pa.int64() if c == "row" else pa.string()) for c in columns])
        for parsed in chunks:
            valid = self._take(parsed)
            if len(valid):
                if isinstance(valid, pa.Table):
                    table = valid.select(columns)
                else:
                    # A frame without the derived fields (no zone) leaves them null.
                    frame = valid.reindex(columns=columns)
                    table = pa.Table.from_pandas(frame, preserve_index=False)
                writer.add(table.cast(schema))
            if on_chunk:
                on_chunk(self.rows_read)

    def _load_staged(
        self,
        chunks: Iterable[ParsedRows],
        on_chunk: Callable[[int], None] | None,
        scrub_ids: list[int],
    ) -> None:
        with staging_table(self.conn, "list_staging", _STAGING_COLUMNS) as stg:
            columns = self._columns("row")
            with bulk_writer(self.conn, stg, columns) as writer:
                self._feed(writer, chunks, columns, on_chunk)
            if self._is_last_import_again():
                return
            excluded = 0
            if scrub_ids:
                excluded = self.conn.execute(
                    sa.delete(stg).where(
                        key_is_excluded(
                            record_match_columns(stg), exclusion_list_ids=scrub_ids, now=self.now
                        )
                    )
                ).rowcount
            self.result.excluded = excluded
            to_load = self.valid_rows - excluded
            self._check_gates(to_load)
            self._apply_policy(stg)

    # -- after the last chunk ------------------------------------------------------------

    def _gate(self, name: str, failure: str | None) -> None:
        """Record one quality gate's verdict; a failure fails the load, except a dry run's.

        Args:
            name: the gate's parameter, e.g. ``min_rows``.
            failure: why the file fails the gate, or None when it passes.

        Raises:
            QualityGateFailed: ``failure`` is set and this is not a dry run.
        """
        self.result.gates[name] = failure
        if failure is not None and not self.options.dry_run:
            raise QualityGateFailed(failure)

    def _check_gates(self, to_load: int) -> None:
        self._gate("min_rows", self._min_rows_failure(to_load))
        self._gate("max_reject_ratio", self._reject_ratio_failure())

    def _min_rows_failure(self, to_load: int) -> str | None:
        opts = self.options
        if to_load >= opts.min_rows:
            return None
        return (
            f"quality gate min_rows: file {self.source.name!r} has {to_load} row(s) to load "
            f"({self.rows_read} read, {sum(self.rejects.values())} rejected, "
            f"{self.result.excluded} excluded), fewer than min_rows={opts.min_rows}; "
            f"calling list {opts.list_name!r} was not changed"
        )

    def _reject_ratio_failure(self) -> str | None:
        opts = self.options
        rejected = sum(self.rejects.values())
        if opts.max_reject_ratio is None or not self.rows_read:
            return None
        ratio = rejected / self.rows_read
        if ratio <= opts.max_reject_ratio:
            return None
        reasons = ", ".join(f"{k} {v}" for k, v in self.rejects.most_common())
        return (
            f"quality gate max_reject_ratio: file {self.source.name!r} has {rejected} of "
            f"{self.rows_read} rows rejected ({ratio:.1%} > "
            f"{opts.max_reject_ratio:.1%}; {reasons}); "
            f"calling list {opts.list_name!r} was not changed"
        )

    def _finish_counts(self, *, loaded: int, updated: int = 0, removed: int = 0) -> None:
        r = self.result
        r.rows_read = self.rows_read
        r.rejected = sum(self.rejects.values())
        r.rejects_by_reason = dict(sorted(self.rejects.items()))
        r.invalid_phones = self.invalid_phones
        r.loaded = loaded
        r.updated = updated
        r.removed = removed
        r.unchanged = self.valid_rows - r.excluded - loaded - updated

    def _apply_policy(self, stg: sa.Table) -> None:
        list_id = self.result.list_id
        policy = self.options.update_policy
        stamps = RecordStamps(list_id, self.result.import_id, self.expires_at, self.now)
        removed = 0
        if policy == "replace":
            removed = self.conn.execute(
                sa.delete(_records).where(
                    _records.c.list_id == list_id,
                    ~sa.exists().where(stg.c.record_key == _records.c.record_key),
                )
            ).rowcount
        updated = 0
        if policy == "append":
            loaded = insert_new(self.conn, stg, stamps)
        elif is_postgresql(self.conn):
            loaded, updated = merge_records(self.conn, stg, stamps)
        else:
            updated = update_changed(self.conn, stg, stamps)
            loaded = insert_new(self.conn, stg, stamps)
        self._finish_counts(loaded=loaded, updated=updated, removed=removed)
        if policy == "replace":
            # Before the commit, so a failed gate rolls the whole import back. The list
            # had the records removed plus those the file kept (updated or unchanged):
            # no count query on the way.
            r = self.result
            gate = RemovalGate(self.options.max_removed_ratio, self.options.force)
            self._gate(
                "max_removed_ratio",
                gate.verdict(
                    removed=r.removed,
                    current=r.removed + r.updated + r.unchanged,
                    file=self.source.name,
                    target=f"calling list {self.options.list_name!r}",
                ),
            )
