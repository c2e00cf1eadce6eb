"""Loading and resetting exclusion lists in the contact-centre database.

Each function works inside the caller's transaction (a SQLAlchemy ``Connection``
from ``engine.begin()``), so that a failure anywhere leaves the list as it was.
Keys reach the database through :mod:`contact_center.storage.bulk` (COPY on PostgreSQL,
``executemany`` on SQLite), never row by row:

- a list with no keys yet takes the file's keys straight into ``exclusions``
  (the 1M-key fast path: one COPY);
- otherwise the keys go to a staging table, and three set-based statements renew
  the keys already present, add the new ones and (``replace``) remove the rest.

Rerunning the same file adds nothing: its keys are renewed. Every import and
reset writes an ``exclusion_imports`` row with its counts.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pandas as pd
import pyarrow as pa
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from contact_center.exceptions import InvalidParameter, ObjectNotFound
from contact_center.storage.bulk import bulk_insert, is_postgresql, staging_table
from contact_center.storage.db import sqlite_timestamp
from contact_center.storage.exclusions import validate_match_field
from contact_center.storage.list_rows import insert_new_list
from contact_center.storage.models import (
    Base,
    Exclusion,
    ExclusionImport,
    ExclusionList,
    UTCDateTime,
)

__all__ = [
    "UPDATE_POLICIES",
    "ExclusionListInfo",
    "ImportRecord",
    "LoadCounts",
    "ensure_exclusion_list",
    "get_exclusion_list",
    "imported_file_names",
    "load_exclusion_keys",
    "record_exclusion_import",
    "reset_exclusion_list",
]

#: ``add``: new keys are added, present keys renewed; ``replace``: the list becomes
#: exactly the file's keys.
UPDATE_POLICIES = ("add", "replace")

_exclusions = Base.metadata.tables[Exclusion.__tablename__]
_lists = Base.metadata.tables[ExclusionList.__tablename__]
_imports = Base.metadata.tables[ExclusionImport.__tablename__]


@dataclass(frozen=True)
class ExclusionListInfo:
    """An exclusion list as stored.

    Attributes:
        id: its id.
        name: its name (the flow's object).
        match_field: the record field its keys match.
        case_sensitive: whether keys keep their case.
        active: whether it has any effect.
    """

    id: int
    name: str
    match_field: str
    case_sensitive: bool
    active: bool


@dataclass(frozen=True)
class LoadCounts:
    """What a load or reset did to a list.

    Attributes:
        added: keys new to the list.
        renewed: keys already present whose expiry was renewed.
        removed: keys removed (``replace``, reset).
    """

    added: int = 0
    renewed: int = 0
    removed: int = 0


@dataclass(frozen=True)
class ImportRecord:
    """The facts of one import or reset, for its ``exclusion_imports`` row.

    Attributes:
        step: ``import`` or ``reset``.
        started_at: when the run started.
        file_name: the file read, if any.
        sha256: its checksum.
        bytes: its size.
        update_policy: ``add`` or ``replace`` (imports only).
        keys_read: data rows read.
        rejected: rows rejected.
        duplicates: rows that repeated a key.
        flow_run_id: the Prefect flow run, if any.
    """

    step: str
    started_at: datetime
    file_name: str | None = None
    sha256: str | None = None
    bytes: int = 0
    update_policy: str | None = None
    keys_read: int = 0
    rejected: int = 0
    duplicates: int = 0
    flow_run_id: str | None = None


def _info(row: Any) -> ExclusionListInfo:
    return ExclusionListInfo(
        id=int(row.id),
        name=row.name,
        match_field=row.match_field,
        case_sensitive=bool(row.case_sensitive),
        active=bool(row.active),
    )


def get_exclusion_list(conn: Connection, name: str) -> ExclusionListInfo:
    """The exclusion list ``name``.

    Raises:
        ObjectNotFound: there is none.
    """
    row = conn.execute(sa.select(_lists).where(_lists.c.name == name)).one_or_none()
    if row is None:
        raise ObjectNotFound(f"no exclusion list named {name!r}")
    return _info(row)


def ensure_exclusion_list(
    conn: Connection,
    name: str,
    *,
    match_field: str,
    case_sensitive: bool,
    update_policy: str,
) -> ExclusionListInfo:
    """The exclusion list ``name``, created with these settings if it is new.

    A ``replace`` may change an existing list's ``match_field`` and
    ``case_sensitive`` (it rewrites every key). An ``add`` may not: keys folded one
    way would silently stop matching, so a mismatch is refused.

    The list's row is locked until the transaction ends, so two imports into one
    list run one after the other; two first imports of a new list too (the second
    waits for the first to commit, then finds its list).

    Raises:
        InvalidParameter: an ``add`` whose settings differ from the stored list's.
    """
    validate_match_field(match_field)
    # FOR UPDATE serialises imports into one list on PostgreSQL (SQLite has one writer).
    locked = sa.select(_lists).where(_lists.c.name == name).with_for_update()
    row = conn.execute(locked).one_or_none()
    if row is None:
        new_id = insert_new_list(
            conn, _lists, name=name, match_field=match_field, case_sensitive=case_sensitive
        )
        if new_id is not None:
            return ExclusionListInfo(new_id, name, match_field, case_sensitive, True)
        row = conn.execute(locked).one()
    info = _info(row)
    if (info.match_field, info.case_sensitive) == (match_field, case_sensitive):
        return info
    if update_policy != "replace":
        raise InvalidParameter(
            f"exclusion list {name!r} matches {info.match_field!r} with case_sensitive="
            f"{str(info.case_sensitive).lower()}, but this run asks for {match_field!r} with "
            f"case_sensitive={str(case_sensitive).lower()}; run once with update_policy "
            "'replace' to change them"
        )
    conn.execute(
        sa.update(_lists)
        .where(_lists.c.id == info.id)
        .values(match_field=match_field, case_sensitive=case_sensitive)
    )
    return ExclusionListInfo(info.id, name, match_field, case_sensitive, info.active)


def imported_file_names(conn: Connection, list_id: int) -> set[str]:
    """The names of the files already imported into the list (for glob sources)."""
    rows = conn.execute(
        sa.select(_imports.c.file_name).where(
            _imports.c.exclusion_list_id == list_id,
            _imports.c.step == "import",
            _imports.c.file_name.is_not(None),
        )
    )
    return {name for (name,) in rows}


def _list_is_empty(conn: Connection, list_id: int) -> bool:
    has_key = sa.exists().where(_exclusions.c.exclusion_list_id == list_id)
    return not conn.execute(sa.select(has_key)).scalar_one()


def _as_timestamp_text(value: datetime, *, postgresql: bool) -> str:
    """A timestamp as the text each engine takes: ISO with the offset, or SQLite's form."""
    return value.isoformat(sep=" ") if postgresql else str(sqlite_timestamp(value))


def _timestamp_text(values: pa.Array, *, postgresql: bool) -> pa.Array:
    """Timestamps as text (see :func:`_as_timestamp_text`), formatted once per distinct value.

    Arrow's CSV writer formats timestamps slowly (microseconds each, seconds for a
    million), and an import's expiries take few distinct values: format those and
    map them back.
    """
    encoded = values.dictionary_encode()
    distinct = encoded.dictionary.to_pylist()
    texts = [_as_timestamp_text(v, postgresql=postgresql) for v in distinct]
    return pa.DictionaryArray.from_arrays(encoded.indices, pa.array(texts, pa.string())).cast(
        pa.string()
    )


def _keys_table(keys: pd.DataFrame, *, postgresql: bool) -> pa.Table:
    """Keys and expiries (as text) in Arrow, ready for the bulk path."""
    expires = pd.to_datetime(keys["expires_at"], utc=True).astype("datetime64[us, UTC]")
    stamps = pa.Array.from_pandas(expires).cast(pa.timestamp("us", tz="UTC"))
    return pa.table(
        {
            "key_value": pa.Array.from_pandas(keys["key_value"]).cast(pa.string()),
            "expires_at": _timestamp_text(stamps, postgresql=postgresql),
        }
    )


def _insert_into_empty(conn: Connection, list_id: int, keys: pa.Table, now: datetime) -> int:
    # In key order the unique index grows at its right edge: about a quarter faster
    # than random order on PostgreSQL.
    added_at = _as_timestamp_text(now, postgresql=is_postgresql(conn))
    return bulk_insert(
        conn,
        _exclusions.name,
        ["key_value", "expires_at"],
        keys.sort_by("key_value"),
        constants={"exclusion_list_id": list_id, "added_at": added_at},
    )


def _merge_from_staging(
    conn: Connection, list_id: int, keys: pa.Table, *, replace: bool, now: datetime
) -> LoadCounts:
    with staging_table(
        conn, "exclusion_keys", {"key_value": "text", "expires_at": "timestamp"}
    ) as stg:
        bulk_insert(conn, stg, ["key_value", "expires_at"], keys)
        if not is_postgresql(conn):
            # SQLite has no hash join: without an index each lookup scans the stage.
            sa.Index(f"{stg.name}_key", stg.c.key_value).create(conn)
        in_list = _exclusions.c.exclusion_list_id == list_id
        renewed = conn.execute(
            sa.update(_exclusions)
            .where(in_list, _exclusions.c.key_value == stg.c.key_value)
            .values(expires_at=stg.c.expires_at, renewed_at=now)
        ).rowcount
        present = sa.exists().where(in_list, _exclusions.c.key_value == stg.c.key_value)
        added = conn.execute(
            sa.insert(_exclusions)
            .from_select(
                ["exclusion_list_id", "key_value", "added_at", "expires_at"],
                sa.select(
                    sa.literal(list_id, sa.Integer()),
                    stg.c.key_value,
                    sa.literal(now, UTCDateTime()),
                    stg.c.expires_at,
                ).where(~present),
            )
            # INSERT ... SELECT keeps its rowcount only when asked (SQLAlchemy 2).
            .execution_options(preserve_rowcount=True)
        ).rowcount
        removed = 0
        if replace:
            in_file = sa.exists().where(stg.c.key_value == _exclusions.c.key_value)
            removed = conn.execute(sa.delete(_exclusions).where(in_list, ~in_file)).rowcount
    return LoadCounts(added=added, renewed=renewed, removed=removed)


def load_exclusion_keys(
    conn: Connection,
    list_id: int,
    keys: pd.DataFrame,
    *,
    update_policy: str,
    now: datetime,
) -> LoadCounts:
    """Apply a file's distinct keys to a list, in the caller's transaction.

    Args:
        conn: the connection of the caller's transaction.
        list_id: the exclusion list.
        keys: distinct ``key_value`` (already trimmed and folded) and ``expires_at``
            (aware, or missing for never), as from ``parse_exclusion_keys``.
        update_policy: ``add`` or ``replace``.
        now: the import time: ``added_at`` of new keys, ``renewed_at`` of present ones.

    Returns:
        Keys added, renewed and (``replace``) removed.

    Raises:
        InvalidParameter: an unknown policy.
        sqlalchemy.exc.SQLAlchemyError: the database refused (wrap in
            :func:`contact_center.storage.db.mapped_database_errors`).
    """
    if update_policy not in UPDATE_POLICIES:
        raise InvalidParameter(
            f"update_policy {update_policy!r} is not one of {', '.join(UPDATE_POLICIES)}"
        )
    now = now if now.tzinfo else now.replace(tzinfo=UTC)
    table = _keys_table(keys, postgresql=is_postgresql(conn))
    if _list_is_empty(conn, list_id):
        return LoadCounts(added=_insert_into_empty(conn, list_id, table, now))
    if table.num_rows == 0:
        if update_policy != "replace":
            return LoadCounts()
        removed = conn.execute(
            sa.delete(_exclusions).where(_exclusions.c.exclusion_list_id == list_id)
        ).rowcount
        return LoadCounts(removed=removed)
    return _merge_from_staging(conn, list_id, table, replace=update_policy == "replace", now=now)


def reset_exclusion_list(conn: Connection, list_id: int) -> LoadCounts:
    """Empty the list (the daily reset); returns the keys removed."""
    removed = conn.execute(
        sa.delete(_exclusions).where(_exclusions.c.exclusion_list_id == list_id)
    ).rowcount
    return LoadCounts(removed=removed)


def record_exclusion_import(
    conn: Connection,
    list_id: int,
    record: ImportRecord,
    counts: LoadCounts,
    *,
    finished_at: datetime,
) -> int:
    """Write the ``exclusion_imports`` row of an import or reset; returns its id."""
    return int(
        conn.execute(
            sa.insert(_imports)
            .values(
                exclusion_list_id=list_id,
                step=record.step,
                file_name=record.file_name,
                sha256=record.sha256,
                bytes=record.bytes,
                update_policy=record.update_policy,
                keys_read=record.keys_read,
                added=counts.added,
                renewed=counts.renewed,
                removed=counts.removed,
                rejected=record.rejected,
                duplicates=record.duplicates,
                flow_run_id=record.flow_run_id,
                started_at=record.started_at,
                finished_at=finished_at,
            )
            .returning(_imports.c.id)
        ).scalar_one()
    )
