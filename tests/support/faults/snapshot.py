"""What the database holds of a list or of an export, exactly, to compare around a fault.

- :func:`list_state`: the list's record count, a digest of its records' content
  (comparable with :func:`support.faults.lists.content_digest` of the file's expected
  records), a digest of every column of every row (ids, import ids and times
  included: "exactly as before" means that), and its import history.
- :func:`export_state`: the export rows and watermarks of a campaign.
- :func:`folder_files`: the files in a delivery folder, temporary ones included.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from contact_center.storage.models import (
    CallingList,
    ExportWatermark,
    ListImport,
    ListRecord,
    ResultsExport,
)
from support.faults.lists import content_digest

__all__ = [
    "ListState",
    "attempt_ids_in",
    "export_state",
    "folder_files",
    "list_state",
]

_IMPORT_COLUMNS = (
    ListImport.id,
    ListImport.status,
    ListImport.file_name,
    ListImport.sha256,
    ListImport.bytes,
    ListImport.rows_read,
    ListImport.loaded,
    ListImport.updated,
    ListImport.unchanged,
    ListImport.removed,
    ListImport.rejected,
)


@dataclass(frozen=True)
class ListState:
    """A calling list as the database holds it.

    Attributes:
        exists: whether the list exists.
        records: how many records it holds.
        content: digest of (key, account, first name, phone1, custom fields).
        rows: digest of every column of every record, in id order.
        imports: its ``list_imports`` rows (id, status, file, checksum, bytes, counts).
    """

    exists: bool
    records: int
    content: str
    rows: str
    imports: tuple[tuple[Any, ...], ...]


def list_state(engine: sa.Engine, list_name: str) -> ListState:
    """Read the list ``list_name`` in one transaction."""
    with engine.connect() as conn:
        list_id = conn.scalar(sa.select(CallingList.id).where(CallingList.name == list_name))
        if list_id is None:
            return ListState(False, 0, content_digest([]), _digest([]), ())
        records = conn.execute(
            sa.select(ListRecord).where(ListRecord.list_id == list_id).order_by(ListRecord.id)
        ).all()
        imports = conn.execute(
            sa.select(*_IMPORT_COLUMNS).where(ListImport.list_id == list_id).order_by(ListImport.id)
        ).all()
    content = content_digest(
        (r.record_key, (r.account, r.first_name, r.phone1, r.custom_fields)) for r in records
    )
    return ListState(
        exists=True,
        records=len(records),
        content=content,
        rows=_digest([tuple(r) for r in records]),
        imports=tuple(tuple(i) for i in imports),
    )


def _digest(rows: list[tuple[Any, ...]]) -> str:
    digest = hashlib.sha256()
    for row in rows:
        digest.update(json.dumps(row, default=str, sort_keys=True).encode())
        digest.update(b"\n")
    return digest.hexdigest()


def export_state(engine: sa.Engine) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    """Every ``results_exports`` row (id, status, file, rows, bytes, window) and every
    watermark (campaign, destination, watermark)."""
    with engine.connect() as conn:
        exports = conn.execute(
            sa.select(
                ResultsExport.id,
                ResultsExport.status,
                ResultsExport.file_name,
                ResultsExport.rows,
                ResultsExport.bytes,
                ResultsExport.window_start,
                ResultsExport.window_end,
            ).order_by(ResultsExport.id)
        ).all()
        marks = conn.execute(
            sa.select(
                ExportWatermark.campaign_id,
                ExportWatermark.destination,
                ExportWatermark.watermark,
            )
        ).all()
    return [tuple(e) for e in exports], [tuple(m) for m in marks]


def folder_files(folder: Path) -> dict[str, int]:
    """Name -> size of every file in ``folder`` (hidden temporary files included)."""
    if not folder.exists():
        return {}
    return {p.name: p.stat().st_size for p in sorted(folder.iterdir())}


def attempt_ids_in(folder: Path) -> list[int]:
    """Every ``attempt_id`` in the delivered (not hidden) CSV files, duplicates kept."""
    ids: list[int] = []
    for path in sorted(folder.iterdir()):
        if path.name.startswith("."):
            continue
        table = list(csv.reader(io.StringIO(path.read_text(encoding="utf-8"), newline="")))
        column = table[0].index("attempt_id")
        ids += [int(row[column]) for row in table[1:]]
    return ids
