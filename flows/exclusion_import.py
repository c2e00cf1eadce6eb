"""The ``import-exclusions`` flow: load or reset a Do-Not-Call list (Record Exclusion type).

``step: import`` (the default) runs fetch -> parse -> load:

1. ``fetch_exclusion_file`` resolves the source (date templates from the run's
   scheduled time; a glob skips files this list already imported) and fetches it;
   the only step that retries.
2. ``parse_exclusions`` reads the file in chunks (format, encoding and delimiter
   detected unless given), finds the key column ignoring case and spaces, trims
   the keys, folds them for a case-insensitive list, rejects blank keys
   (``missing_key``) and counts repeated keys as duplicates.
3. ``load_exclusions`` checks the ``min_rows`` gate and applies the keys with the
   update policy in ONE transaction, with the ``exclusion_imports`` row; then the
   source is kept, deleted or archived (``after_import``).

``step: reset`` empties the list (the daily reset, on its own schedule).

Expiry: ``expires_after_days`` from the import time (default 90), or the dates of
an ``expiry_column``. Times come from :func:`contact_center.storage.models.utcnow`; the
domain functions take ``now`` so tests can set it.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.runtime import flow_run as runtime_flow_run

from contact_center.exceptions import InvalidParameter, ObjectNotFound, QualityGateFailed
from contact_center.outcome import Outcome
from contact_center.parsing.files import read_table
from contact_center.parsing.gates import DEFAULT_MAX_REMOVED_RATIO, RemovalGate
from contact_center.parsing.headers import match_column
from contact_center.parsing.locations import parse_location
from contact_center.parsing.names import check_name
from contact_center.parsing.parameters import (
    AfterImport,
    Days,
    Delimiter,
    ExclusionPolicy,
    ExclusionStep,
    FileFormat,
    Ratio,
    RecordField,
    RowCount,
    StrictBool,
    Text,
    check_encoding,
    choices,
)
from contact_center.settings import (
    DATABASE_LOADS_LIMIT,
    DEFAULT_EXCLUSION_EXPIRY_DAYS,
    FETCH_RETRIES,
    FETCH_RETRY_DELAYS,
)
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
    check_before_io,
    contact_center_engine,
    fetch,
    final_state,
    recording_outcome,
    resolve_source,
)
from flows.common.rejects import RejectsFile
from flows.common.retries import retry_transfer
from flows.common.slots import object_slot, resource_slot
from flows.common.workdir import run_workdir, sweep_leftover_work
from runlog.publish import publishes_task_log

__all__ = [
    "STEPS",
    "ExclusionRequest",
    "fetch_exclusion_file",
    "import_exclusions",
    "load_exclusions",
    "parse_exclusions",
    "reset_exclusions",
    "tidy_source",
    "validate_request",
]

#: The flow's steps: ``import`` a file, or ``reset`` (empty) the list.
STEPS = choices(ExclusionStep)


@dataclass(frozen=True)
class ExclusionRequest:
    """The flow's parameters (see :func:`import_exclusions`), as Prefect validated them."""

    exclusion_list: str
    source: str | None = None
    step: str = "import"
    key_column: str = "account"
    update_policy: str = "add"
    expires_after_days: int | None = DEFAULT_EXCLUSION_EXPIRY_DAYS
    expiry_column: str | None = None
    case_sensitive: bool = True
    match_field: str = "account"
    min_rows: int = 1
    format: str = "auto"
    encoding: str | None = None
    delimiter: str | None = None
    sheet: str | None = None
    after_import: str = "keep"
    max_removed_ratio: float = DEFAULT_MAX_REMOVED_RATIO
    force: bool = False

    @property
    def removal(self) -> RemovalGate:
        """The ``max_removed_ratio`` gate of a ``replace``."""
        return RemovalGate(self.max_removed_ratio, self.force)


def validate_request(**parameters: Any) -> ExclusionRequest:
    """The flow's parameters after the checks that their types cannot express.

    Raises:
        InvalidParameter: a parameter is not valid; the message names it.
    """
    request = ExclusionRequest(**parameters)
    name = check_name("exclusion_list", request.exclusion_list)
    source = (request.source or "").strip() or None
    if request.step == "import":
        if source is None:
            raise InvalidParameter("source is required for step 'import'")
        parse_location(source)
    return replace(
        request,
        exclusion_list=name,
        source=source,
        encoding=check_encoding(request.encoding),
    )


# --- tasks ---------------------------------------------------------------------------


@task(
    retries=FETCH_RETRIES,
    retry_delay_seconds=[float(s) for s in FETCH_RETRY_DELAYS],
    retry_condition_fn=retry_transfer,
    cache_policy=NO_CACHE,
)
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
def parse_exclusions(request: ExclusionRequest, fetched: FetchedFile, now: datetime) -> ParsedKeys:
    """Read the file's keys: trimmed, folded if case-insensitive, blanks rejected, repeats counted.

    Raises:
        InvalidFile: the file cannot be read, is of the wrong shape, or lacks the key
            (or expiry) column; the message names the file and column.
    """
    reader = read_table(
        fetched.path,
        name=fetched.name,
        format=request.format,
        delimiter=request.delimiter,
        encoding=request.encoding,
        sheet=request.sheet,
    )
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
) -> LoadCounts:
    """Apply the keys with the update policy, in one transaction with its import row.

    Raises:
        QualityGateFailed: fewer distinct valid keys than ``min_rows``, or a ``replace``
            removing more than ``max_removed_ratio`` of the keys; nothing changed.
        InvalidParameter: an ``add`` whose match_field/case_sensitive differ from the list's.
        DatabaseError: the database refused; nothing changed.
    """
    if len(parsed.keys) < request.min_rows:
        raise QualityGateFailed(
            f"file {fetched.name!r} has {len(parsed.keys)} valid keys, fewer than min_rows="
            f"{request.min_rows}; exclusion list {request.exclusion_list!r} is unchanged"
        )
    engine = contact_center_engine()
    with (
        resource_slot(DATABASE_LOADS_LIMIT),
        mapped_database_errors(f"loading exclusion list {request.exclusion_list!r}"),
        engine.begin() as conn,
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
        request.removal.check(
            removed=counts.removed,
            current=counts.removed + counts.renewed,
            file=fetched.name,
            target=f"exclusion list {request.exclusion_list!r}",
            unit="keys",
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


@task(
    retries=FETCH_RETRIES,
    retry_delay_seconds=[float(s) for s in FETCH_RETRY_DELAYS],
    retry_condition_fn=retry_transfer,
    cache_policy=NO_CACHE,
)
def tidy_source(fetched: FetchedFile, action: str) -> str:
    """Keep, delete or archive the source once the load has committed."""
    return after_import(fetched.location, action)


# --- the flow ---------------------------------------------------------------------------


def _scheduled_time() -> datetime:
    """When this run was scheduled (date templates use it), or now outside a deployment."""
    return runtime_flow_run.scheduled_start_time or utcnow()


def _run_import(request: ExclusionRequest, outcome: Outcome, started_at: datetime) -> None:
    progress = RunProgress(
        {"fetch": 3, "parse": 3, "load": 4},
        description=f"{request.exclusion_list} · import",
        outcome=outcome,
        units={"fetch": "bytes"},
    )
    with run_workdir() as workdir:
        fetched = fetch_exclusion_file(request, _scheduled_time(), workdir, progress)
        outcome.bytes = fetched.size
        outcome.files = [fetched.location.text]
        outcome.sha256 = fetched.sha256
        rejects = RejectsFile.for_run(request.exclusion_list, runtime_flow_run.id, workdir)
        try:
            parsed = parse_exclusions(request, fetched, started_at)
            progress.update("parse", 1, 1, force=True)
            outcome.rows_read = parsed.rows_read
            outcome.rejected = len(parsed.rejects)
            outcome.rejects_by_reason = parsed.rejects_by_reason
            outcome.extra = {
                "duplicates": parsed.duplicates,
                "update_policy": request.update_policy,
            }
            rejects.add(parsed.rejects)
            counts = load_exclusions(
                request,
                parsed,
                fetched,
                started_at=started_at,
                flow_run_id=runtime_flow_run.id,
            )
            rejects.commit()
        finally:
            fetched.cleanup()
            rejects.report(outcome)
    outcome.loaded, outcome.updated, outcome.removed = counts.added, counts.renewed, counts.removed
    outcome.extra["after_import"] = tidy_source(fetched, request.after_import)
    outcome.message = (
        f"{counts.added} added, {counts.renewed} renewed, {counts.removed} removed, "
        f"{outcome.rejected} rejected, {parsed.duplicates} duplicates"
    )
    progress.finish()


@publishes_task_log
@flow(name="import-exclusions", flow_run_name="{exclusion_list} · {step}")
def import_exclusions(
    exclusion_list: str,
    source: str | None = None,
    step: ExclusionStep = "import",
    key_column: Text = "account",
    update_policy: ExclusionPolicy = "add",
    expires_after_days: Days | None = DEFAULT_EXCLUSION_EXPIRY_DAYS,
    expiry_column: Text | None = None,
    case_sensitive: StrictBool = True,
    match_field: RecordField = "account",
    min_rows: RowCount = 1,
    format: FileFormat = "auto",
    encoding: str | None = None,
    delimiter: Delimiter | None = None,
    sheet: Text | None = None,
    after_import: AfterImport = "keep",
    max_removed_ratio: Ratio = DEFAULT_MAX_REMOVED_RATIO,
    force: StrictBool = False,
) -> Outcome:
    """Import a Do-Not-Call list of keys, or reset (empty) it.

    Args:
        exclusion_list: the exclusion list (created by its first import).
        source: the file's location (required for ``import``): a path, ``file://``
            URL or ``sftp://<block>/<path>``, with date templates and globs.
        step: ``import`` (default) or ``reset`` (empty the list).
        key_column: the file's key column; case and surrounding spaces are ignored.
        update_policy: ``add`` (new keys added, present keys renewed) or ``replace``
            (the list becomes exactly the file's keys).
        expires_after_days: days from the import until a key expires (default 90);
            null for never.
        expiry_column: a column of ISO dates (``2026-12-31``) or datetimes to take
            each key's expiry from; a blank cell falls back to ``expires_after_days``.
        case_sensitive: whether keys keep their case (default true).
        match_field: the record field the keys match (default ``account``).
        min_rows: the fewest distinct valid keys a file must hold (default 1; 0
            lets a ``replace`` with an empty file empty the list).
        format: ``auto`` (default), ``csv``, ``xlsx`` or ``fixed``.
        encoding: the text encoding; detected when not given.
        delimiter: the delimiter; detected when not given.
        sheet: the XLSX sheet; the first when not given.
        after_import: ``keep`` (default), ``delete`` or ``archive:<folder>``.
        max_removed_ratio: a ``replace`` removing more than this share of the keys fails.
        force: ``replace`` even beyond ``max_removed_ratio``.

    Returns:
        The run's outcome (also recorded as an artifact): rows_read (keys read),
        loaded (added), updated (renewed), removed, rejected, extra.duplicates,
        bytes and files.
    """
    with recording_outcome(Outcome(object_name=exclusion_list, step=step)) as outcome:
        request = validate_request(**runtime_flow_run.parameters)
        with object_slot("exclusions", request.exclusion_list):
            started_at = utcnow()
            if request.step == "import":
                check_before_io(request.source, after_import=request.after_import)
                sweep_leftover_work()
            if request.step == "reset":
                counts = reset_exclusions(
                    request, started_at=started_at, flow_run_id=runtime_flow_run.id
                )
                if counts is None:
                    outcome.status = "skipped"
                    outcome.message = (
                        f"no exclusion list named {exclusion_list!r} yet; nothing to reset"
                    )
                else:
                    outcome.removed = counts.removed
                    outcome.message = f"{counts.removed} keys removed"
            else:
                _run_import(request, outcome, started_at)
    return final_state(outcome)  # type: ignore[return-value]
