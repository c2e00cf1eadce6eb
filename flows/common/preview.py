"""A dry run's preview, recorded as artifacts of its run.

A table artifact under the key ``cctasks-preview`` holds the preview as JSON (what
``cctasks preview`` reads back); a markdown artifact is its readable form in the
run's Artifacts tab.
"""

from __future__ import annotations

import json
from typing import Any

from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.context import FlowRunContext

from contact_center.outcome import Outcome
from contact_center.preview import PREVIEW_ROWS, Preview, PreviewSample, preview_markdown
from contact_center.settings import PREVIEW_ARTIFACT_KEY
from contact_center.storage.exclusion_load import LoadCounts
from contact_center.storage.exclusions import ParsedKeys

__all__ = ["exclusion_preview", "mark_dry_run", "record_preview"]


def record_preview(preview: Preview) -> None:
    """Store ``preview`` as artifacts of the current flow run (no-op outside one)."""
    if FlowRunContext.get() is None:
        return
    description = f"Dry run of {preview.object_name} ← {preview.file}"
    create_table_artifact(
        table=[{"preview": json.dumps(preview.to_dict(), default=str)}],
        key=PREVIEW_ARTIFACT_KEY,
        description=description,
    )
    create_markdown_artifact(markdown=preview_markdown(preview), description=description)


def mark_dry_run(outcome: Outcome, preview: Preview) -> None:
    """Make the outcome say it was a dry run: its step, message and extra."""
    outcome.step = "dry run"
    outcome.extra["dry_run"] = True
    outcome.extra["gates"] = "pass" if preview.gates_pass else "fail"
    outcome.message = f"dry run, nothing changed ({outcome.extra['gates']}): {outcome.message}"


def exclusion_preview(
    exclusion_list: str,
    file: str,
    parsed: ParsedKeys,
    counts: LoadCounts,
    detected: dict[str, Any],
    gates: dict[str, str | None],
) -> Preview:
    """What a dry run of the exclusion import would have done."""
    sample = PreviewSample()
    sample.add(parsed.keys.head(PREVIEW_ROWS), parsed.rejects)
    return Preview(
        object_name=exclusion_list,
        file=file,
        counts={
            "rows_read": parsed.rows_read,
            "added": counts.added,
            "renewed": counts.renewed,
            "removed": counts.removed,
            "rejected": len(parsed.rejects),
            "duplicates": parsed.duplicates,
        },
        rejects_by_reason=parsed.rejects_by_reason,
        rejected_rows=sample.rejected,
        rows=sample.rows,
        detected=detected,
        gates=gates,
    )
