"""Rejected rows as data: a CSV next to the outcome and a table artifact of the first ones.

The rows are staged in the run's work folder while the load goes on, and published
under ``<home>/rejects`` when the run ends:

- after a committed load: ``<list>-<time>-<run>.csv``, with a table artifact of the
  first rows; their count is the outcome's ``rejected``;
- after a failed one: ``<list>-<time>-<run>.failed.csv``, with an artifact that says
  nothing was loaded; the outcome's ``rejected`` is the rows rejected before it stopped.

A run that is killed publishes nothing: its staged rows go with its work folder.
"""

from __future__ import annotations

import re
import shutil
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
from prefect.artifacts import create_table_artifact
from prefect.context import FlowRunContext

from contact_center.outcome import Outcome
from contact_center.settings import get_settings
from contact_center.storage.models import utcnow

__all__ = ["FAILED_SUFFIX", "REJECTS_PREVIEW_ROWS", "RejectsFile"]

#: How many rejected rows the run's rejects table artifact shows.
REJECTS_PREVIEW_ROWS = 20
#: What ends the name of a rejects file of a failed run.
FAILED_SUFFIX = ".failed.csv"


@dataclass
class RejectsFile:
    """The rejected rows of one run, streamed to a CSV: the original row, ``row`` and ``reason``.

    Attributes:
        path: where the CSV is published when the load commits.
        staging: where the rows are written until then (created with the first reject).
        rows: rejected rows written.
        preview: the first rejected rows, for the run's table artifact.
        reasons: rejected rows by reason.
        committed: whether the load committed (set by :meth:`commit`).
    """

    path: Path
    staging: Path
    rows: int = 0
    preview: list[dict[str, Any]] = field(default_factory=list)
    reasons: Counter[str] = field(default_factory=Counter)
    committed: bool = False
    _columns: list[str] | None = None

    @classmethod
    def for_run(cls, list_name: str, run_id: str | None, workdir: Path) -> RejectsFile:
        """A rejects file under ``<home>/rejects`` named by the list, the time and the run.

        Args:
            list_name: the calling or exclusion list.
            run_id: the flow run (a random suffix outside one).
            workdir: the run's work folder, where the rows are staged.
        """
        safe = re.sub(r"[^A-Za-z0-9_.-]+", "-", list_name).strip("-") or "list"
        stamp = utcnow().strftime("%Y%m%dT%H%M%SZ")
        suffix = (run_id or uuid.uuid4().hex)[:8]
        path = get_settings().home / "rejects" / f"{safe}-{stamp}-{suffix}.csv"
        return cls(path, workdir / f"rejects-{suffix}.csv")

    @property
    def failed_path(self) -> Path:
        """Where the rows go when the load did not commit."""
        return self.path.with_name(self.path.name.removesuffix(".csv") + FAILED_SUFFIX)

    def add(self, rejects: pd.DataFrame) -> None:
        """Append one chunk's rejected rows."""
        if rejects.empty:
            return
        if self._columns is None:
            # The original columns first, then where and why.
            self._columns = [c for c in rejects.columns if c not in ("row", "reason")]
            self._columns += ["row", "reason"]
            self.staging.parent.mkdir(parents=True, exist_ok=True)
        frame = rejects.reindex(columns=self._columns)
        frame.to_csv(self.staging, mode="a", header=self.rows == 0, index=False, encoding="utf-8")
        self.rows += len(frame)
        self.reasons.update(str(r) for r in frame["reason"])
        room = REJECTS_PREVIEW_ROWS - len(self.preview)
        if room > 0:
            head = frame.head(room).astype("string").fillna("")
            self.preview.extend({str(k): v for k, v in r.items()} for r in head.to_dict("records"))

    def discard(self) -> None:
        """Forget every row added so far and delete the file (the rows are read again)."""
        self.staging.unlink(missing_ok=True)
        self.rows = 0
        self.preview = []
        self.reasons = Counter()
        self._columns = None

    def commit(self) -> None:
        """The load committed: :meth:`report` publishes the rows as its rejects."""
        self.committed = True

    def report(self, outcome: Outcome) -> None:
        """Publish the file, name it in the outcome and show the first rejects as a table artifact.

        Without a commit the file is marked as a failed run's (``.failed.csv``), and the
        outcome's ``rejected`` and ``rejects_by_reason`` are those of the rows rejected
        before the run stopped, so that they agree with the file.
        """
        if not self.rows:
            return
        target = self.path if self.committed else self.failed_path
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(self.staging, target)
        outcome.files.append(str(target))
        if self.committed:
            description = (
                f"First {len(self.preview)} of {self.rows} rejected rows of "
                f"{outcome.object_name} · {outcome.step}; all in {target.name}"
            )
        else:
            outcome.rejected = self.rows
            outcome.rejects_by_reason = dict(self.reasons)
            description = (
                f"FAILED run, nothing loaded: first {len(self.preview)} of the {self.rows} rows "
                f"of {outcome.object_name} · {outcome.step} rejected before it stopped; "
                f"all in {target.name}"
            )
        if FlowRunContext.get() is None:
            return
        create_table_artifact(table=self.preview, description=description)
