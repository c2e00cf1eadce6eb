"""The ``import-calling-list`` flow: a list file becomes records of a calling list.

fetch -> parse -> load, overlapped: the file is parsed and loaded while it is
still being downloaded.

1. ``fetch_list_file`` resolves the source (date templates from the run's scheduled
   time; a glob picks the newest file this list has not imported yet), downloads
   it to a temporary file checked against the remote size, and hashes it. It is
   the only step that retries (3 tries with backoff), and it does not retry what
   a retry cannot fix (an unknown host key, a bad parameter, a missing block).
   It runs in the background while the next steps read the bytes as they arrive
   (:class:`~flows.common.transfer.Download`).
2. ``parse_list`` opens the file (format, encoding and delimiter detected unless
   given) and checks the mapping against its header, so a missing column fails
   before anything is loaded.
3. ``load_list`` parses the file chunk by chunk in a background thread while the
   database ingests the previous chunk, all in ONE transaction (see
   :mod:`contact_center.storage.list_load`): memory stays flat, and any failure leaves
   the list as it was. Rejected rows go to a rejects CSV under ``<home>/rejects``
   (marked ``.failed.csv`` when the load did not commit).
4. Once the download has finished, ``check_list_file`` compares the file's SHA-256
   with the list's last completed import: the same file again completes as
   ``skipped`` unless ``force`` (a load already under way is rolled back).
5. ``tidy_list_source`` keeps, deletes or archives the source, only after the
   commit.

Reading while downloading is an optimisation that never changes the result: when
the download fails or starts over (a retry), when the file's head cannot tell its
encoding for sure (or a later byte proves the guess wrong), when it is an XLSX
workbook, or when it turns out to be the last import again, the load is rolled
back (or not started) and the steps run again in order on the finished file.

The outcome (counts, bytes, files, checksum) is recorded as an artifact of the
run, also when it fails; a progress artifact follows the fetch (bytes) and the
load (rows).
"""

from __future__ import annotations

import io
import posixpath
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, cast

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.context import FlowRunContext
from prefect.futures import PrefectFuture
from prefect.runtime import flow_run as runtime_flow_run
from sqlalchemy.engine import Engine

from contact_center.exceptions import DownloadInterrupted, InvalidFile, LimitExceeded
from contact_center.outcome import Outcome
from contact_center.parsing.files import TableReader, read_arriving_table
from contact_center.parsing.gates import DEFAULT_MAX_REMOVED_RATIO
from contact_center.parsing.lists import RecordParser, validate_mapping
from contact_center.parsing.openpgp import Decryptor, is_openpgp, read_encrypted_table
from contact_center.preview import Preview, PreviewSample
from contact_center.settings import FETCH_RETRIES, FETCH_RETRY_DELAYS, LIST_CHUNK_ROWS
from contact_center.storage.bulk import prefetch
from contact_center.storage.list_load import (
    ImportOptions,
    LoadResult,
    SourceFile,
    imported_file_names,
    last_import_sha256,
    load_list_records,
    record_skipped_import,
)
from contact_center.storage.models import utcnow
from flows.common import (
    Download,
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
from flows.common.decrypt import decrypting
from flows.common.preview import mark_dry_run, record_preview
from flows.common.rejects import RejectsFile
from flows.common.retries import retry_transfer
from flows.common.workdir import run_folder, sweep_leftover_work

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


@task(
    retries=FETCH_RETRIES,
    retry_delay_seconds=[float(s) for s in FETCH_RETRY_DELAYS],
    retry_condition_fn=retry_transfer,
    cache_policy=NO_CACHE,
)
def fetch_list_file(
    options: ImportOptions,
    engine: Engine,
    when: datetime,
    workdir: Path,
    progress: RunProgress,
    download: Download | None = None,
) -> FetchedFile:
    """Resolve the source and fetch it (the only step that retries).

    ``download``, when given, is told how the fetch goes, so that the next steps
    can read the file while it arrives.

    Raises:
        SourceUnavailable: nothing matches, the server cannot be reached, or the
            download fell short (retried).
        HostKeyError: the server's host key is unknown or changed (not retried).
    """
    try:
        with progress.attempt("fetch"):
            exclude = imported_file_names(engine, options.list_name)
            location = resolve_source(options.source, when=when, exclude=exclude)
            get_run_logger().info("fetching %s", location.text)
            fetched = fetch(
                location,
                workdir,
                lambda done, total: progress.update("fetch", done, total),
                download=download,
            )
    except BaseException:
        if download is not None:
            download.failed()  # a reader waiting for the start must not wait forever
        raise
    progress.update("fetch", fetched.size, fetched.size, force=True)
    get_run_logger().info(
        "fetched %s: %s bytes, sha256 %s", fetched.name, fetched.size, fetched.sha256
    )
    return fetched


def _same_as_last_import(fetched: FetchedFile, last_sha256: str | None, force: bool) -> bool:
    return not force and last_sha256 == fetched.sha256


@task(cache_policy=NO_CACHE)
def check_list_file(
    options: ImportOptions, engine: Engine, fetched: FetchedFile, flow_run_id: str | None
) -> bool:
    """Whether to load the file: not when it is the list's last import again (unless ``force``).

    A skipped file is recorded in ``list_imports`` with the status ``skipped``.
    """
    last = last_import_sha256(engine, options.list_name)
    if not _same_as_last_import(fetched, last, options.force):
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

    def describe(self) -> dict[str, Any]:
        """What the outcome records of the file's shape."""
        return {
            "format": self.table.format,
            "encoding": self.table.encoding,
            "delimiter": self.table.delimiter,
        }


@task(cache_policy=NO_CACHE)
def parse_list(
    options: ImportOptions, source: FetchedFile | Download, decryptor: Decryptor | None = None
) -> ListFile | None:
    """Open the file and check the mapping against its header.

    The rows themselves are parsed chunk by chunk inside ``load_list``'s
    transaction, so that memory does not grow with the file.

    Args:
        options: the import's parameters.
        source: the fetched file, or the download while it arrives (then only
            the file's head is read here).
        decryptor: for an OpenPGP-encrypted file, what decrypts it as it is read.

    Returns:
        How to read the file; None (for a download) when it must be complete first:
        an XLSX workbook, an encrypted file, a head that does not tell the encoding
        for sure, or a download that failed or started over.

    Raises:
        InvalidFile: the file cannot be read or is of the wrong shape, or a mapped
            column (or the key) is missing; the message names the file and column.
    """
    if isinstance(source, Download):
        try:
            location = source.location()
            assert source.path is not None
            name = posixpath.basename(location.path)
            if _arriving_encrypted(source, name):
                get_run_logger().info("%s is encrypted: read once its download has finished", name)
                return None
            table = _open_table(options, source.path, name, source)
        except DownloadInterrupted:
            return None
        if table is None:
            get_run_logger().info("%s is read once its download has finished", name)
            return None
        estimate = _estimate_rows_from_head(source, table.format)
    else:
        name = source.name
        table = _open_table(options, source.path, name, decryptor=decryptor)
        assert table is not None
        # An encrypted file's lines cannot be counted without decrypting it once more.
        estimate = None if decryptor else _estimate_rows(source.path, table.format)
    mapping = validate_mapping(options.mapping, table.header, options.key_field, file=name)
    get_run_logger().info(
        "%s: %s, encoding %s%s, delimiter %r, %s columns; mapped %s",
        name,
        table.format,
        table.encoding,
        " (from its head)" if table.encoding_guessed else "",
        table.delimiter,
        len(table.header),
        ", ".join(f"{column} -> {name}" for column, name in mapping.items()),
    )
    return ListFile(table, mapping, estimate)


def _open_table(
    options: ImportOptions,
    path: Path,
    name: str,
    download: Download | None = None,
    decryptor: Decryptor | None = None,
) -> TableReader | None:
    shape: dict[str, Any] = {
        "format": options.format,
        "delimiter": options.delimiter,
        "encoding": options.encoding,
        "sheet": options.sheet,
        "widths": options.widths,
        "columns": options.columns,
        "chunk_rows": LIST_CHUNK_ROWS,
    }
    if decryptor is not None:
        return read_encrypted_table(decryptor, path, name=name, **shape)
    return read_arriving_table(
        path,
        name=name,
        opener=download.open if download is not None else None,
        size=download.size if download is not None else None,
        **shape,
    )


def _arriving_encrypted(download: Download, name: str) -> bool:
    """Whether a file still arriving is OpenPGP, by its name or its first bytes."""
    with io.BufferedReader(cast(io.RawIOBase, download.open())) as handle:
        return is_openpgp(name, handle.read(min(64, download.size)))


class _SameFile(Exception):
    """The file being loaded is the list's last import again (rolls the load back)."""


class _LastImportWatch:
    """Stops a load of an arriving file once the file is known to be the last import again."""

    def __init__(self, download: Download | None, last_sha256: str | None, force: bool) -> None:
        self._download = download
        self._last = last_sha256
        self._force = force
        self._checked = download is None

    def check(self, wait: bool = False) -> None:
        """Raise _SameFile if the finished download is the last import (``wait``: for the end).

        Raises:
            DownloadInterrupted: (``wait``) the download failed or started over.
        """
        if self._checked or self._download is None:
            return
        fetched = self._download.wait_fetched() if wait else self._download.fetched
        if fetched is None:
            return
        self._checked = True
        if _same_as_last_import(fetched, self._last, self._force):
            raise _SameFile


@task(cache_policy=NO_CACHE)
def load_list(
    options: ImportOptions,
    engine: Engine,
    source: FetchedFile | Download,
    list_file: ListFile,
    rejects: RejectsFile,
    progress: RunProgress,
    flow_run_id: str | None,
    last_sha256: str | None = None,
    sample: PreviewSample | None = None,
) -> LoadResult | None:
    """Parse the rows and load them with the update policy, in one transaction.

    Args:
        source: the fetched file, or the download while it arrives.
        last_sha256: for a download, the checksum of the list's last completed
            import: the same file again is rolled back as soon as it is known.
        sample: (a dry run) keeps the first valid and rejected rows for the preview.

    Returns:
        The committed counts; None (for a download) when nothing was loaded and the
        file must be read again once fetched: the download failed or started over,
        the encoding guessed from the head was wrong, or the file is the last
        import again.

    Raises:
        InvalidFile: a row cannot be parsed (names file, row and column).
        QualityGateFailed: ``min_rows``, ``max_reject_ratio`` or ``max_removed_ratio``;
            nothing changed.
        ObjectNotFound: a ``scrub_exclusions`` list does not exist.
        DatabaseError: the database refused the load; nothing changed.
    """
    parser = RecordParser(
        list_file.mapping, options.key_field, options.default_country, list_file.table.name
    )
    total = list_file.estimated_rows
    download = source if isinstance(source, Download) else None

    def parsed_chunks() -> Iterator[Any]:
        for chunk in list_file.table:
            yield parser.parse(chunk)

    watch = _LastImportWatch(download, last_sha256, options.force)

    def recorded(chunks: Iterator[Any]) -> Iterator[Any]:
        for parsed in chunks:
            rejects.add(parsed.rejects)
            if sample is not None:
                sample.add(parsed.valid, parsed.rejects)
            watch.check()
            yield parsed
        watch.check(wait=True)

    def on_chunk(rows: int) -> None:
        progress.update("load", rows, max(total or 0, rows))

    def final_source() -> SourceFile:
        assert download is not None and download.fetched is not None
        return _source_file(download.fetched)

    try:
        result = load_list_records(
            engine,
            recorded(prefetch(parsed_chunks(), depth=1)),
            options,
            _arriving_source(source),
            flow_run_id=flow_run_id,
            on_chunk=on_chunk,
            fields=set(list_file.mapping.values()),
            final_source=final_source if download is not None else None,
        )
    except (DownloadInterrupted, _SameFile, InvalidFile) as exc:
        # A read limit would stop a second read as well.
        if download is None or (
            isinstance(exc, InvalidFile)
            and (isinstance(exc, LimitExceeded) or not list_file.table.encoding_guessed)
        ):
            raise
        get_run_logger().info(
            "%s: nothing loaded while it arrived (%s); it is read again once fetched",
            list_file.table.name,
            _why_again(exc),
        )
        return None
    get_run_logger().info(
        "%s%s into %r (%s): %s read, %s loaded, %s updated, %s unchanged, %s removed, "
        "%s rejected, %s excluded",
        "dry run (rolled back) of " if result.dry_run else "",
        list_file.table.name,
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


def _why_again(exc: BaseException) -> str:
    if isinstance(exc, _SameFile):
        return "it is the last import again"
    if isinstance(exc, InvalidFile):
        return f"the encoding guessed from its head did not hold: {exc}"
    return str(exc)


def _arriving_source(source: FetchedFile | Download) -> SourceFile:
    """What ``list_imports`` records at the start (the checksum comes at the end)."""
    if isinstance(source, FetchedFile):
        return _source_file(source)
    location = source.location()
    return SourceFile(
        name=posixpath.basename(location.path),
        location=location.text,
        sha256="",
        size=source.size,
    )


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
    max_removed_ratio: float = DEFAULT_MAX_REMOVED_RATIO,
    scrub_exclusions: list[str] | None = None,
    after_import: str = "keep",
    force: bool = False,
    dry_run: bool = False,
    decrypt_with: str | None = None,
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
        max_removed_ratio: a ``replace`` removing more than this share of the list fails.
        scrub_exclusions: exclusion lists whose keys are not loaded (``excluded``).
        after_import: ``keep``, ``delete`` or ``archive:<folder>``, after the commit.
        force: import even when the file is the same as the last import, and
            ``replace`` even beyond ``max_removed_ratio``.
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
            dry_run=dry_run,
            decrypt_with=decrypt_with,
        )
        check_before_io(options.source, after_import=options.after_import)
        sweep_leftover_work()
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
        last_sha256 = last_import_sha256(engine, options.list_name)
        # A dry run loads the file even when it is the last import again (and says so).
        watched_sha256 = None if options.force or options.dry_run else last_sha256
        sample = PreviewSample() if options.dry_run else None
        download = Download()
        fetching = fetch_list_file.submit(
            options, engine, _scheduled_time(), workdir, progress, download
        )
        rejects = RejectsFile.for_run(list_name, run_id, workdir)
        try:
            # The file is parsed and loaded while it arrives...
            list_file = parse_list(options, download) if _download_started(download) else None
            result = None
            if list_file is not None:
                outcome.extra.update(list_file.describe(), update_policy=options.update_policy)
                result = load_list(
                    options, engine, download, list_file, rejects, progress, run_id,
                    watched_sha256, sample,
                )  # fmt: skip
            fetched = fetching.result()
            if result is None:
                # ...or again, in order, once it is all here (see the module's notes).
                rejects.discard()
                sample = PreviewSample() if options.dry_run else None
                result, list_file = _load_fetched(
                    options, engine, fetched, outcome, rejects, progress, run_id, sample
                )
            if result is not None and sample is not None:
                rejects.discard()  # a dry run leaves no rejects file either
                _fill_outcome(outcome, result)
                _record_dry_run(outcome, options, fetched, list_file, result, sample, last_sha256)
            elif result is not None:
                rejects.commit()
                _fill_outcome(outcome, result)
            else:
                outcome.status = "skipped"
                outcome.message = (
                    f"{fetched.name} is the same file as the last import (sha256 "
                    f"{fetched.sha256[:12]}…); skipped"
                )
            if options.after_import != "keep" and not options.dry_run:
                outcome.extra["after_import"] = tidy_list_source(fetched, options.after_import)
        finally:
            rejects.report(outcome)  # before _settle removes the folder it is staged in
            _settle(fetching, download, workdir, outcome)
        progress.finish()
    return final_state(outcome)  # type: ignore[return-value]


def _download_started(download: Download) -> bool:
    """Wait for the download to start writing; False if it failed first."""
    try:
        download.location()
    except DownloadInterrupted:
        return False
    return True


def _load_fetched(
    options: ImportOptions,
    engine: Engine,
    fetched: FetchedFile,
    outcome: Outcome,
    rejects: RejectsFile,
    progress: RunProgress,
    run_id: str | None,
    sample: PreviewSample | None,
) -> tuple[LoadResult | None, ListFile | None]:
    """The steps in order on the fetched file: check, parse, load; None when skipped."""
    if not options.dry_run and not check_list_file(options, engine, fetched, run_id):
        return None, None
    with decrypting(fetched.path, fetched.name, options.decrypt_with) as decryptor:
        list_file = parse_list(options, fetched, decryptor)
        assert list_file is not None
        outcome.extra.update(list_file.describe(), update_policy=options.update_policy)
        outcome.extra["encrypted"] = decryptor is not None
        result = load_list(
            options, engine, fetched, list_file, rejects, progress, run_id, sample=sample
        )
    return result, list_file


def _record_dry_run(
    outcome: Outcome,
    options: ImportOptions,
    fetched: FetchedFile,
    list_file: ListFile | None,
    result: LoadResult,
    sample: PreviewSample,
    last_sha256: str | None,
) -> None:
    """Record the preview of a dry run, and mark its outcome as one."""
    assert list_file is not None
    mapped = set(list_file.mapping)
    preview = Preview(
        object_name=options.list_name,
        file=fetched.name,
        counts={
            k: getattr(result, k)
            for k in ("rows_read", "loaded", "updated", "unchanged", "removed", "rejected")
        }
        | {"excluded": result.excluded, "invalid_phones": result.invalid_phones},
        rejects_by_reason=result.rejects_by_reason,
        rejected_rows=sample.rejected,
        rows=sample.rows,
        custom_fields=[c for c in list_file.table.header if c not in mapped],
        detected=list_file.describe() | {"encrypted": bool(outcome.extra.get("encrypted"))},
        gates=result.gates,
    )
    if last_sha256 == fetched.sha256:
        preview.notes.append(
            "the file is the same as the last import: a real run skips it unless force: true"
        )
    record_preview(preview)
    mark_dry_run(outcome, preview)
    outcome.extra["import_id"] = None  # it was rolled back


def _settle(
    fetching: PrefectFuture[FetchedFile], download: Download, workdir: Path, outcome: Outcome
) -> None:
    """Stop (or wait for) the download, record the file in the outcome (also when the
    run fails), then delete the run's temporary files."""
    download.cancel()  # a no-op once it has finished
    fetching.wait()
    fetched = download.fetched
    if fetched is not None:
        outcome.bytes = fetched.size
        outcome.sha256 = fetched.sha256
        outcome.files.insert(0, fetched.location.text)
        fetched.cleanup()
    shutil.rmtree(workdir, ignore_errors=True)


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


def _estimate_rows_from_head(download: Download, file_format: str) -> int | None:
    """The progress bar's total for a file still arriving: its size over the bytes per
    line of its head."""
    if file_format == "xlsx":
        return None
    size = download.size
    with io.BufferedReader(cast(io.RawIOBase, download.open())) as handle:
        head = handle.read(_NEWLINE_SCAN_BYTES)
    lines = head.count(b"\n")
    if not lines or len(head) >= size:
        return max(lines - 1, 1)
    return max(round(size * lines / len(head)) - 1, 1)


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
