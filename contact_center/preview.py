"""What an import would do: the preview of a dry run.

A dry run (``dry_run: true``) runs the whole import and rolls it back; its
:class:`Preview` holds the counts, the rejects by reason with the first rejected
rows, the first rows as they would be stored, the custom fields, the file's
detected shape and each quality gate's verdict. :class:`PreviewSample` collects
the rows while the chunks go by, keeping only the first few, so a dry run costs
what the import costs. No Prefect and no I/O here.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

import pandas as pd
import pyarrow as pa

__all__ = ["PREVIEW_ROWS", "Preview", "PreviewSample", "preview_markdown"]

#: Rows kept of each kind: the first rows as stored, and the first rejected rows.
PREVIEW_ROWS = 20
# A cell of the sample is cut to this many characters (the preview is a glance).
_CELL_CHARS = 80


def _cell(value: Any) -> str:
    text = "" if value is None or (isinstance(value, float) and value != value) else str(value)
    return text if len(text) <= _CELL_CHARS else text[: _CELL_CHARS - 1] + "…"


class PreviewSample:
    """The first :data:`PREVIEW_ROWS` valid and rejected rows of a stream of chunks."""

    def __init__(self, limit: int = PREVIEW_ROWS) -> None:
        self.limit = limit
        self.rows: list[dict[str, str]] = []
        self.rejected: list[dict[str, str]] = []

    def add(self, valid: pa.Table | pd.DataFrame, rejects: pd.DataFrame) -> None:
        """Keep what is still missing of the first rows of both kinds (cheap once full)."""
        if len(self.rows) < self.limit and len(valid):
            head = (
                valid.slice(0, self.limit - len(self.rows))
                if isinstance(valid, pa.Table)
                else pa.Table.from_pandas(valid.head(self.limit - len(self.rows)))
            )
            for row in head.to_pylist():
                self.rows.append({k: _cell(v) for k, v in row.items() if v is not None})
        if len(self.rejected) < self.limit and len(rejects):
            for row in rejects.head(self.limit - len(self.rejected)).to_dict("records"):
                self.rejected.append({str(k): _cell(v) for k, v in row.items()})


@dataclass
class Preview:
    """What a dry run found (JSON-ready through :meth:`to_dict`).

    Attributes:
        object_name: the calling list or exclusion list.
        file: the file's name.
        counts: rows_read, loaded, updated, unchanged, removed, rejected, excluded...
        rejects_by_reason: reason -> count.
        rejected_rows: the first rejected rows, as in the file, with row and reason.
        rows: the first rows as they would be stored.
        custom_fields: the file's columns kept as custom fields.
        detected: format, encoding, delimiter (and whether it was encrypted).
        gates: gate -> None when it passes, else why it fails.
        notes: anything else the run would meet (e.g. the same file as the last import).
    """

    object_name: str
    file: str
    counts: dict[str, int] = field(default_factory=dict)
    rejects_by_reason: dict[str, int] = field(default_factory=dict)
    rejected_rows: list[dict[str, str]] = field(default_factory=list)
    rows: list[dict[str, str]] = field(default_factory=list)
    custom_fields: list[str] = field(default_factory=list)
    detected: dict[str, Any] = field(default_factory=dict)
    gates: dict[str, str | None] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    @property
    def gates_pass(self) -> bool:
        """Whether every gate would pass (the import would commit)."""
        return all(verdict is None for verdict in self.gates.values())

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dictionary of every field."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Preview:
        """Rebuild a preview from :meth:`to_dict` (unknown keys are ignored)."""
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        return cls(**known)


def _escape(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _table(rows: list[dict[str, str]]) -> list[str]:
    if not rows:
        return ["(none)"]
    columns = list(dict.fromkeys(k for row in rows for k in row))
    lines = ["| " + " | ".join(map(_escape, columns)) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(_escape(r.get(c, "")) for c in columns) + " |" for r in rows]
    return lines


def preview_markdown(preview: Preview) -> str:
    """The preview as markdown (the run's Artifacts tab)."""
    verdict = "would pass" if preview.gates_pass else "would FAIL"
    lines = [f"### Dry run: {preview.object_name} ← {preview.file} ({verdict}; nothing changed)"]
    lines += ["", "| count | value |", "|---|---|"]
    lines += [f"| {k} | {v} |" for k, v in preview.counts.items()]
    lines += ["", "**Detected:** " + ", ".join(f"{k} {v!r}" for k, v in preview.detected.items())]
    lines += ["", "**Custom fields:** " + (", ".join(preview.custom_fields) or "(none)")]
    lines += ["", "**Gates:**", ""]
    lines += [f"- {g}: {'pass' if v is None else 'FAIL: ' + v}" for g, v in preview.gates.items()]
    lines += [f"- note: {n}" for n in preview.notes]
    lines += [
        "",
        "**Rejects by reason:** "
        + (", ".join(f"{k} {v}" for k, v in preview.rejects_by_reason.items()) or "(none)"),
    ]
    lines += ["", f"**First {len(preview.rejected_rows)} rejected rows:**", ""]
    lines += _table(preview.rejected_rows)
    lines += ["", f"**First {len(preview.rows)} rows as stored:**", ""]
    lines += _table(preview.rows)
    return "\n".join(lines)
