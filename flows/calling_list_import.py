"""The ``import-calling-list`` flow: a list file becomes records of a calling list.

fetch -> parse -> load:

1. ``fetch_list_file`` resolves the source (date templates from the run's scheduled
   time; a glob picks the newest file this list has not imported yet), downloads
   it to a temporary file checked against the remote size, and hashes it. It is
   the only step that retries (3 tries with backoff), and it does not retry what
   a retry cannot fix (an unknown host key, a bad parameter, a missing block).
2. ``check_list_file`` compares the file's SHA-256 with the list's last completed
   import: the same file again completes as ``skipped`` unless ``force``.
3. ``parse_list`` opens the file (format, encoding and delimiter detected unless
   given) and checks the mapping against its header, so a missing column fails
   before anything is loaded.
4. ``load_list`` parses the file chunk by chunk in a background thread while the
   database ingests the previous chunk, all in ONE transaction (see
   :mod:`contact_center.list_load`): memory stays flat, and any failure leaves
   the list as it was. Rejected rows go to a rejects CSV under ``<home>/rejects``.
5. ``tidy_list_source`` keeps, deletes or archives the source, only after the
   commit.

The outcome (counts, bytes, files, checksum) is recorded as an artifact of the
run, also when it fails; a progress artifact follows the fetch (bytes) and the
load (rows).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.client.schemas.objects import State, TaskRun
from prefect.context import FlowRunContext
from prefect.runtime import flow_run as runtime_flow_run
from sqlalchemy.engine import Engine

from contact_center.bulk import prefetch
from contact_center.exceptions import HostKeyError, InvalidParameter, ObjectNotFound
from contact_center.files import TableReader, read_table
from contact_center.list_load import (
    ImportOptions,
    LoadResult,
    SourceFile,
    imported_file_names,
    last_import_sha256,
    load_list_records,
    record_skipped_import,
)
from contact_center.lists import RecordParser, validate_mapping
from contact_center.models import utcnow
from contact_center.outcome import Outcome
from contact_center.settings import (
    FETCH_RETRIES,
    FETCH_RETRY_DELAYS,
    LIST_CHUNK_ROWS,
    get_settings,
)
from flows.common import (
    FetchedFile,
    RunProgress,
    after_import,
    contact_center_engine,
    fetch,
    recording_outcome,
    resolve_source,
)
from flows.common.rejects import RejectsFile

__all__ = [
    "ListFile",
    "check_list_file",
    "fetch_list_file",
    "import_calling_list",
    "load_list",
    "parse_list",
    "tidy_list_source",
]

_NEWLINE_SCAN_BYTES = 1 << 20


# --- the steps -------------------------------------------------------------------------


def _retry_transfer_errors(task: Any, task_run: TaskRun, state: State) -> bool:
    """Retry a failed transfer, but not what a retry cannot fix."""
    try:
        state.result()
    except (HostKeyError, InvalidParameter, ObjectNotFound):
        return False
    except Exception:
        return True
    return False


@task(
    retries=FETCH_RETRIES,
    retry_delay_seconds=[float(s) for s in FETCH_RETRY_DELAYS],
    retry_condition_fn=_retry_transfer_errors,
    cache_policy=NO_CACHE,
)
def fetch_list_file(
    options: ImportOptions, engine: Engine, when: datetime, workdir: Path, progress: RunProgress
) -> FetchedFile:
    """Resolve the source and fetch it (the only step that retries).

    Raises:
        SourceUnavailable: nothing matches, the server cannot be reached, or the
            download fell short (retried).
        HostKeyError: the server's host key is unknown or changed (not retried).
    """
    exclude = imported_file_names(engine, options.list_name)
    location = resolve_source(options.source, when=when, exclude=exclude)
    get_run_logger().info("fetching %s", location.text)
    fetched = fetch(location, workdir, lambda done, total: progress.update("fetch", done, total))
    progress.update("fetch", fetched.size, fetched.size, force=True)
    get_run_logger().info(
        "fetched %s: %s bytes, sha256 %s", fetched.name, fetched.size, fetched.sha256
    )
    return fetched


@task(cache_policy=NO_CACHE)
def check_list_file(
    options: ImportOptions, engine: Engine, fetched: FetchedFile, flow_run_id: str | None
) -> bool:
    """Whether to load the file: not when it is the list's last import again (unless ``force``).

    A skipped file is recorded in ``list_imports`` with the status ``skipped``.
    """
    if last_import_sha256(engine, options.list_name) != fetched.sha256 or options.force:
        return True
    record_skipped_import(
        engine,
        options.list_name,
        _source_file(fetched),
        update_policy=options.update_policy,
        flow_run_id=flow_run_id,
    )
    get_run_logger().info(
        "%s has the checksum of the last import into %r; skipped (force: true re-imports it)",
        fetched.name,
        options.list_name,
    )
    return False


@dataclass
class ListFile:
    """A list file, opened and checked: how to read it and what its columns mean.

    Attributes:
        table: the reader (format, encoding, delimiter and header are known).
        mapping: file column -> field, for the typed fields.
        estimated_rows: data rows, roughly, for the progress bar (None if unknown).
    """

    table: TableReader
    mapping: dict[str, str]
    estimated_rows: int | None = None


@task(cache_policy=NO_CACHE)
def parse_list(options: ImportOptions, fetched: FetchedFile) -> ListFile:
    """Open the file and check the mapping against its header.

    The rows themselves are parsed chunk by chunk inside ``load_list``'s
    transaction, so that memory does not grow with the file.

    Raises:
        InvalidFile: the file cannot be read or is of the wrong shape, or a mapped
            column (or the key) is missing; the message names the file and column.
    """
    table = read_table(
        fetched.path,
        name=fetched.name,
        format=options.format,
        delimiter=options.delimiter,
        encoding=options.encoding,
        sheet=options.sheet,
        widths=options.widths,
        columns=options.columns,
        chunk_rows=LIST_CHUNK_ROWS,
    )
    mapping = validate_mapping(options.mapping, table.header, options.key_field, file=fetched.name)
    get_run_logger().info(
        "%s: %s, encoding %s, delimiter %r, %s columns; mapped %s",
        fetched.name,
        table.format,
        table.encoding,
        table.delimiter,
        len(table.header),
        ", ".join(f"{column} -> {name}" for column, name in mapping.items()),
    )
    return ListFile(table, mapping, _estimate_rows(fetched.path, table.format))


@task(cache_policy=NO_CACHE)
def load_list(
    options: ImportOptions,
    engine: Engine,
    fetched: FetchedFile,
    list_file: ListFile,
    rejects: RejectsFile,
    progress: RunProgress,
    flow_run_id: str | None,
) -> LoadResult:
    """Parse the rows and load them with the update policy, in one transaction.

    Raises:
        InvalidFile: a row cannot be parsed (names file, row and column).
        QualityGateFailed: ``min_rows`` or ``max_reject_ratio``; nothing changed.
        ObjectNotFound: a ``scrub_exclusions`` list does not exist.
        DatabaseError: the database refused the load; nothing changed.
    """
    parser = RecordParser(
        list_file.mapping, options.key_field, options.default_country, fetched.name
    )
    total = list_file.estimated_rows

    def parsed_chunks() -> Iterator[Any]:
        for chunk in list_file.table:
            yield parser.parse(chunk)

    def recorded(chunks: Iterator[Any]) -> Iterator[Any]:
        for parsed in chunks:
            rejects.add(parsed.rejects)
            yield parsed

    def on_chunk(rows: int) -> None:
        progress.update("load", rows, max(total or 0, rows))

    result = load_list_records(
        engine,
        recorded(prefetch(parsed_chunks(), depth=1)),
        options,
        _source_file(fetched),
        now=utcnow(),
        flow_run_id=flow_run_id,
        on_chunk=on_chunk,
        fields=set(list_file.mapping.values()),
    )
    get_run_logger().info(
        "%s into %r (%s): %s read, %s loaded, %s updated, %s unchanged, %s removed, "
        "%s rejected, %s excluded",
        fetched.name,
        options.list_name,
        options.update_policy,
        result.rows_read,
        result.loaded,
        result.updated,
        result.unchanged,
        result.removed,
        result.rejected,
        result.excluded,
    )
    return result


@task(cache_policy=NO_CACHE)
def tidy_list_source(fetched: FetchedFile, action: str) -> str:
    """Keep, delete or archive the source file (after the load has committed)."""
    done = after_import(fetched.location, action)
    get_run_logger().info("source %s: %s", fetched.location.text, done)
    return done


# --- the flow --------------------------------------------------------------------------


@flow(name="import-calling-list", flow_run_name="{list_name} · import")
def import_calling_list(
    list_name: str,
    source: str,
    mapping: dict[str, str] | None = None,
    update_policy: str = "update",
    key_field: str = "account",
    format: str = "auto",
    delimiter: str | None = None,
    encoding: str | None = None,
    sheet: str | None = None,
    widths: list[int] | None = None,
    columns: list[str] | None = None,
    default_country: str = "US",
    expires_after_days: int | None = None,
    min_rows: int | None = None,
    max_reject_ratio: float | None = None,
    scrub_exclusions: list[str] | None = None,
    after_import: str = "keep",
    force: bool = False,
) -> Outcome:
    """Import a list file into the calling list ``list_name``.

    Args:
        list_name: the calling list; created by its first import.
        source: where the file is: a local path, ``file://`` or
            ``sftp://<block>/<path>``, with ``{date:%Y%m%d}`` templates and globs.
        mapping: file column -> list field (``account``, ``phone1``..``phone10``,
            ``first_name``, ``last_name``, ``zip``, ``state``, ``timezone``,
            ``priority``, ``call_at``); columns named like a field map themselves;
            other columns are kept as custom fields.
        update_policy: ``append`` (new keys only), ``update`` (upsert by key) or
            ``replace`` (the list becomes exactly the file's valid rows).
        key_field: the field that identifies a record (default ``account``).
        format: ``auto``, ``csv``, ``xlsx`` or ``fixed``.
        delimiter: overrides the detected delimiter.
        encoding: overrides the detected encoding.
        sheet: the XLSX sheet (default: the first).
        widths: fixed-width column widths.
        columns: fixed-width column names (then the file has no header line).
        default_country: the region of national phone numbers (default ``US``).
        expires_after_days: records added or changed expire this many days later.
        min_rows: fewest rows to load, else fail (default 1 for ``replace``, else 0).
        max_reject_ratio: fail when more than this fraction of rows is rejected.
        scrub_exclusions: exclusion lists whose keys are not loaded (``excluded``).
        after_import: ``keep``, ``delete`` or ``archive:<folder>``, after the commit.
        force: import even when the file is the same as the last import.

    Returns:
        The outcome, also recorded as an artifact of the run.
    """
    with recording_outcome(Outcome(object_name=list_name, step="import")) as outcome:
        options = ImportOptions.from_parameters(
            list_name=list_name,
            source=source,
            mapping=mapping,
            update_policy=update_policy,
            key_field=key_field,
            format=format,
            delimiter=delimiter,
            encoding=encoding,
            sheet=sheet,
            widths=widths,
            columns=columns,
            default_country=default_country,
            expires_after_days=expires_after_days,
            min_rows=min_rows,
            max_reject_ratio=max_reject_ratio,
            scrub_exclusions=scrub_exclusions,
            after_import=after_import,
            force=force,
        )
        run_id = _flow_run_id()
        progress = RunProgress({"fetch": 1.0, "load": 2.0}, description=f"{list_name} · import")
        workdir = get_settings().home / "work" / (run_id or uuid.uuid4().hex)
        # Resolved once: finding the database block is a round trip to the server.
        engine = contact_center_engine()
        fetched = fetch_list_file(options, engine, _scheduled_time(), workdir, progress)
        outcome.bytes = fetched.size
        outcome.sha256 = fetched.sha256
        outcome.files.append(fetched.location.text)
        rejects = RejectsFile.for_run(list_name, run_id)
        try:
            if check_list_file(options, engine, fetched, run_id):
                list_file = parse_list(options, fetched)
                outcome.extra.update(
                    format=list_file.table.format,
                    encoding=list_file.table.encoding,
                    delimiter=list_file.table.delimiter,
                    update_policy=options.update_policy,
                )
                result = load_list(options, engine, fetched, list_file, rejects, progress, run_id)
                _fill_outcome(outcome, result)
            else:
                outcome.status = "skipped"
                outcome.message = (
                    f"{fetched.name} is the same file as the last import (sha256 "
                    f"{fetched.sha256[:12]}…); skipped"
                )
            if options.after_import != "keep":
                outcome.extra["after_import"] = tidy_list_source(fetched, options.after_import)
        finally:
            fetched.cleanup()
            rejects.report(outcome)
        progress.finish()
    return outcome


# --- helpers ---------------------------------------------------------------------------


def _flow_run_id() -> str | None:
    return str(runtime_flow_run.id) if FlowRunContext.get() is not None else None


def _scheduled_time() -> datetime:
    """The run's scheduled start (fills date templates); now for an ad-hoc call."""
    scheduled = runtime_flow_run.scheduled_start_time if FlowRunContext.get() else None
    return datetime.fromisoformat(str(scheduled)) if scheduled is not None else utcnow()


def _source_file(fetched: FetchedFile) -> SourceFile:
    return SourceFile(
        name=fetched.name, location=fetched.location.text, sha256=fetched.sha256, size=fetched.size
    )


def _fill_outcome(outcome: Outcome, result: LoadResult) -> None:
    outcome.rows_read = result.rows_read
    outcome.loaded = result.loaded
    outcome.updated = result.updated
    outcome.unchanged = result.unchanged
    outcome.removed = result.removed
    outcome.rejected = result.rejected
    outcome.rejects_by_reason = result.rejects_by_reason
    outcome.excluded = result.excluded
    outcome.extra.update(
        invalid_phones=result.invalid_phones,
        created_list=result.created_list,
        import_id=result.import_id,
    )
    outcome.message = (
        f"{result.rows_read} read: {result.loaded} loaded, {result.updated} updated, "
        f"{result.unchanged} unchanged, {result.removed} removed, {result.rejected} rejected, "
        f"{result.excluded} excluded"
    )


def _estimate_rows(path: Path, file_format: str) -> int | None:
    """Lines in a text file, less the header: the progress bar's total (quoted
    newlines make it a little high, which only slows the bar)."""
    if file_format == "xlsx":
        return None
    lines = 0
    with path.open("rb") as handle:
        while block := handle.read(_NEWLINE_SCAN_BYTES):
            lines += block.count(b"\n")
    return max(lines - 1, 1)
