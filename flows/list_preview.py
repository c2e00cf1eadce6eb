"""The list import's dry run: what it would have done, recorded as a preview.

The load ran in a transaction that was rolled back (see
:func:`flows.list_steps.load_arriving_list`); these turn its result into the preview
artifacts of :mod:`flows.common.preview`.
"""

from __future__ import annotations

from sqlalchemy.engine import Engine

from contact_center.outcome import Outcome
from contact_center.preview import Preview, PreviewSample
from contact_center.storage.list_imports import last_import_sha256
from contact_center.storage.list_options import ImportOptions
from contact_center.storage.list_results import LoadResult
from flows.common import FetchedFile
from flows.common.preview import mark_dry_run, record_preview
from flows.list_steps import ListFile

__all__ = ["list_preview", "record_dry_run"]


def list_preview(
    options: ImportOptions,
    fetched: FetchedFile,
    list_file: ListFile,
    result: LoadResult,
    sample: PreviewSample,
    last_sha256: str | None,
) -> Preview:
    """What a dry run of the list import would have done (see :mod:`contact_center.preview`)."""
    mapped = set(list_file.mapping)
    counted = ("rows_read", "loaded", "updated", "unchanged", "removed", "rejected")
    preview = Preview(
        object_name=options.list_name,
        file=fetched.name,
        counts={k: getattr(result, k) for k in counted}
        | {"excluded": result.excluded, "invalid_phones": result.invalid_phones},
        rejects_by_reason=result.rejects_by_reason,
        rejected_rows=sample.rejected,
        rows=sample.rows,
        custom_fields=[c for c in list_file.table.header if c not in mapped],
        detected=list_file.describe(),
        gates=result.gates,
    )
    if last_sha256 == fetched.sha256:
        preview.notes.append(
            "the file is the same as the last import: a real run skips it unless force: true"
        )
    return preview


def record_dry_run(
    outcome: Outcome,
    options: ImportOptions,
    engine: Engine,
    fetched: FetchedFile,
    list_file: ListFile,
    result: LoadResult,
    sample: PreviewSample,
) -> None:
    """Record a dry run's preview as artifacts, and make its outcome say it was one."""
    last = last_import_sha256(engine, options.list_name)
    preview = list_preview(options, fetched, list_file, result, sample, last)
    preview.detected["encrypted"] = bool(outcome.extra.get("encrypted"))
    record_preview(preview)
    mark_dry_run(outcome, preview)
    outcome.extra["import_id"] = None  # it was rolled back
