"""Flow ``run-report``: query -> render -> deliver a report of the catalogue.

A scheduled report, as the contact centre's own scheduler ran them: the report
is generated for a period in the centre's time zone, rendered in any of CSV,
XLSX, HTML and PDF, and distributed by email (prefect-email's
``EmailServerCredentials`` block) and/or to a destination folder (a local path
or ``sftp://<block>/<folder>``). Every parameter is checked, and the email and
SFTP blocks are loaded, before anything is generated.

This module also registers the ``task-log`` report, whose rows come from
Prefect's run history through the views package (``runlog``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import getaddresses, parseaddr
from pathlib import Path
from typing import Any

import pandas as pd
from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.exceptions import ObjectNotFound as PrefectObjectNotFound
from prefect_email import EmailServerCredentials

from contact_center.exceptions import DeliveryFailed, InvalidParameter, ObjectNotFound
from contact_center.outcome import Outcome
from contact_center.parsing.locations import Location, parse_location
from contact_center.parsing.names import check_name
from contact_center.parsing.parameters import ReportFormat
from contact_center.reports import (
    RUN_COLUMNS,
    Period,
    RenderedFile,
    ReportData,
    ReportDefinition,
    ReportQuery,
    build_report,
    compose_report_email,
    get_report,
    register_report,
    render,
    resolve_period,
    task_log_definition,
    validate_address,
    validate_addresses,
    validate_formats,
)
from contact_center.settings import (
    DEFAULT_EMAIL_BLOCK,
    DEFAULT_REPORT_TIME_ZONE,
    NETWORK_RETRIES,
    NETWORK_RETRY_DELAYS,
)
from flows.common import (
    RunProgress,
    check_before_io,
    contact_center_engine,
    deliver,
    final_state,
    recording_outcome,
)
from flows.common.mail import send_email, server_name
from flows.common.retries import retry_transfer
from flows.common.workdir import run_workdir, sweep_leftover_work
from runlog.publish import publishes_task_log

__all__ = [
    "ReportRequest",
    "deliver_report",
    "email_report",
    "prepare_request",
    "query_report",
    "render_report",
    "run_report",
    "send_email",
]

# --- the task-log report: Prefect's run history through the views package ----------


#: The most runs one task-log report lists; the run's log warns when it is reached.
TASK_LOG_REPORT_MAX_RUNS = 10_000


def task_log_runs(period: Period, request: ReportQuery) -> pd.DataFrame:
    """The finished runs that started in ``period``, as rows of :data:`RUN_COLUMNS`.

    Read through the views package (``runlog.task_log``); the report's ``types``
    option is its filter (Type labels or flow names). ``failed_only`` is applied by
    the report itself.
    """
    import runlog

    types = request.options.get("types")
    rows = runlog.task_log(
        sort="start_time",
        descending=False,
        types=[types] if isinstance(types, str) else types,
        since=period.start_utc,
        until=period.end_utc,
        limit=TASK_LOG_REPORT_MAX_RUNS,
    )
    records = [
        {
            "start_time": row.start_time,
            "end_time": row.end_time,
            "type": row.type,
            "object_name": row.object_name,
            "task_name": row.task_name,
            "step": row.step,
            "attempts": row.attempts,
            "duration_seconds": row.duration.total_seconds() if row.duration else None,
            "size_kb": row.size_kb,
            "result": row.result,
            "error": row.error,
        }
        for row in rows
        # ``until`` is inclusive there; a period's end is not part of it.
        if row.start_time is None or row.start_time < period.end_utc
    ]
    if len(rows) >= TASK_LOG_REPORT_MAX_RUNS:
        get_run_logger().warning(
            "the task-log report lists only the first %d runs of %s",
            TASK_LOG_REPORT_MAX_RUNS,
            period.description,
        )
    return pd.DataFrame(records, columns=list(RUN_COLUMNS))


TASK_LOG = register_report(task_log_definition(task_log_runs), replace=True)


# --- the request, checked up front ----------------------------------------------------


@dataclass
class ReportRequest:
    """A run's parameters, checked and resolved before anything is generated.

    Attributes:
        definition: the report of the catalogue.
        period: the resolved period.
        formats: the formats to render, in order.
        recipients: the email recipients (may be empty).
        destination: where to deliver the files, or None.
        options: the report's own options.
        email: the email server block, when there are recipients.
        sender: the From address, when there are recipients.
        subject: the email subject (None for the default).
        now: the time the run reports as of (its scheduled start).
    """

    definition: ReportDefinition
    period: Period
    formats: list[str]
    recipients: list[str]
    destination: Location | None
    options: dict[str, Any]
    email: EmailServerCredentials | None = None
    sender: str | None = None
    subject: str | None = None
    now: datetime = field(default_factory=lambda: datetime.now(UTC))


def _load_email_block(name: str) -> EmailServerCredentials:
    try:
        return EmailServerCredentials.load(name)
    except (ValueError, PrefectObjectNotFound):
        raise ObjectNotFound(
            f"no Email Server Credentials block named {name!r}; save one "
            "(see docs/report-execution.md, 'The email block')"
        ) from None


def prepare_request(
    *,
    report: str,
    period: str,
    formats: Sequence[str] | str | None,
    email_to: Sequence[str] | str | None,
    email_block: str,
    email_subject: str | None,
    email_from: str | None,
    destination: str | None,
    time_zone: str | None,
    options: dict[str, Any] | None,
    now: datetime,
) -> ReportRequest:
    """Check every parameter and load the blocks a run needs.

    Raises:
        ObjectNotFound: an unknown report (the message lists the available ones), or
            a missing email or SFTP block.
        InvalidParameter: an unknown format, a bad address, period, zone or option,
            or nowhere to deliver.
    """
    definition = get_report(check_name("report", report))
    chosen_formats = validate_formats(formats if isinstance(formats, str) else list(formats or []))
    recipients = validate_addresses(email_to)
    if email_subject is not None and any(c in email_subject for c in "\r\n"):
        raise InvalidParameter("email_subject must be a single line")
    location = parse_location(destination) if destination else None
    if not recipients and location is None:
        raise InvalidParameter("give email_to, destination or both: the report must go somewhere")
    resolved = resolve_period(period, time_zone or DEFAULT_REPORT_TIME_ZONE, now)
    checked_options = definition.check_options(options)
    request = ReportRequest(
        definition=definition,
        period=resolved,
        formats=chosen_formats,
        recipients=recipients,
        destination=location,
        options=checked_options,
        subject=email_subject,
        now=now,
    )
    if location is not None:
        check_before_io(destination=location)  # loads an SFTP destination's block
    if recipients:
        request.email = _load_email_block(email_block)
        sender = email_from or request.email.username
        if not sender:
            raise InvalidParameter(
                f"email_from is needed: the email block {email_block!r} has no username"
            )
        request.sender = validate_address(sender, "email_from")
    return request


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


@task(
    retries=NETWORK_RETRIES,
    retry_delay_seconds=[float(s) for s in NETWORK_RETRY_DELAYS],
    retry_condition_fn=retry_transfer,
    cache_policy=NO_CACHE,
)
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


@task(
    retries=NETWORK_RETRIES,
    retry_delay_seconds=[float(s) for s in NETWORK_RETRY_DELAYS],
    cache_policy=NO_CACHE,
)
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
