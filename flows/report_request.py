"""A ``run-report`` run's parameters, checked and resolved before anything is generated.

:func:`prepare_request` checks every parameter of :func:`flows.report_execution.run_report`
(report, period, formats, addresses, destination, options) and loads the email and
SFTP blocks that the run needs, so that a bad parameter fails the run before a query.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from prefect.exceptions import ObjectNotFound as PrefectObjectNotFound
from prefect_email import EmailServerCredentials

from contact_center.exceptions import InvalidParameter, ObjectNotFound
from contact_center.parsing.locations import Location, parse_location
from contact_center.parsing.names import check_name
from contact_center.reports import (
    Period,
    ReportDefinition,
    get_report,
    resolve_period,
    validate_address,
    validate_addresses,
    validate_formats,
)
from contact_center.settings import DEFAULT_REPORT_TIME_ZONE
from flows.common import check_before_io

__all__ = ["ReportRequest", "prepare_request"]


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
