"""``cctasks preview TASK``: run an import as a dry run and show what it would do.

The run is an ordinary run of the task's deployment with ``dry_run: true`` (a
worker runs it, like ``cctasks run``); its preview is read back from the run's
``cctasks-preview`` artifact and printed as rich tables.
"""

from __future__ import annotations

import json
from typing import Any
from uuid import UUID

import typer
from prefect.client.schemas.filters import (
    ArtifactFilter,
    ArtifactFilterFlowRunId,
    ArtifactFilterKey,
)
from prefect.client.schemas.sorting import ArtifactSort
from rich.console import Console
from rich.table import Table
from rich.text import Text

from contact_center.exceptions import InvalidParameter
from contact_center.preview import Preview
from contact_center.settings import PREVIEW_ARTIFACT_KEY
from runlog.client import prefect_client
from runlog.runs import WATCH_REQUEST_TIMEOUT, follow_run, request_run

__all__ = ["preview_command", "read_preview", "render_preview"]

_PARAMS = typer.Option([], "--param", "-p", help="Override a parameter: name=value (repeatable).")


def read_preview(run_id: UUID) -> Preview | None:
    """The preview a dry run recorded, or None if it recorded none."""
    with prefect_client(timeout=WATCH_REQUEST_TIMEOUT) as client:
        artifacts = client.read_artifacts(
            artifact_filter=ArtifactFilter(
                key=ArtifactFilterKey(any_=[PREVIEW_ARTIFACT_KEY]),
                flow_run_id=ArtifactFilterFlowRunId(any_=[run_id]),
            ),
            sort=ArtifactSort.UPDATED_DESC,
            limit=1,
        )
    if not artifacts:
        return None
    data: Any = artifacts[0].data
    rows = json.loads(data) if isinstance(data, str) else data
    return Preview.from_dict(json.loads(rows[0]["preview"]))


def _rows_table(title: str, rows: list[dict[str, str]]) -> Table:
    table = Table(title=title, title_justify="left")
    columns = list(dict.fromkeys(k for row in rows for k in row))
    for column in columns or ["(none)"]:
        table.add_column(column, overflow="fold")
    for row in rows:
        # Text, never markup: the cells are a file's data.
        table.add_row(*(Text(row.get(c, "")) for c in columns))
    return table


def render_preview(preview: Preview, console: Console) -> None:
    """Print the preview: counts, detected shape, gates, rejects and sample rows."""
    verdict = "would pass" if preview.gates_pass else "would FAIL"
    console.print(
        Text(f"Dry run of {preview.object_name} ← {preview.file}: {verdict}; nothing changed")
    )
    counts = Table(title="Counts", title_justify="left")
    counts.add_column("count")
    counts.add_column("rows", justify="right")
    for name, value in preview.counts.items():
        counts.add_row(name, str(value))
    for reason, value in preview.rejects_by_reason.items():
        counts.add_row(Text(f"  rejected: {reason}"), str(value))
    console.print(counts)
    detected = ", ".join(f"{k} {v!r}" for k, v in preview.detected.items())
    console.print(Text(f"Detected: {detected}"))
    console.print(Text("Custom fields: " + (", ".join(preview.custom_fields) or "(none)")))
    gates = Table(title="Quality gates", title_justify="left")
    gates.add_column("gate")
    gates.add_column("verdict", overflow="fold")
    for gate, why in preview.gates.items():
        gates.add_row(gate, Text("pass") if why is None else Text(f"FAIL: {why}", style="red"))
    console.print(gates)
    for note in preview.notes:
        console.print(Text(f"Note: {note}"))
    console.print(
        _rows_table(f"First {len(preview.rejected_rows)} rejected rows", preview.rejected_rows)
    )
    console.print(_rows_table(f"First {len(preview.rows)} rows as stored", preview.rows))


def preview_command(
    task: str = typer.Argument(..., help="An import task (deployment name, or flow/deployment)."),
    params: list[str] = _PARAMS,
    interval: float = typer.Option(1.0, "--interval", min=0.1, help="Seconds between polls."),
    timeout: float | None = typer.Option(None, "--timeout", help="Stop waiting after N s."),
) -> None:
    """Dry-run an import task and show what it would do (nothing is changed)."""
    from cli.commands import _fail, _views

    console = Console(highlight=False, soft_wrap=False)
    with _views():
        if any(p.partition("=")[0].strip() == "dry_run" for p in params):
            raise InvalidParameter("preview sets dry_run itself; leave it out of --param")
        requested = request_run(task, [*params, "dry_run=true"])
        typer.echo(f"dry run {requested.run_id} of {requested.task} requested; waiting for it")
        last = None
        for status in follow_run(requested.run_id, interval=interval, timeout=timeout):
            if status.reachable:
                last = status
        if last is None or not last.final:
            raise _fail(f"run {requested.run_id} has not ended after {timeout} s", code=1)
        if not last.completed:
            raise _fail(f"dry run {last.name} {last.state.lower()}: {last.error}", code=1)
        preview = read_preview(requested.run_id)
    if preview is None:
        raise _fail(f"run {requested.run_id} recorded no preview (is {task} an import?)", code=1)
    render_preview(preview, console)
    typer.echo(f"see the run at {requested.url}")
