"""Chunks made by hand in the parser's shape, loaded with ``load_list_records``, and the
records read back: for the load tests of ``tests/storage``. (This module holds no tests.)
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pandas as pd
import sqlalchemy as sa

from contact_center.parsing.record_fields import RECORD_FIELDS
from contact_center.storage.list_load import load_list_records
from contact_center.storage.list_options import ImportOptions
from contact_center.storage.list_results import LoadResult, SourceFile
from contact_center.storage.models import CallingList, ListRecord

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


@dataclass
class Parsed:
    """A parsed chunk in the shape of ``contact_center.parsing.lists.ParsedChunk``."""

    valid: pd.DataFrame
    rejects: pd.DataFrame
    invalid_phones: int = 0


def record(key: str, row: int, phone: str = "+12125550100", **fields: Any) -> dict[str, Any]:
    custom = fields.pop("custom", None)
    values: dict[str, Any] = dict.fromkeys(RECORD_FIELDS)
    values.update(account=key, phone1=phone, **fields)
    return {
        "row": row,
        "record_key": key,
        **values,
        "custom_fields": json.dumps(custom) if custom is not None else None,
    }


def chunk(records: list[dict[str, Any]], rejects: list[tuple[int, str]] = ()) -> Parsed:
    columns = ["row", "record_key", *RECORD_FIELDS, "custom_fields"]
    valid = pd.DataFrame(records, columns=columns)
    for column in columns[1:]:
        valid[column] = valid[column].astype("string")
    reject_frame = pd.DataFrame(
        {
            "Account": ["?"] * len(rejects),
            "row": [r for r, _ in rejects],
            "reason": [x for _, x in rejects],
        }
    )
    return Parsed(valid, reject_frame)


def keys(n: int, start: int = 0, prefix: str = "A") -> list[dict[str, Any]]:
    return [record(f"{prefix}{i:05d}", i + 2, first_name=f"n{i}") for i in range(start, start + n)]


def options(list_name: str = "Spring Leads", **params: Any) -> ImportOptions:
    return ImportOptions.from_parameters(list_name=list_name, source="drop/leads.csv", **params)


def source(name: str = "leads.csv", sha: str = "a" * 64) -> SourceFile:
    return SourceFile(name=name, location=f"drop/{name}", sha256=sha, size=1234)


def load(engine: sa.Engine, chunks: list[Parsed] | Iterator[Parsed], **params: Any) -> LoadResult:
    src = params.pop("src", source())
    now = params.pop("now", NOW)
    return load_list_records(engine, chunks, options(**params), src, now=now, flow_run_id="run-1")


def records(engine: sa.Engine, list_name: str = "Spring Leads") -> dict[str, dict[str, Any]]:
    columns = (*RECORD_FIELDS, "custom_fields", "expires_at", "updated_at", "import_id", "id")
    with engine.connect() as conn:
        rows = conn.execute(
            sa.select(ListRecord.record_key, *(getattr(ListRecord, c) for c in columns))
            .join(CallingList, CallingList.id == ListRecord.list_id)
            .where(CallingList.name == list_name)
        ).all()
    return {r[0]: dict(zip(columns, r[1:], strict=True)) for r in rows}


def counts(result: LoadResult) -> tuple[int, ...]:
    return (
        result.rows_read,
        result.loaded,
        result.updated,
        result.unchanged,
        result.removed,
        result.rejected,
        result.excluded,
    )
