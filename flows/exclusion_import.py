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

A dry run (``dry_run``) does it all, then rolls the load back and records a preview
(:mod:`flows.common.preview`). An OpenPGP-encrypted file is decrypted as it is read
(``decrypt_with``).

``step: reset`` empties the list (the daily reset, on its own schedule).

Expiry: ``expires_after_days`` from the import time (default 90), or the dates of
an ``expiry_column``. Times come from :func:`contact_center.storage.models.utcnow`; the
domain functions take ``now`` so tests can set it.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from prefect import flow
from prefect.runtime import flow_run as runtime_flow_run

from contact_center.outcome import Outcome
from contact_center.parsing.gates import DEFAULT_MAX_REMOVED_RATIO
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
)
from contact_center.settings import DEFAULT_EXCLUSION_EXPIRY_DAYS
from contact_center.storage.models import utcnow
from flows.common import (
    RunProgress,
    check_before_io,
    final_state,
    recording_outcome,
)
from flows.common.decrypt import decrypting
from flows.common.preview import exclusion_preview, mark_dry_run, record_preview
from flows.common.rejects import RejectsFile
from flows.common.slots import object_slot
from flows.common.workdir import run_workdir, sweep_leftover_work
from flows.exclusion_request import ExclusionRequest, validate_request
from flows.exclusion_steps import (
    fetch_exclusion_file,
    load_exclusions,
    parse_exclusions,
    reset_exclusions,
    tidy_source,
)
from runlog.publish import publishes_task_log

__all__ = ["import_exclusions"]


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
        detected: dict[str, Any] = {}
        gates: dict[str, str | None] | None = {} if request.dry_run else None
        try:
            with decrypting(fetched.path, fetched.name, request.decrypt_with) as decryptor:
                parsed = parse_exclusions(request, fetched, started_at, decryptor, detected)
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
                gates=gates,
            )
            if gates is None:
                rejects.commit()
            else:
                rejects.discard()  # a dry run leaves no rejects file
        finally:
            fetched.cleanup()
            rejects.report(outcome)
    outcome.loaded, outcome.updated, outcome.removed = counts.added, counts.renewed, counts.removed
    outcome.extra.update(detected)
    outcome.message = (
        f"{counts.added} added, {counts.renewed} renewed, {counts.removed} removed, "
        f"{outcome.rejected} rejected, {parsed.duplicates} duplicates"
    )
    if gates is not None:
        preview = exclusion_preview(
            request.exclusion_list, fetched.name, parsed, counts, detected, gates
        )
        record_preview(preview)
        mark_dry_run(outcome, preview)
    else:
        outcome.extra["after_import"] = tidy_source(fetched, request.after_import)
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
    dry_run: StrictBool = False,
    decrypt_with: Text | None = None,
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
        dry_run: import, then roll back: nothing changes (no keys, no import row,
            the source is not tidied); the run records a preview instead.
        decrypt_with: the Secret block holding the OpenPGP private key (and its
            passphrase) of an encrypted file (``.pgp``, ``.gpg``, ``.asc``).

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
