"""The ``import-calling-list`` flow: a list file becomes records of a calling list.

validate -> fetch -> parse -> load -> tidy, with the fetch overlapping the rest:

1. ``fetch_list_file`` resolves the source (date templates, globs) and fetches it
   into the run's work folder, size-checked and hashed; the only step that retries.
   It runs in the background: the next steps read the bytes as they arrive, through
   :class:`~flows.common.arrival.IncomingFile`, which a retry does not disturb.
2. ``parse_list`` opens the file and checks the mapping against its header.
3. ``load_list`` parses and loads the rows in ONE transaction (see
   :mod:`flows.list_steps`); rejected rows go to a rejects CSV. The list's last
   import again (same SHA-256, unless ``force``) is rolled back as ``skipped``.
4. ``tidy_list_source`` keeps, deletes or archives the source.

A dry run (``dry_run``) does it all, then rolls the load back and records a preview
instead (:mod:`flows.common.preview`). An OpenPGP-encrypted file is read once its
download has finished, decrypted as it is read (``decrypt_with``).

The outcome is recorded as an artifact of the run, also when it fails.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Annotated

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.context import FlowRunContext
from prefect.runtime import flow_run as runtime_flow_run
from pydantic import Field
from sqlalchemy.engine import Engine

from contact_center.outcome import Outcome
from contact_center.parsing.gates import DEFAULT_MAX_REMOVED_RATIO
from contact_center.parsing.openpgp import Decryptor
from contact_center.parsing.parameters import (
    AfterImport,
    Days,
    Delimiter,
    FileFormat,
    Ratio,
    RecordField,
    RowCount,
    StrictBool,
    Text,
    UpdatePolicy,
    Width,
)
from contact_center.parsing.record_zones import ZoneSource
from contact_center.preview import PreviewSample
from contact_center.storage.list_options import ImportOptions
from contact_center.storage.list_results import LoadResult
from contact_center.storage.models import utcnow
from flows.common import (
    FetchedFile,
    IncomingFile,
    RunProgress,
    after_import,
    check_before_io,
    contact_center_engine,
    final_state,
    recording_outcome,
)
from flows.common.rejects import RejectsFile
from flows.common.retries import FETCH_TASK
from flows.common.slots import object_slot
from flows.common.workdir import run_folder, sweep_leftover_work
from flows.list_preview import record_dry_run
from flows.list_steps import (
    ListFile,
    fetch_into,
    fill_outcome,
    list_decryptor,
    load_arriving_list,
    log_load,
    open_list_file,
    settle_download,
)
from runlog.publish import publishes_task_log

__all__ = [
    "ListFile",
    "fetch_list_file",
    "import_calling_list",
    "load_list",
    "parse_list",
    "tidy_list_source",
]

# --- the steps -------------------------------------------------------------------------


@task(**FETCH_TASK)
def fetch_list_file(
    options: ImportOptions,
    engine: Engine,
    when: datetime,
    workdir: Path,
    progress: RunProgress,
    incoming: IncomingFile,
) -> FetchedFile:
    """Resolve the source and fetch it through ``incoming`` (the only step that retries).

    Raises:
        SourceUnavailable: nothing matches, the server cannot be reached, or the
            download fell short (retried).
        HostKeyError: the server's host key is unknown or changed (not retried).
    """
    return fetch_into(options, engine, when, workdir, progress, incoming)


@task(cache_policy=NO_CACHE)
def parse_list(
    options: ImportOptions, incoming: IncomingFile, decryptor: Decryptor | None = None
) -> ListFile:
    """Open the file and check the mapping against its header.

    Only the file's head is read here (all of it for an XLSX workbook, or when the
    head does not tell the encoding); the rows are parsed chunk by chunk inside
    ``load_list``'s transaction, so that memory does not grow with the file.

    Raises:
        InvalidFile: the file cannot be read or is of the wrong shape, or a mapped
            column (or the key) is missing; the message names the file and column.
    """
    list_file = open_list_file(options, incoming, decryptor)
    table = list_file.table
    get_run_logger().info(
        "%s: %s, encoding %s%s, delimiter %r, %s columns; mapped %s",
        table.name,
        table.format,
        table.encoding,
        " (from its head)" if table.encoding_guessed else "",
        table.delimiter,
        len(table.header),
        ", ".join(f"{column} -> {name}" for column, name in list_file.mapping.items()),
    )
    return list_file


@task(cache_policy=NO_CACHE)
def load_list(
    options: ImportOptions,
    engine: Engine,
    incoming: IncomingFile,
    list_file: ListFile,
    rejects: RejectsFile,
    progress: RunProgress,
    flow_run_id: str | None,
    sample: PreviewSample | None = None,
) -> LoadResult:
    """Parse the rows and load them with the update policy, in one transaction.

    The list's last import again (same SHA-256, known once the file has all
    arrived; unless ``force``) is rolled back and recorded as ``skipped``. A dry
    run is rolled back too; ``sample`` keeps its first rows for the preview.

    Raises:
        InvalidFile: a row cannot be parsed (names file, row and column).
        QualityGateFailed: ``min_rows``, ``max_reject_ratio`` or ``max_removed_ratio``;
            nothing changed.
        ObjectNotFound: a ``scrub_exclusions`` list does not exist.
        DatabaseError: the database refused the load; nothing changed.
        SourceUnavailable: the fetch failed for good; nothing changed.
    """
    total = list_file.estimated_rows

    def on_chunk(rows: int) -> None:
        progress.update("load", rows, max(total or 0, rows))

    result = load_arriving_list(
        options, engine, incoming, list_file, rejects.add, on_chunk, flow_run_id, sample
    )
    log_load(options, list_file, result)
    return result


@task(cache_policy=NO_CACHE)
def tidy_list_source(fetched: FetchedFile, action: str) -> str:
    """Keep, delete or archive the source file (after the load)."""
    done = after_import(fetched.location, action)
    get_run_logger().info("source %s: %s", fetched.location.text, done)
    return done


# --- the flow --------------------------------------------------------------------------


@publishes_task_log
@flow(name="import-calling-list", flow_run_name="{list_name} · import")
def import_calling_list(
    list_name: str,
    source: str,
    mapping: dict[str, RecordField] | None = None,
    update_policy: UpdatePolicy = "update",
    key_field: RecordField = "account",
    format: FileFormat = "auto",
    delimiter: Delimiter | None = None,
    encoding: str | None = None,
    sheet: str | None = None,
    widths: Annotated[list[Width], Field(min_length=1)] | None = None,
    columns: Annotated[list[Text], Field(min_length=1)] | None = None,
    default_country: str = "US",
    expires_after_days: Days | None = None,
    min_rows: RowCount | None = None,
    max_reject_ratio: Ratio | None = None,
    max_removed_ratio: Ratio = DEFAULT_MAX_REMOVED_RATIO,
    scrub_exclusions: list[Text] | None = None,
    after_import: AfterImport = "keep",
    force: StrictBool = False,
    timezone_precedence: list[ZoneSource] | None = None,
    default_timezone: Text | None = None,
    dry_run: StrictBool = False,
    decrypt_with: Text | None = None,
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
        delimiter: overrides the detected delimiter: ``,`` ``;`` ``\\t`` ``|`` (or
            ``comma``, ``semicolon``, ``tab``, ``pipe``).
        encoding: overrides the detected encoding.
        sheet: the XLSX sheet (default: the first).
        widths: fixed-width column widths.
        columns: fixed-width column names (then the file has no header line).
        default_country: the region of national phone numbers (default ``US``).
        expires_after_days: records added or changed expire this many days later.
        min_rows: fewest rows to load, else fail (default 1 for ``replace``, else 0).
        max_reject_ratio: fail when more than this fraction of rows is rejected.
        max_removed_ratio: a ``replace`` removing more than this share of the list fails.
        scrub_exclusions: exclusion lists whose keys are not loaded (``excluded``).
        after_import: ``keep``, ``delete`` or ``archive:<folder>``, after the commit.
        force: import even when the file is the same as the last import, and
            ``replace`` even beyond ``max_removed_ratio``.
        timezone_precedence: where a record's time zone comes from, first decides
            (default ``[column, zip, phone, state]``; see docs/calling-list-import.md).
        default_timezone: the IANA zone of records no source decides (default: none).
        dry_run: run the whole import, then roll it back: nothing changes (no
            records, no import history, no checksum, the source is not tidied); the
            run records a preview (counts, rejects, sample rows, gates) instead.
        decrypt_with: the Secret block holding the OpenPGP private key (and its
            passphrase) of an encrypted file (``.pgp``, ``.gpg``, ``.asc``).

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
            max_removed_ratio=max_removed_ratio,
            scrub_exclusions=scrub_exclusions,
            after_import=after_import,
            force=force,
            timezone_precedence=timezone_precedence,
            default_timezone=default_timezone,
            dry_run=dry_run,
            decrypt_with=decrypt_with,
        )
        check_before_io(options.source, after_import=options.after_import)
        sweep_leftover_work()
        with object_slot("list", options.list_name):
            run_id = _flow_run_id()
            progress = RunProgress(
                {"fetch": 1.0, "load": 2.0},
                description=f"{list_name} · import",
                outcome=outcome,
                units={"fetch": "bytes", "load": "rows"},
            )
            workdir = run_folder(run_id)  # made by the first file written in it
            # Resolved once: finding the database block is a round trip to the server.
            engine = contact_center_engine()
            incoming = IncomingFile()
            fetching = fetch_list_file.submit(
                options, engine, _scheduled_time(), workdir, progress, incoming
            )
            incoming.follow(fetching)
            rejects = RejectsFile.for_run(list_name, run_id, workdir)
            try:
                incoming.location()  # the first bytes, or the fetch's error
                sample = PreviewSample() if options.dry_run else None
                with list_decryptor(options, incoming) as decryptor:
                    list_file = parse_list(options, incoming, decryptor)
                    outcome.extra.update(list_file.describe(), update_policy=options.update_policy)
                    outcome.extra["encrypted"] = decryptor is not None
                    result = load_list(
                        options, engine, incoming, list_file, rejects, progress, run_id, sample
                    )
                outcome.extra.update(list_file.describe())  # a guessed encoding may have changed
                fill_outcome(outcome, result, incoming.whole())
                if result.skipped or sample is not None:
                    rejects.discard()  # a dry run leaves no rejects file either
                else:
                    rejects.commit()
                if sample is not None:
                    fetched = incoming.whole()
                    record_dry_run(outcome, options, engine, fetched, list_file, result, sample)
                elif options.after_import != "keep":
                    outcome.extra["after_import"] = tidy_list_source(
                        incoming.whole(), options.after_import
                    )
            finally:
                rejects.report(outcome)  # before the folder it is staged in goes it is staged in
                settle_download(fetching, incoming, workdir, outcome)
            progress.finish()
    return final_state(outcome)  # type: ignore[return-value]


def _flow_run_id() -> str | None:
    return str(runtime_flow_run.id) if FlowRunContext.get() is not None else None


def _scheduled_time() -> datetime:
    """The run's scheduled start (fills date templates); now for an ad-hoc call."""
    scheduled = runtime_flow_run.scheduled_start_time if FlowRunContext.get() else None
    return datetime.fromisoformat(str(scheduled)) if scheduled is not None else utcnow()
