"""The ``import-exclusions`` flow's tasks: fetch, parse, load, reset, tidy.

:mod:`flows.exclusion_import` runs them in order; see its docstring for the steps.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from contact_center.exceptions import ObjectNotFound, QualityGateFailed
from contact_center.parsing.files import read_table
from contact_center.parsing.headers import match_column
from contact_center.parsing.openpgp import Decryptor, read_encrypted_table
from contact_center.parsing.table_reader import TableReader
from contact_center.storage.db import mapped_database_errors
from contact_center.storage.exclusion_load import (
    ImportRecord,
    LoadCounts,
    ensure_exclusion_list,
    get_exclusion_list,
    imported_file_names,
    load_exclusion_keys,
    record_exclusion_import,
    reset_exclusion_list,
)
from contact_center.storage.exclusions import ParsedKeys, merge_parsed, parse_exclusion_keys
from contact_center.storage.models import utcnow
from flows.common import (
    FetchedFile,
    RunProgress,
    after_import,
    contact_center_engine,
    fetch,
    resolve_source,
)
from flows.common.retries import FETCH_TASK
from flows.exclusion_request import ExclusionRequest

__all__ = [
    "fetch_exclusion_file",
    "load_exclusions",
    "parse_exclusions",
    "reset_exclusions",
    "tidy_source",
]


@task(**FETCH_TASK)
def fetch_exclusion_file(
    request: ExclusionRequest, when: datetime, workdir: Path, progress: RunProgress
) -> FetchedFile:
    """Resolve the source (skipping files already imported, for a glob) and fetch it.

    Raises:
        SourceUnavailable: nothing to fetch, or the transfer failed (retried).
    """
    assert request.source is not None
    with progress.attempt("fetch"):
        engine = contact_center_engine()
        with engine.connect() as conn, mapped_database_errors("reading the imported files"):
            try:
                list_id = get_exclusion_list(conn, request.exclusion_list).id
                exclude = imported_file_names(conn, list_id)
            except ObjectNotFound:
                exclude = set()
        location = resolve_source(request.source, when=when, exclude=exclude)
        fetched = fetch(
            location, workdir, lambda done, total: progress.update("fetch", done, total)
        )
    get_run_logger().info("fetched %s (%s bytes)", location.text, fetched.size)
    return fetched


@task(cache_policy=NO_CACHE)
def parse_exclusions(
    request: ExclusionRequest,
    fetched: FetchedFile,
    now: datetime,
    decryptor: Decryptor | None = None,
    detected: dict[str, Any] | None = None,
) -> ParsedKeys:
    """Read the file's keys: trimmed, folded if case-insensitive, blanks rejected, repeats counted.

    Args:
        decryptor: for an OpenPGP-encrypted file, what decrypts it as it is read.
        detected: filled with the file's format, encoding and delimiter, when given.

    Raises:
        InvalidFile: the file cannot be read, is of the wrong shape, or lacks the key
            (or expiry) column; the message names the file and column.
    """
    shape: dict[str, Any] = {
        "format": request.format,
        "delimiter": request.delimiter,
        "encoding": request.encoding,
        "sheet": request.sheet,
    }
    reader: TableReader = (
        read_encrypted_table(decryptor, fetched.path, name=fetched.name, **shape)
        if decryptor is not None
        else read_table(fetched.path, name=fetched.name, **shape)
    )
    if detected is not None:
        detected.update(format=reader.format, encoding=reader.encoding)
        detected.update(delimiter=reader.delimiter, encrypted=decryptor is not None)
    key_column = match_column(reader.header, request.key_column, file=fetched.name)
    expiry_column = (
        match_column(reader.header, request.expiry_column, file=fetched.name)
        if request.expiry_column
        else None
    )
    parts = [
        parse_exclusion_keys(
            chunk.frame,
            key_column=key_column,
            case_sensitive=request.case_sensitive,
            now=now,
            expires_after_days=request.expires_after_days,
            expiry_column=expiry_column,
            first_row=chunk.first_row,
            file=fetched.name,
        )
        for chunk in reader
    ]
    parsed = merge_parsed(parts)
    get_run_logger().info(
        "%s: %s rows, %s distinct keys, %s duplicates, %s rejected",
        fetched.name,
        parsed.rows_read,
        len(parsed.keys),
        parsed.duplicates,
        len(parsed.rejects),
    )
    return parsed


@task(cache_policy=NO_CACHE)
def load_exclusions(
    request: ExclusionRequest,
    parsed: ParsedKeys,
    fetched: FetchedFile,
    *,
    started_at: datetime,
    flow_run_id: str | None,
    gates: dict[str, str | None] | None = None,
) -> LoadCounts:
    """Apply the keys with the update policy, in one transaction with its import row.

    Args:
        gates: (a dry run) the gates' verdicts go here instead of failing the load,
            which is then rolled back: nothing changes.

    Raises:
        QualityGateFailed: fewer distinct valid keys than ``min_rows``, or a ``replace``
            removing more than ``max_removed_ratio`` of the keys; nothing changed.
        InvalidParameter: an ``add`` whose match_field/case_sensitive differ from the list's.
        DatabaseError: the database refused; nothing changed.
    """

    def gate(name: str, failure: str | None) -> None:
        if gates is None and failure is not None:
            raise QualityGateFailed(failure)
        if gates is not None:
            gates[name] = failure

    few = len(parsed.keys) < request.min_rows
    gate(
        "min_rows",
        f"file {fetched.name!r} has {len(parsed.keys)} valid keys, fewer than min_rows="
        f"{request.min_rows}; exclusion list {request.exclusion_list!r} is unchanged"
        if few
        else None,
    )
    engine = contact_center_engine()
    with (
        mapped_database_errors(f"loading exclusion list {request.exclusion_list!r}"),
        engine.connect() as conn,
        conn.begin() as transaction,
    ):
        info = ensure_exclusion_list(
            conn,
            request.exclusion_list,
            match_field=request.match_field,
            case_sensitive=request.case_sensitive,
            update_policy=request.update_policy,
        )
        counts = load_exclusion_keys(
            conn, info.id, parsed.keys, update_policy=request.update_policy, now=started_at
        )
        # The list had the keys removed plus the file's keys already in it (renewed).
        gate(
            "max_removed_ratio",
            request.removal.verdict(
                removed=counts.removed,
                current=counts.removed + counts.renewed,
                file=fetched.name,
                target=f"exclusion list {request.exclusion_list!r}",
                unit="keys",
            ),
        )
        record = ImportRecord(
            step="import",
            started_at=started_at,
            file_name=fetched.name,
            sha256=fetched.sha256,
            bytes=fetched.size,
            update_policy=request.update_policy,
            keys_read=parsed.rows_read,
            rejected=len(parsed.rejects),
            duplicates=parsed.duplicates,
            flow_run_id=flow_run_id,
        )
        record_exclusion_import(conn, info.id, record, counts, finished_at=utcnow())
        if gates is not None:
            transaction.rollback()  # a dry run: the counts are real, the changes undone
    return counts


@task(cache_policy=NO_CACHE)
def reset_exclusions(
    request: ExclusionRequest, *, started_at: datetime, flow_run_id: str | None
) -> LoadCounts | None:
    """Empty the list and record the reset; ``None`` when there is no such list yet.

    A reset scheduled before a new list's first import has nothing to empty; it is
    reported as skipped rather than failed.
    """
    engine = contact_center_engine()
    with mapped_database_errors(f"resetting exclusion list {request.exclusion_list!r}"):
        with engine.begin() as conn:
            try:
                info = get_exclusion_list(conn, request.exclusion_list)
            except ObjectNotFound:
                return None
            counts = reset_exclusion_list(conn, info.id)
            record = ImportRecord(step="reset", started_at=started_at, flow_run_id=flow_run_id)
            record_exclusion_import(conn, info.id, record, counts, finished_at=utcnow())
    return counts


@task(**FETCH_TASK)
def tidy_source(fetched: FetchedFile, action: str) -> str:
    """Keep, delete or archive the source once the load has committed."""
    return after_import(fetched.location, action)
