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

import gzip as gzip_lib
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.client.schemas.objects import State, TaskRun
from prefect.runtime import flow_run as runtime_flow_run

from contact_center.exceptions import DeliveryFailed, HostKeyError, InvalidParameter
from contact_center.outcome import Outcome
from contact_center.parsing.locations import has_glob, parse_location, render_path
from contact_center.parsing.names import check_name
from contact_center.parsing.parameters import ExportFormat, StrictBool
from contact_center.settings import NETWORK_RETRIES, NETWORK_RETRY_DELAYS
from contact_center.storage.db import mapped_database_errors, safe_url
from contact_center.storage.export_naming import delivered_by_another
from contact_center.storage.results import (
    DEFAULT_FILE_NAME,
    ExportPlan,
    Since,
    complete_export,
    count_rows,
    custom_keys,
    export_query,
    header,
    parse_since,
    parse_time,
    plan_export,
    render_file_name,
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
from flows.common.workdir import make_run_folder, sweep_leftover_work
from runlog.publish import publishes_task_log

__all__ = [
    "EXPORT_GZIP_LEVEL",
    "ExportRequest",
    "RenderedExport",
    "deliver_export",
    "export_campaign_results",
    "record_export",
    "render_export",
    "select_results",
    "validate_request",
]

#: zlib level of ``gzip: true`` exports: 6 is gzip's own default size/speed balance.
EXPORT_GZIP_LEVEL = 6


@dataclass(frozen=True)
class ExportRequest:
    """The flow's parameters, validated.

    Attributes:
        campaign: the campaign's name.
        destination: the destination folder as written (a location string).
        format: ``simple`` or ``detailed``.
        since: the parsed ``since``.
        first_since: the start of the very first ``since: last`` export, if given.
        file_name: the file-name template.
        gzip: compress the file (``.gz`` is appended to its name).
        skip_empty: an empty window writes no file (else a header-only file).
        neutralise_formulas: prefix cells that a spreadsheet would run with ``'``.
    """

    campaign: str
    destination: str
    format: str
    since: Since
    first_since: datetime | None
    file_name: str
    gzip: bool
    skip_empty: bool
    neutralise_formulas: bool


@dataclass(frozen=True)
class RenderedExport:
    """The local file of an export.

    Attributes:
        path: the file, or ``None`` when an empty window was skipped.
        rows: data rows written (the header excluded).
        size: the file's size in bytes.
    """

    path: Path | None
    rows: int
    size: int


def validate_request(
    *,
    campaign: str,
    destination: str,
    format: str,
    since: str,
    first_since: str | None,
    file_name: str,
    gzip: bool,
    skip_empty: bool,
    neutralise_formulas: bool,
    now: datetime,
) -> ExportRequest:
    """The flow's parameters after the checks that their types cannot express.

    Args:
        now: the current time; an explicit window must have ended by then.

    Raises:
        InvalidParameter: a parameter is not valid; the message names it.
    """
    campaign = check_name("campaign", campaign)
    location = parse_location(destination)
    if has_glob(location.path):
        raise InvalidParameter(f"destination {destination!r} is a folder; it cannot hold a glob")
    render_path(location.path, now)  # a bad date template fails here, not after the query
    parsed = parse_since(since)
    if parsed.mode == "window" and parsed.end is not None and parsed.end > now:
        raise InvalidParameter(
            f"since {since!r} ends in the future; results not written yet would be missing"
        )
    start = parse_time(first_since, "first_since") if first_since else None
    render_file_name(
        file_name, campaign=campaign, start=now, end=now, format=format, export_id=0, gzip=gzip
    )
    return ExportRequest(
        campaign=campaign,
        destination=destination.strip(),
        format=format,
        since=parsed,
        first_since=start,
        file_name=file_name,
        gzip=gzip,
        skip_empty=skip_empty,
        neutralise_formulas=neutralise_formulas,
    )


def _file_name(request: ExportRequest, start: datetime, end: datetime, export_id: int) -> str:
    return render_file_name(
        request.file_name,
        campaign=request.campaign,
        start=start,
        end=end,
        format=request.format,
        export_id=export_id,
        gzip=request.gzip,
    )


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
            file_name=lambda start, end, export_id: _file_name(request, start, end, export_id),
            flow_run_id=flow_run_id,
        )
        name = _file_name(request, window.start, window.end, window.export_id or 0)
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


@contextmanager
def _output(path: Path, gzip: bool, inner_name: str) -> Iterator[IO[bytes]]:
    """The local file to render into, gzip-compressed when asked."""
    with path.open("wb", buffering=1 << 20) as raw:
        if not gzip:
            yield raw
            return
        # mtime=0: the same window compresses to the same bytes on a rerun.
        with gzip_lib.GzipFile(
            filename=inner_name,
            mode="wb",
            fileobj=raw,
            compresslevel=EXPORT_GZIP_LEVEL,
            mtime=0,
        ) as packed:
            yield packed  # type: ignore[misc]


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
            _output(path, request.gzip, plan.file_name.removesuffix(".gz")) as target,
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


def _retry_delivery(task: Any, task_run: TaskRun, state: State) -> bool:
    """Retry a delivery that failed on the way (network, server), not a setup error.

    A missing block, a bad name or a host key that is unknown or has changed will
    not fix itself in 10 seconds; the run fails at once with the reason.
    """
    try:
        state.result()
    except DeliveryFailed as exc:
        # A taken file name (FileExistsError) will not free itself either.
        return not isinstance(exc.__cause__, HostKeyError | FileExistsError)
    except Exception:
        return False
    return False


@task(
    retries=NETWORK_RETRIES,
    retry_delay_seconds=[float(s) for s in NETWORK_RETRY_DELAYS],
    retry_condition_fn=_retry_delivery,
    cache_policy=NO_CACHE,
)
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


def _run_time() -> datetime:
    """The end of a ``since: last`` window: the run's scheduled time, never the future.

    A retry of the same flow run keeps its scheduled time, so it computes the same
    window and file name.
    """
    scheduled = runtime_flow_run.scheduled_start_time
    value = datetime.fromtimestamp(scheduled.timestamp(), UTC).replace(
        microsecond=scheduled.microsecond
    )
    return min(value, datetime.now(UTC))


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
        run_time = _run_time()
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
