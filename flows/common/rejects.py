"""Rejected rows as data: a CSV next to the outcome and a table artifact of the first ones."""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
from prefect.artifacts import create_table_artifact
from prefect.context import FlowRunContext

from contact_center.models import utcnow
from contact_center.outcome import Outcome
from contact_center.settings import get_settings

__all__ = ["REJECTS_PREVIEW_ROWS", "RejectsFile"]

#: How many rejected rows the run's rejects table artifact shows.
REJECTS_PREVIEW_ROWS = 20


@dataclass
class RejectsFile:
    """The rejected rows of one run, streamed to a CSV: the original row, ``row`` and ``reason``.

    Attributes:
        path: where the CSV goes (created with the first reject).
        rows: rejected rows written.
        preview: the first rejected rows, for the run's table artifact.
    """

    path: Path
    rows: int = 0
    preview: list[dict[str, Any]] = field(default_factory=list)
    _columns: list[str] | None = None

    @classmethod
    def for_run(cls, list_name: str, run_id: str | None) -> RejectsFile:
        """A rejects file under ``<home>/rejects`` named by the list, the time and the run."""
        safe = re.sub(r"[^A-Za-z0-9_.-]+", "-", list_name).strip("-") or "list"
        stamp = utcnow().strftime("%Y%m%dT%H%M%SZ")
        suffix = (run_id or uuid.uuid4().hex)[:8]
        return cls(get_settings().home / "rejects" / f"{safe}-{stamp}-{suffix}.csv")

    def add(self, rejects: pd.DataFrame) -> None:
        """Append one chunk's rejected rows."""
        if rejects.empty:
            return
        if self._columns is None:
            # The original columns first, then where and why.
            self._columns = [c for c in rejects.columns if c not in ("row", "reason")]
            self._columns += ["row", "reason"]
            self.path.parent.mkdir(parents=True, exist_ok=True)
        frame = rejects.reindex(columns=self._columns)
        frame.to_csv(self.path, mode="a", header=self.rows == 0, index=False, encoding="utf-8")
        self.rows += len(frame)
        room = REJECTS_PREVIEW_ROWS - len(self.preview)
        if room > 0:
            head = frame.head(room).astype("string").fillna("")
            self.preview.extend({str(k): v for k, v in r.items()} for r in head.to_dict("records"))

    def discard(self) -> None:
        """Forget every row added so far and delete the file (the rows are read again)."""
        self.path.unlink(missing_ok=True)
        self.rows = 0
        self.preview = []
        self._columns = None

    def report(self, outcome: Outcome) -> None:
        """Name the file in the outcome and show the first rejects as a table artifact."""
        if not self.rows:
            return
        outcome.files.append(str(self.path))
        if FlowRunContext.get() is None:
            return
        create_table_artifact(
            table=self.preview,
            description=(
                f"First {len(self.preview)} of {self.rows} rejected rows of "
                f"{outcome.object_name} · {outcome.step}; all in {self.path.name}"
            ),
        )
