"""The ``export-campaign-results`` flow: campaign results as a file (select -> render -> deliver).

A run:

1. ``select_results``: finds the campaign and the window (``since: last`` from the
   watermark of the (campaign, destination) pair up to the run's scheduled time, or
   an explicit ``START/END`` backfill), reserves the export (its id, in the file
   name), and surveys it (rows, custom-field columns).
2. ``render_export``: streams the rows into a local CSV (optionally gzip), never
   holding them all in memory.
3. ``deliver_export`` (the network step, retried with backoff): uploads under a
   temporary name, checks the size and renames into place, never over another
   export's file (:func:`flows.common.transfer.deliver`).
4. ``record_export``: marks the export delivered and, for ``since: last``, moves the
   watermark to the window's end, in one transaction, only after the rename.

A run that fails anywhere before step 4 leaves the watermark where it was; the next
run (a retry or the next schedule) resumes the same window under the same file name,
so every result lands in exactly one delivered file. See ``docs/results-export.md``.
"""

from __future__ import annotations

import shutil
from datetime import UTC, datetime
from functools import partial
from pathlib import Path

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.runtime import flow_run as runtime_flow_run

from contact_center.exceptions import DeliveryFailed
from contact_center.outcome import Outcome
from contact_center.parsing.locations import render_path
from contact_center.parsing.parameters import ExportFormat, StrictBool
from contact_center.storage.db import mapped_database_errors, safe_url
from contact_center.storage.export_naming import DEFAULT_FILE_NAME, delivered_by_another
from contact_center.storage.results import ExportPlan, complete_export, plan_export
from contact_center.storage.results_query import (
    count_rows,
    custom_keys,
    export_query,
    header,
    write_export,
)
from flows.common import (
    RunProgress,
    check_before_io,
    contact_center_engine,
    deliver,
    final_state,
    recording_outcome,
)
from flows.common.retries import DELIVERY_TASK
from flows.common.workdir import make_run_folder, sweep_leftover_work
from flows.results_export_request import (
    ExportRequest,
    RenderedExport,
    export_file_name,
    export_output,
    export_run_time,
    validate_request,
)
from runlog.publish import publishes_task_log

__all__ = [
    "deliver_export",
    "export_campaign_results",
    "record_export",
    "render_export",
    "select_results",
]


@task(cache_policy=NO_CACHE)
def select_results(
    request: ExportRequest, run_time: datetime, flow_run_id: str | None
) -> ExportPlan:
    """Find the campaign, choose (and reserve) the window, and survey it.

    Raises:
        ObjectNotFound: no such campaign.
        DatabaseError: the database refused a query.
    """
    engine = contact_center_engine()
    with mapped_database_errors(f"planning the export of {request.campaign!r}"):
        campaign, window = plan_export(
            engine,
            campaign=request.campaign,
            destination=request.destination,
            since=request.since,
            run_time=run_time,
            first_since=request.first_since,
            format=request.format,
            file_name=partial(export_file_name, request),
            flow_run_id=flow_run_id,
        )
        name = export_file_name(request, window.start, window.end, window.export_id or 0)
        keys: list[str] = []
        rows = 0
        replace = False
        if not window.up_to_date:
            with engine.connect() as conn:
                start, end = window.start, window.end
                keys = custom_keys(conn, campaign_id=campaign.id, start=start, end=end)
                rows = count_rows(
                    conn, format=request.format, campaign_id=campaign.id, start=start, end=end
                )
                # Only this export's own earlier delivery may be replaced (it resumes).
                replace = window.resumed and not delivered_by_another(
                    conn,
                    destination=request.destination,
                    file_name=name,
                    window_end=end,
                    export_id=window.export_id,
                )
    logger = get_run_logger()
    logger.info(
        "%s: window %s to %s (%s%s), %d rows expected, %d custom columns",
        campaign.name,
        window.start.isoformat(),
        window.end.isoformat(),
        "since last" if window.advances_watermark else "backfill",
        ", resuming an interrupted export" if window.resumed else "",
        rows,
        len(keys),
    )
    return ExportPlan(
        campaign=campaign,
        destination=request.destination,
        format=request.format,
        window=window,
        custom_keys=tuple(keys),
        rows=rows,
        file_name=name,
        replace=replace,
    )


@task(cache_policy=NO_CACHE)
def render_export(
    plan: ExportPlan, request: ExportRequest, workdir: Path, progress: RunProgress
) -> RenderedExport:
    """Stream the window's rows into a local CSV file (gzip when asked).

    Returns:
        The file (``None`` for a skipped empty window), its rows and size.

    Raises:
        DatabaseError: the database refused the query.
        DeliveryFailed: the local file cannot be written.
    """
    path = workdir / plan.file_name
    window = plan.window
    engine = contact_center_engine()
    query = export_query(
        engine.dialect.name,
        format=plan.format,
        campaign_id=plan.campaign.id,
        start=window.start,
        end=window.end,
        custom_keys=plan.custom_keys,
        neutralise_formulas=request.neutralise_formulas,
    )
    columns = header(plan.format, plan.custom_keys, neutralise_formulas=request.neutralise_formulas)
    reading = f"reading the results of {plan.campaign.name!r} from {safe_url(engine.url)}"
    try:
        with (
            mapped_database_errors(reading),
            engine.connect() as conn,
            export_output(path, request.gzip, plan.file_name.removesuffix(".gz")) as target,
        ):
            rows = write_export(
                conn,
                query,
                columns,
                target,
                lambda done: progress.update("render", done, plan.rows),
            )
    except OSError as exc:
        raise DeliveryFailed(f"cannot write the export file {str(path)!r}: {exc}") from exc
    progress.update("render", rows, rows, force=True)
    if rows == 0 and request.skip_empty:
        path.unlink(missing_ok=True)
        return RenderedExport(None, 0, 0)
    return RenderedExport(path, rows, path.stat().st_size)


@task(**DELIVERY_TASK)
def deliver_export(
    rendered: RenderedExport, destination: str, name: str, progress: RunProgress, replace: bool
) -> tuple[str, int]:
    """Upload the file to a temporary name, check its size, rename it into place
    (replacing a file of that name only if ``replace``: see ``ExportPlan.replace``).

    Returns:
        The final location (as text) and the bytes delivered.

    Raises:
        DeliveryFailed: the destination cannot be reached or written, or a file of
            that name is already there (not retried).
        ObjectNotFound: the destination's SFTP block does not exist.
    """
    assert rendered.path is not None
    with progress.attempt("deliver"):
        final, size = deliver(
            rendered.path,
            destination,
            name=name,
            progress=lambda done, total: progress.update("deliver", done, total),
            replace=replace,
        )
    get_run_logger().info("delivered %s (%d bytes, %d rows)", final.text, size, rendered.rows)
    return final.text, size


@task(cache_policy=NO_CACHE)
def record_export(
    plan: ExportPlan, file_name: str | None, rows: int, size: int, flow_run_id: str | None
) -> int:
    """Mark the export delivered and (``since: last``) move the watermark, together.

    Returns:
        The ``results_exports`` row's id.
    """
    with mapped_database_errors(f"recording the export of {plan.campaign.name!r}"):
        return complete_export(
            contact_center_engine(),
            campaign_id=plan.campaign.id,
            destination=plan.destination,
            window=plan.window,
            format=plan.format,
            file_name=file_name,
            rows=rows,
            bytes=size,
            flow_run_id=flow_run_id,
        )


@publishes_task_log
@flow(name="export-campaign-results", flow_run_name="{campaign} · export")
def export_campaign_results(
    campaign: str,
    destination: str,
    format: ExportFormat = "detailed",
    since: str = "last",
    first_since: str | None = None,
    file_name: str = DEFAULT_FILE_NAME,
    gzip: StrictBool = False,
    skip_empty: StrictBool = False,
    neutralise_formulas: StrictBool = True,
) -> Outcome:
    """Export a campaign's results for a window to a local folder or an SFTP server.

    Args:
        campaign: the campaign's name.
        destination: the folder to deliver to: a local path or
            ``sftp://<block-name>/<folder>``; may hold a date template.
        format: ``detailed`` (a row per result) or ``simple`` (a row per record).
        since: ``last`` (from the stored watermark up to the run's scheduled time) or
            an explicit window ``START/END`` in ISO 8601 (UTC unless an offset is
            given) for a backfill, which does not move the watermark.
        first_since: ISO start of the first ``since: last`` export (default: all).
        file_name: the file-name template; ``{campaign}``, ``{start:%...}``,
            ``{end:%...}`` (UTC), ``{format}`` and ``{export_id}``; a file that
            another export delivered is never replaced.
        gzip: gzip the file and append ``.gz`` to its name.
        skip_empty: write no file for an empty window (else a header-only file);
            the watermark moves either way.
        neutralise_formulas: prefix cells starting with ``= + - @``, tab or CR with
            ``'`` so spreadsheets show them as text (phones included).

    Returns:
        The run's outcome (also recorded as an artifact).
    """
    with recording_outcome(Outcome(object_name=campaign, step="export")) as outcome:
        run_time = export_run_time()
        request = validate_request(
            campaign=campaign,
            destination=destination,
            format=format,
            since=since,
            first_since=first_since,
            file_name=file_name,
            gzip=gzip,
            skip_empty=skip_empty,
            neutralise_formulas=neutralise_formulas,
            now=datetime.now(UTC),
        )
        check_before_io(destination=request.destination)
        sweep_leftover_work()
        flow_run_id = runtime_flow_run.id
        progress = RunProgress(
            {"select": 1, "render": 6, "deliver": 3},
            description=f"{campaign} · export",
            outcome=outcome,
            units={"render": "rows", "deliver": "bytes"},
        )
        plan = select_results(request, run_time, flow_run_id)
        window = plan.window
        outcome.extra = {
            "format": plan.format,
            "since": "last" if window.advances_watermark else "window",
            "window_start": window.start.isoformat(),
            "window_end": window.end.isoformat(),
            "resumed": window.resumed,
        }
        progress.update("select", 1, 1, force=True)
        if window.up_to_date:
            outcome.status = "skipped"
            outcome.message = f"nothing to export: already exported up to {window.end.isoformat()}"
            progress.finish()
            return final_state(outcome)  # type: ignore[return-value]
        workdir = make_run_folder()
        try:
            rendered = render_export(plan, request, workdir, progress)
            outcome.rows_read = rendered.rows
            delivered: str | None = None
            size = 0
            if rendered.path is not None:
                # The window's end, not the run's time: a resumed window goes to the
                # same folder as the interrupted run's file, even across a month end.
                target = render_path(destination.strip(), window.end)
                delivered, size = deliver_export(
                    rendered, target, plan.file_name, progress, plan.replace
                )
                outcome.files = [delivered]
                outcome.bytes = size
        finally:
            shutil.rmtree(workdir, ignore_errors=True)
        record_export(plan, plan.file_name if delivered else None, rendered.rows, size, flow_run_id)
        if window.advances_watermark:
            outcome.extra["watermark"] = window.end.isoformat()
        outcome.message = (
            f"exported {rendered.rows} rows to {delivered}"
            if delivered
            else "empty window: no file written (skip_empty)"
        )
        progress.finish()
    return final_state(outcome)  # type: ignore[return-value]
