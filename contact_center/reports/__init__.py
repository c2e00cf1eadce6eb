"""Scheduled reports: the catalogue, periods, queries, charts, renderers and the email.

Importing this package registers the built-in reports (``campaign-summary``,
``list-status``, ``exclusion-activity``). ``task-log`` reads Prefect's run
history, which the domain must not import; ``flows/report_execution.py``
registers it with :func:`task_log_definition`.

Example:
    ```python
    from contact_center.reports import ReportQuery, build_report, get_report, render
    from contact_center.reports import resolve_period

    period = resolve_period("yesterday", "America/New_York", now=now)
    data = build_report(get_report("campaign-summary"), ReportQuery(period, now, engine))
    files = render(data, ["pdf", "xlsx"])
    ```
"""

from contact_center.reports import builtin as _builtin  # noqa: F401  (registers the reports)
from contact_center.reports.catalogue import (
    ReportContent,
    ReportData,
    ReportDefinition,
    ReportQuery,
    build_report,
    get_report,
    register_report,
    report_names,
    reports,
)
from contact_center.reports.mail import (
    compose_report_email,
    default_subject,
    validate_address,
    validate_addresses,
)
from contact_center.reports.periods import NAMED_PERIODS, Period, day_starts, resolve_period
from contact_center.reports.render import RenderedFile, render, validate_formats
from contact_center.reports.runs import RUN_COLUMNS, format_duration, task_log_definition

__all__ = [
    "NAMED_PERIODS",
    "RUN_COLUMNS",
    "Period",
    "RenderedFile",
    "ReportContent",
    "ReportData",
    "ReportDefinition",
    "ReportQuery",
    "build_report",
    "compose_report_email",
    "day_starts",
    "default_subject",
    "format_duration",
    "get_report",
    "register_report",
    "render",
    "report_names",
    "reports",
    "resolve_period",
    "task_log_definition",
    "validate_address",
    "validate_addresses",
    "validate_formats",
]
