"""The outcome of a task run: what it did to which object.

Every flow fills one :class:`Outcome` and records it on the Prefect server as an
artifact of its run (see ``flows/common/outcome.py``), also when it fails, with
what it knew by then. The task log reads ``bytes`` from it for the Size column.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

__all__ = ["Outcome"]

#: The counts a summary line names first, in this order, when they are not zero; the
#: rejected rows (by reason) and the excluded ones follow.
_SUMMARY_COUNTS = ("loaded", "updated", "unchanged", "removed")


@dataclass
class Outcome:
    """What one task run did.

    Attributes:
        object_name: the list, exclusion list, campaign or report.
        step: the step run (import, reset, start, stop, export, generate).
        status: running, then completed, skipped or failed.
        message: a one-line summary, or the error of a failed run.
        bytes: bytes transferred: the file fetched, or the files delivered.
        rows_read: data rows read from the file (header excluded).
        loaded: records or keys added.
        updated: existing records or keys changed (or renewed).
        unchanged: existing records that the file repeated unchanged.
        removed: records or keys removed (``replace``, reset).
        rejected: rows rejected; see ``rejects_by_reason``.
        rejects_by_reason: reason -> count.
        excluded: rows not loaded because their key is excluded.
        files: the files read or written (names or locations, never secrets).
        sha256: the checksum of the file read, if any.
        extra: counts and facts specific to one task type.
        attempts: tries of the run: of its retrying step (the fetch, the delivery,
            the webhook) or of the whole flow, whichever is higher.
        first_error: why the first of several tries failed, when a try was retried.
    """

    object_name: str
    step: str
    status: str = "running"
    message: str | None = None
    bytes: int = 0
    rows_read: int = 0
    loaded: int = 0
    updated: int = 0
    unchanged: int = 0
    removed: int = 0
    rejected: int = 0
    rejects_by_reason: dict[str, int] = field(default_factory=dict)
    excluded: int = 0
    files: list[str] = field(default_factory=list)
    sha256: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    attempts: int = 1
    first_error: str | None = None

    def summary(self) -> str:
        """One line for people, the first thing the run's page shows.

        ``Spring Leads: 263 loaded, 37 rejected (8 missing key, 23 no valid phone, 6
        duplicate key)``; a failed run leads with its error, as the task log's Error
        column shows it (``Spring Leads · import failed: InvalidFile: ...``), and a run
        that counted no rows (a trigger, an export, a report, a skip) with its message.
        """
        if self.status == "failed":
            error = " ".join((self.message or "no error was recorded").split())
            return f"{self.object_name} · {self.step} failed: {error}"
        counts = [f"{getattr(self, n):,} {n}" for n in _SUMMARY_COUNTS if getattr(self, n)]
        if self.rejected:
            reasons = ", ".join(
                f"{count:,} {reason.replace('_', ' ')}"
                for reason, count in self.rejects_by_reason.items()
                if count
            )
            counts.append(f"{self.rejected:,} rejected" + (f" ({reasons})" if reasons else ""))
        if self.excluded:
            counts.append(f"{self.excluded:,} excluded")
        if counts and self.status != "skipped":
            return f"{self.object_name}: {', '.join(counts)}"
        message = f": {' '.join(self.message.split())}" if self.message else ""
        return f"{self.object_name} · {self.step} {self.status}{message}"

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dictionary of every field."""
        return asdict(self)

    def to_row(self) -> dict[str, Any]:
        """A flat row for a table artifact: nested values become JSON text."""
        return {
            key: json.dumps(value, sort_keys=True, default=str)
            if isinstance(value, dict | list)
            else value
            for key, value in self.to_dict().items()
        }

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> Outcome:
        """Rebuild an outcome from :meth:`to_row` (as read back from an artifact)."""
        values: dict[str, Any] = {}
        for name in cls.__dataclass_fields__:
            if name not in row:
                continue
            value = row[name]
            if name in ("rejects_by_reason", "files", "extra") and isinstance(value, str):
                value = json.loads(value)
            values[name] = value
        return cls(**values)
