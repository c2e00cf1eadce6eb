"""Flow ``run-report``: query -> render -> deliver a report of the catalogue.

A scheduled report, as the contact centre's own scheduler ran them: the report
is generated for a period in the centre's time zone, rendered in any of CSV,
XLSX, HTML and PDF, and distributed by email (prefect-email's
``EmailServerCredentials`` block) and/or to a destination folder (a local path
or ``sftp://<block>/<folder>``). Every parameter is checked, and the email and
SFTP blocks are loaded, before anything is generated.

Its parameters are checked in :mod:`flows.report_request`; importing
:mod:`flows.report_task_log` registers the ``task-log`` report.
"""

from __future__ import annotations

from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import getaddresses, parseaddr
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect_email import EmailServerCredentials

import flows.report_task_log  # noqa: F401  (imported to register the task-log report)
from contact_center.exceptions import DeliveryFailed
from contact_center.outcome import Outcome
from contact_center.parsing.locations import Location
from contact_center.parsing.parameters import ReportFormat
from contact_center.reports import (
    RenderedFile,
    ReportData,
    ReportQuery,
    build_report,
    compose_report_email,
    render,
)
from contact_center.settings import DEFAULT_EMAIL_BLOCK
from flows.common import (
    RunProgress,
    contact_center_engine,
    deliver,
    final_state,
    recording_outcome,
)
from flows.common.mail import send_email, server_name
from flows.common.retries import NETWORK_TASK, TRANSFER_TASK
from flows.common.workdir import run_workdir, sweep_leftover_work
from flows.report_request import ReportRequest, prepare_request
from runlog.publish import publishes_task_log

__all__ = [
    "deliver_report",
    "email_report",
    "query_report",
    "render_report",
    "run_report",
    "send_email",
]


# --- the steps ------------------------------------------------------------------------


@task(cache_policy=NO_CACHE)
def query_report(request: ReportRequest) -> ReportData:
    """Run the report's query over the period (and draw its chart)."""
    engine = contact_center_engine() if request.definition.needs_database else None
    query = ReportQuery(request.period, request.now, engine, request.options)
    data = build_report(request.definition, query)
    get_run_logger().info(
        "%s for %s: %d rows in %d tables",
        request.definition.name,
        request.period.description,
        data.row_count,
        len(data.tables),
    )
    return data


@task(cache_policy=NO_CACHE)
def render_report(data: ReportData, formats: list[str]) -> list[RenderedFile]:
    """Render the report in each format."""
    files = render(data, formats)
    get_run_logger().info("rendered %s", ", ".join(f"{f.name} ({f.size} bytes)" for f in files))
    return files


@task(**TRANSFER_TASK)
def deliver_report(
    files: list[RenderedFile], destination: Location, workdir: Path, progress: RunProgress
) -> list[str]:
    """Deliver the files into the destination folder (temporary name, size check, rename).

    Returns:
        The final locations.
    """
    delivered = []
    with progress.attempt("deliver"):
        for file in files:
            local = workdir / file.name
            if not local.exists():
                local.write_bytes(file.content)
            final, _size = deliver(local, destination, name=file.name)
            delivered.append(final.text)
    get_run_logger().info("delivered %d files to %s", len(files), destination.text)
    return delivered


@task(**NETWORK_TASK)
def email_report(
    credentials: EmailServerCredentials, message: EmailMessage, progress: RunProgress
) -> dict[str, str]:
    """Email the report; an SMTP error is retried. Returns the refused recipients."""
    with progress.attempt("email"):
        refused = send_email(credentials, message)
    recipients = [address for _name, address in getaddresses([str(message["To"])])]
    get_run_logger().info(
        "emailed %s to %d of %d recipients through %s",
        message["Subject"],
        len(recipients) - len(refused),
        len(recipients),
        server_name(credentials),
    )
    return refused


# --- the flow -------------------------------------------------------------------------


def _run_time() -> datetime:
    """The run's scheduled start, so that a late or retried run reports the same period."""
    from prefect.runtime import flow_run

    scheduled = flow_run.scheduled_start_time
    if not isinstance(scheduled, datetime):
        return datetime.now(UTC)
    # Prefect hands out a pendulum DateTime; a plain datetime behaves as documented.
    return datetime.fromtimestamp(scheduled.timestamp(), UTC)


@publishes_task_log
@flow(name="run-report", flow_run_name="{report} · generate", validate_parameters=True)
def run_report(
    report: str,
    period: str = "yesterday",
    formats: list[ReportFormat] | ReportFormat | None = None,
    email_to: list[str] | str | None = None,
    email_block: str = DEFAULT_EMAIL_BLOCK,
    email_subject: str | None = None,
    email_from: str | None = None,
    destination: str | None = None,
    time_zone: str | None = None,
    options: dict[str, Any] | None = None,
) -> Outcome:
    """Generate a report for a period and distribute it by email and/or to a folder.

    Args:
        report: a name of the catalogue: campaign-summary, list-status,
            exclusion-activity, task-log.
        period: yesterday, today, last_7_days (last_<N>_days), month_to_date,
            previous_month, or FROM/TO (dates, TO inclusive; or datetimes).
        formats: any of csv, xlsx, html, pdf, as a list or one of them (default: pdf).
        email_to: recipients; the email carries a short summary and the files.
        email_block: the name of a saved prefect-email EmailServerCredentials block.
        email_subject: the subject (default: the report's title and period).
        email_from: the From address (default: the email block's username).
        destination: a folder to deliver the files to: a local path or
            sftp://<block>/<folder>.
        time_zone: the contact centre's IANA zone (default America/New_York); days
            start at its midnight.
        options: the report's own options (e.g. {"campaigns": ["Spring Sale"]}).
    """
    with recording_outcome(Outcome(object_name=report, step="generate")) as outcome:
        progress = RunProgress(
            {"query": 0.5, "render": 0.3, "deliver": 0.2},
            description=f"{report} · generate",
            outcome=outcome,
        )
        request = prepare_request(
            report=report,
            period=period,
            formats=formats if formats is not None else ["pdf"],
            email_to=email_to,
            email_block=email_block,
            email_subject=email_subject,
            email_from=email_from,
            destination=destination,
            time_zone=time_zone,
            options=options,
            now=_run_time(),
        )
        sweep_leftover_work()
        outcome.extra.update(
            period=request.period.description,
            period_start=request.period.start.isoformat(),
            period_end=request.period.end.isoformat(),
            formats=request.formats,
        )
        data = query_report(request)
        outcome.rows_read = data.row_count
        progress.update("query", 1, 1, force=True)
        files = render_report(data, request.formats)
        outcome.extra["generated"] = [f.name for f in files]
        progress.update("render", 1, 1, force=True)
        delivered: list[str] = outcome.extra.setdefault("delivered", [])
        _distribute(request, data, files, delivered, progress)
        # Only now, with every delivery done, do the files count as sent.
        outcome.bytes = sum(f.size for f in files)
        outcome.files = list(delivered)
        outcome.message = (
            f"{request.period.description}: {len(files)} files, {outcome.bytes} bytes, "
            f"{data.row_count} rows"
        )
        progress.finish()
    return final_state(outcome)  # type: ignore[return-value]


def _distribute(
    request: ReportRequest,
    data: ReportData,
    files: list[RenderedFile],
    delivered: list[str],
    progress: RunProgress,
) -> None:
    """Deliver to the destination, then email, noting in ``delivered`` what went where.

    A failure part-way leaves ``delivered`` saying what had gone, for the outcome of
    the failed run; the run records no bytes as sent.
    """
    if request.destination is not None:
        with run_workdir() as folder:
            delivered += deliver_report(files, request.destination, folder, progress)
    if request.recipients:
        assert request.email is not None and request.sender is not None
        message = compose_report_email(
            data,
            files,
            sender=request.sender,
            recipients=request.recipients,
            subject=request.subject,
        )
        refused = email_report(request.email, message, progress)
        accepted = [a for a in request.recipients if parseaddr(a)[1] not in refused]
        delivered += [f"email:{parseaddr(address)[1]}" for address in accepted]
        if refused:
            # Not retried: the accepted recipients have the email already.
            raise DeliveryFailed(
                f"the SMTP server refused {', '.join(f'{a} ({r})' for a, r in refused.items())}; "
                f"the report went to {', '.join(accepted) or 'nobody'}"
            )
