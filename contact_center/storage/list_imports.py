"""The calling lists' import rows outside the load: files imported, checksums, skips."""

from __future__ import annotations

from contextlib import AbstractContextManager
from datetime import UTC, datetime
from typing import cast

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from contact_center.exceptions import ObjectNotFound
from contact_center.storage.db import mapped_database_errors, safe_url
from contact_center.storage.list_results import SourceFile
from contact_center.storage.models import CallingList, ListImport

__all__ = [
    "imported_file_names",
    "last_import_sha256",
    "list_database_errors",
    "record_skipped_import",
]

_lists = cast(sa.Table, CallingList.__table__)
_imports = cast(sa.Table, ListImport.__table__)


def list_database_errors(
    engine: Engine, list_name: str, *, file: str | None = None, step: str = "reading"
) -> AbstractContextManager[None]:
    """Map database errors to :class:`DatabaseError` naming the list, the file and the
    database (without its password)."""
    what = f"loading file {file!r}" if file is not None else step
    return mapped_database_errors(f"{what} of calling list {list_name!r} in {safe_url(engine.url)}")


def imported_file_names(engine: Engine, list_name: str) -> set[str]:
    """Names of the files already imported (or skipped) into ``list_name``.

    A glob source skips them, so a nightly ``leads_*.csv`` picks the newest new file.

    Raises:
        DatabaseError: the database cannot be read.
    """
    query = (
        sa.select(_imports.c.file_name)
        .join(_lists, _lists.c.id == _imports.c.list_id)
        .where(_lists.c.name == list_name, _imports.c.status.in_(("completed", "skipped")))
        .distinct()
    )
    with (
        list_database_errors(engine, list_name, step="reading the imports"),
        engine.connect() as conn,
    ):
        return {name for (name,) in conn.execute(query)}


def last_import_sha256(engine: Engine, list_name: str) -> str | None:
    """The SHA-256 of the list's last successful (completed) import, if any.

    Raises:
        DatabaseError: the database cannot be read.
    """
    query = (
        sa.select(_imports.c.sha256)
        .join(_lists, _lists.c.id == _imports.c.list_id)
        .where(_lists.c.name == list_name, _imports.c.status == "completed")
        .order_by(_imports.c.id.desc())
        .limit(1)
    )
    with (
        list_database_errors(engine, list_name, step="reading the imports"),
        engine.connect() as conn,
    ):
        return conn.scalar(query)


def record_skipped_import(
    engine: Engine,
    list_name: str,
    source: SourceFile,
    *,
    update_policy: str,
    flow_run_id: str | None = None,
    now: datetime | None = None,
) -> int:
    """Record that ``source`` was skipped (same checksum as the last import).

    Returns:
        The ``list_imports`` row's id.
    """
    now = now or datetime.now(UTC)
    with list_database_errors(engine, list_name, file=source.name), engine.begin() as conn:
        list_id = conn.scalar(sa.select(_lists.c.id).where(_lists.c.name == list_name))
        if list_id is None:
            raise ObjectNotFound(f"calling list {list_name!r} does not exist")
        return int(
            conn.execute(
                sa.insert(ListImport)
                .values(
                    list_id=list_id,
                    file_name=source.name,
                    location=source.location,
                    sha256=source.sha256,
                    bytes=source.size,
                    status="skipped",
                    update_policy=update_policy,
                    flow_run_id=flow_run_id,
                    started_at=now,
                    finished_at=now,
                )
                .returning(ListImport.id)
            ).scalar_one()
        )
