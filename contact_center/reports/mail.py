"""The report email: addresses checked up front, and the message composed. No sending here.

The message carries a short HTML summary (title, period, highlights, the list of
files) with a plain-text alternative, and the rendered files as attachments.
"""

from __future__ import annotations

import html
import re
from collections.abc import Sequence
from email.message import EmailMessage
from email.utils import formataddr, formatdate, make_msgid, parseaddr

from contact_center.exceptions import InvalidParameter
from contact_center.reports.catalogue import ReportData
from contact_center.reports.render import RenderedFile, highlights_html

__all__ = ["compose_report_email", "default_subject", "validate_address", "validate_addresses"]

# Deliberately simple: one @, a dotted domain, no spaces or angle brackets. The SMTP
# server has the last word; this catches typos before anything is generated.
_ADDRESS = re.compile(r"^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+$")


def validate_address(value: str, what: str = "email address") -> str:
    """Check one address (``ops@example.com`` or ``Ops <ops@example.com>``).

    Returns:
        The address in the form given, trimmed.

    Raises:
        InvalidParameter: not a single valid address.
    """
    if not isinstance(value, str) or not value.strip() or any(c in value for c in "\r\n,;"):
        raise InvalidParameter(f"{what} {value!r} is not a single email address")
    text = value.strip()
    _name, address = parseaddr(text)
    if not address or not _ADDRESS.match(address) or ".." in address:
        raise InvalidParameter(f"{what} {value!r} is not a valid email address")
    return text


def validate_addresses(values: Sequence[str] | str | None) -> list[str]:
    """Check a list of recipients (a comma- or semicolon-separated string also works).

    Raises:
        InvalidParameter: an address that is not valid.
    """
    if values is None:
        return []
    if isinstance(values, str):
        values = [v for v in re.split(r"[,;]", values) if v.strip()]
    checked: list[str] = []
    for value in values:
        address = validate_address(value, "email_to address")
        if address.lower() not in (a.lower() for a in checked):
            checked.append(address)
    return checked


def default_subject(report: ReportData) -> str:
    """``Campaign summary · 2026-03-08 (America/New_York)``."""
    return f"{report.title} · {report.period.description}"


def _size_text(size: int) -> str:
    return f"{size / 1024:.1f} KB" if size >= 1024 else f"{size} bytes"


def _html_body(report: ReportData, files: Sequence[RenderedFile]) -> str:
    listed = "".join(f"<li>{html.escape(f.name)} ({_size_text(f.size)})</li>" for f in files)
    return (
        '<!DOCTYPE html><html><body style="font-family:Arial,sans-serif;color:#1f2328">'
        f'<h2 style="margin:0 0 4px">{html.escape(report.title)}</h2>'
        f'<p style="color:#59636e;margin:0 0 12px">{html.escape(report.period.description)}'
        f" · generated {html.escape(report.generated_at.strftime('%Y-%m-%d %H:%M %Z'))}</p>"
        f"{highlights_html(report)}"
        f"<p>Attached:</p><ul>{listed}</ul>"
        '<p style="color:#59636e;font-size:12px">Sent by cctasks (run-report).</p>'
        "</body></html>"
    )


def _plain_body(report: ReportData, files: Sequence[RenderedFile]) -> str:
    lines = [report.title, report.period.description, ""]
    lines += [f"{label}: {value}" for label, value in report.highlights.items()]
    lines += ["", "Attached:"] + [f"- {f.name} ({_size_text(f.size)})" for f in files]
    return "\n".join(lines) + "\n"


def compose_report_email(
    report: ReportData,
    files: Sequence[RenderedFile],
    *,
    sender: str,
    recipients: Sequence[str],
    subject: str | None = None,
) -> EmailMessage:
    """The email that carries ``files`` to ``recipients``.

    Args:
        report: the generated report (for the summary in the body).
        files: the rendered files, attached in order.
        sender: the From address.
        recipients: the To addresses (already checked with :func:`validate_addresses`).
        subject: the subject; default :func:`default_subject`.
    """
    message = EmailMessage()
    message["Subject"] = subject or default_subject(report)
    name, address = parseaddr(sender)
    message["From"] = formataddr((name, address)) if name else address
    message["To"] = ", ".join(recipients)
    message["Date"] = formatdate(localtime=False)
    message["Message-ID"] = make_msgid(domain=address.rpartition("@")[2] or None)
    message.set_content(_plain_body(report, files))
    message.add_alternative(_html_body(report, files), subtype="html")
    for file in files:
        maintype, _, subtype = file.media_type.partition("/")
        message.add_attachment(file.content, maintype=maintype, subtype=subtype, filename=file.name)
    return message
