"""The list import's steps as plain functions; :mod:`flows.calling_list_import` wraps
them in Prefect tasks.

Both read the file through :class:`~flows.common.arrival.IncomingFile`, as its bytes
arrive: :func:`open_list_file` its head, :func:`load_arriving_list` its rows, parsed
in a background thread while the database ingests the previous chunk, in one
transaction (see :mod:`contact_center.storage.list_load`).
"""

from __future__ import annotations

import io
import posixpath
import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, cast

import pandas as pd
from prefect import get_run_logger
from prefect.futures import PrefectFuture
from sqlalchemy.engine import Engine

from contact_center.outcome import Outcome
from contact_center.parsing.files import read_arriving_table
from contact_center.parsing.lists import RecordParser, validate_mapping
from contact_center.parsing.openpgp import Decryptor, is_openpgp, read_encrypted_table
from contact_center.parsing.table_reader import TableReader
from contact_center.preview import PreviewSample
from contact_center.settings import LIST_CHUNK_ROWS
from contact_center.storage.bulk import prefetch
from contact_center.storage.list_imports import imported_file_names, last_import_sha256
from contact_center.storage.list_load import load_list_records
from contact_center.storage.list_options import ImportOptions
from contact_center.storage.list_results import LoadResult, SourceFile
from flows.common import FetchedFile, IncomingFile, RunProgress, fetch, resolve_source
from flows.common.decrypt import decrypting

__all__ = [
    "ListFile",
    "fetch_into",
    "fill_outcome",
    "list_decryptor",
    "load_arriving_list",
    "load_summary",
    "log_load",
    "open_list_file",
    "settle_download",
]

_NEWLINE_SCAN_BYTES = 1 << 20
# Enough of a file's start to tell an OpenPGP message (armour or a packet header).
_OPENPGP_HEAD_BYTES = 64


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


@contextmanager
def list_decryptor(options: ImportOptions, incoming: IncomingFile) -> Iterator[Decryptor | None]:
    """A decryptor for an OpenPGP-encrypted file (by its name or first bytes), else None.

    gpg reads a whole file, so an encrypted file is read once its download has
    finished (like a workbook); the plain text is then streamed, never written.

    Raises:
        InvalidParameter: the file is encrypted and ``decrypt_with`` names no block.
        ObjectNotFound: the ``decrypt_with`` block does not exist.
        SourceUnavailable: the fetch failed for good.
    """
    name = posixpath.basename(incoming.location().path)
    with io.BufferedReader(cast(io.RawIOBase, incoming.open())) as handle:
        head = handle.read(min(_OPENPGP_HEAD_BYTES, incoming.size))
    if not is_openpgp(name, head):
        yield None
        return
    fetched = incoming.whole()
    with decrypting(fetched.path, fetched.name, options.decrypt_with) as decryptor:
        yield decryptor


def fetch_into(
    options: ImportOptions,
    engine: Engine,
    when: datetime,
    workdir: Path,
    progress: RunProgress,
    incoming: IncomingFile,
) -> FetchedFile:
    """Resolve the source and fetch it through ``incoming`` (its readers follow it).

    Raises:
        SourceUnavailable: nothing matches, the server cannot be reached, or the
            download fell short.
        HostKeyError: the server's host key is unknown or changed.
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
                incoming=incoming,
            )
    except BaseException as exc:
        incoming.failed(exc)  # its readers wait for a retry, or fail with this
        raise
    progress.update("fetch", fetched.size, fetched.size, force=True)
    get_run_logger().info(
        "fetched %s: %s bytes, sha256 %s", fetched.name, fetched.size, fetched.sha256
    )
    return fetched


def open_list_file(
    options: ImportOptions, incoming: IncomingFile, decryptor: Decryptor | None = None
) -> ListFile:
    """Open the file from its head and check the mapping against its header.

    Args:
        decryptor: for an encrypted file (see :func:`list_decryptor`), what decrypts
            it as it is read.

    Raises:
        InvalidFile: the file cannot be read or is of the wrong shape, or a mapped
            column (or the key) is missing; the message names the file and column.
        SourceUnavailable: the fetch failed for good (when the whole file is needed).
    """
    name = posixpath.basename(incoming.location().path)
    assert incoming.path is not None
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
        table = read_encrypted_table(decryptor, incoming.whole().path, name=name, **shape)
        # Its lines cannot be counted without decrypting it once more.
        estimate = None
    else:
        table = read_arriving_table(
            incoming.path,
            name=name,
            opener=incoming.open,
            size=incoming.size,
            complete=lambda: incoming.whole().path,
            **shape,
        )
        estimate = _estimate_rows(incoming, table.format)
    mapping = validate_mapping(options.mapping, table.header, options.key_field, file=name)
    return ListFile(table, mapping, estimate)


def load_arriving_list(
    options: ImportOptions,
    engine: Engine,
    incoming: IncomingFile,
    list_file: ListFile,
    on_rejects: Callable[[pd.DataFrame], None],
    on_chunk: Callable[[int], None],
    flow_run_id: str | None,
    sample: PreviewSample | None = None,
) -> LoadResult:
    """Parse the rows and load them, in one transaction (see :func:`load_list_records`).

    Once the file has all arrived, its checksum is known: the list's last import
    again (unless ``force``, or a dry run, which loads it and says so) stops the
    reading there and is rolled back as a skip.

    Args:
        sample: (a dry run) keeps the first valid and rejected rows for the preview.
    """
    parser = RecordParser(
        list_file.mapping,
        options.key_field,
        options.default_country,
        list_file.table.name,
        zones=options.zone_assigner(),
    )
    skip_same = not (options.force or options.dry_run)
    last = last_import_sha256(engine, options.list_name) if skip_same else None

    def parsed_chunks() -> Iterator[Any]:
        for chunk in list_file.table:
            yield parser.parse(chunk)

    def recorded(chunks: Iterator[Any]) -> Iterator[Any]:
        for parsed in chunks:
            on_rejects(parsed.rejects)
            if sample is not None:
                sample.add(parsed.valid, parsed.rejects)
            yield parsed
            fetched = incoming.fetched
            if last is not None and fetched is not None and fetched.sha256 == last:
                return  # the last import again: the rest need not be read

    chunks = prefetch(parsed_chunks(), depth=1)
    location = incoming.location()
    try:
        return load_list_records(
            engine,
            recorded(chunks),
            options,
            SourceFile(posixpath.basename(location.path), location.text, "", incoming.size),
            flow_run_id=flow_run_id,
            on_chunk=on_chunk,
            fields=set(list_file.mapping.values()),
            final_source=lambda: _source_file(incoming.whole()),
            last_sha256=last,
        )
    finally:
        chunks.close()  # type: ignore[attr-defined]


def log_load(options: ImportOptions, list_file: ListFile, result: LoadResult) -> None:
    """Log what a load did: its counts, its skip, or its dry run."""
    name, list_name = list_file.table.name, options.list_name
    if result.skipped:
        get_run_logger().info(
            "%s has the checksum of the last import into %r; skipped (force: true re-imports it)",
            name,
            list_name,
        )
    else:
        policy = options.update_policy
        how = "dry run (rolled back) of " if result.dry_run else ""
        summary = load_summary(result)
        get_run_logger().info("%s%s into %r (%s): %s", how, name, list_name, policy, summary)


def load_summary(result: LoadResult) -> str:
    """The counts of a load, in one line."""
    return (
        f"{result.rows_read} read: {result.loaded} loaded, {result.updated} updated, "
        f"{result.unchanged} unchanged, {result.removed} removed, {result.rejected} rejected, "
        f"{result.excluded} excluded"
    )


def fill_outcome(outcome: Outcome, result: LoadResult, fetched: FetchedFile) -> None:
    """Record a load's counts (or its skip) in the run's outcome."""
    if result.skipped:
        outcome.status = "skipped"
        outcome.message = (
            f"{fetched.name} is the same file as the last import (sha256 "
            f"{fetched.sha256[:12]}…); skipped"
        )
        return
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
    outcome.message = load_summary(result)


def _source_file(fetched: FetchedFile) -> SourceFile:
    return SourceFile(
        name=fetched.name, location=fetched.location.text, sha256=fetched.sha256, size=fetched.size
    )


def _estimate_rows(incoming: IncomingFile, file_format: str) -> int | None:
    """The progress bar's total: the file's size over the bytes per line of its head
    (quoted newlines make it a little high, which only slows the bar)."""
    if file_format == "xlsx":
        return None
    size = incoming.size
    with io.BufferedReader(cast(io.RawIOBase, incoming.open())) as handle:
        head = handle.read(_NEWLINE_SCAN_BYTES)
    lines = head.count(b"\n")
    if not lines or len(head) >= size:
        return max(lines - 1, 1)
    return max(round(size * lines / len(head)) - 1, 1)


def settle_download(
    fetching: PrefectFuture[FetchedFile], incoming: IncomingFile, workdir: Path, outcome: Outcome
) -> None:
    """Stop (or wait for) the download, record the file in the outcome (also when the
    run fails), then delete the run's temporary files."""
    incoming.cancel()  # a no-op once it has finished
    fetching.wait()
    fetched = incoming.fetched
    if fetched is not None:
        outcome.bytes = fetched.size
        outcome.sha256 = fetched.sha256
        outcome.files.insert(0, fetched.location.text)
        fetched.cleanup()
    shutil.rmtree(workdir, ignore_errors=True)
