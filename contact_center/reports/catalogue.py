"""The report catalogue: every report's name, description, options, query and chart.

A report's *query* takes a :class:`ReportQuery` (the period, the time of the run,
the database engine and the report's options) and returns :class:`ReportContent`
(named tables and a few highlights). Its *chart*, if any, turns those tables
into a PNG. :func:`build_report` runs both and gives the :class:`ReportData`
that the renderers write.

The built-in reports over the contact-centre database register themselves in
``contact_center.reports.builtin``. A report whose data lives elsewhere (the
task log reads Prefect's run history, which this package must not import) is
registered by the layer that can reach it, with :func:`register_report`.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import pandas as pd
from sqlalchemy.engine import Engine

from contact_center.exceptions import InvalidParameter, ObjectNotFound
from contact_center.reports.periods import Period

__all__ = [
    "ReportContent",
    "ReportData",
    "ReportDefinition",
    "ReportQuery",
    "build_report",
    "get_report",
    "register_report",
    "report_names",
    "reports",
]


@dataclass(frozen=True)
class ReportQuery:
    """What a report's query is asked for.

    Attributes:
        period: the span to report on.
        now: the time of the run (aware); snapshots such as list status use it.
        engine: the contact-centre database, for reports that read it.
        options: the report's own options, already checked against its definition.
    """

    period: Period
    now: datetime
    engine: Engine | None = None
    options: Mapping[str, Any] = field(default_factory=dict)


@dataclass
class ReportContent:
    """What a query returns.

    Attributes:
        tables: table name -> DataFrame, in display order (a sheet per table in XLSX).
        highlights: label -> value, the few numbers that go into an email body.
        chart_frame: the numbers the chart draws (index: groups, columns: series).
    """

    tables: dict[str, pd.DataFrame]
    highlights: dict[str, Any] = field(default_factory=dict)
    chart_frame: pd.DataFrame | None = None


@dataclass
class ReportData:
    """A generated report, ready to render.

    Attributes:
        name: the report's catalogue name.
        title: its display title.
        period: the period reported on.
        generated_at: when it was generated (aware).
        tables: table name -> DataFrame, in display order.
        highlights: label -> value for the email body.
        chart: a PNG, or None for reports without a chart.
        chart_title: the chart's caption.
    """

    name: str
    title: str
    period: Period
    generated_at: datetime
    tables: dict[str, pd.DataFrame]
    highlights: dict[str, Any] = field(default_factory=dict)
    chart: bytes | None = None
    chart_title: str = ""

    @property
    def row_count(self) -> int:
        """The rows of every table together."""
        return sum(len(frame) for frame in self.tables.values())

    @property
    def base_name(self) -> str:
        """The file name stem: ``campaign-summary_2026-03-08``."""
        return f"{self.name}_{self.period.label}"


QueryFunction = Callable[[ReportQuery], ReportContent]
ChartFunction = Callable[[ReportContent, Period], bytes | None]


@dataclass(frozen=True)
class ReportDefinition:
    """A report of the catalogue.

    Attributes:
        name: the name users write in ``prefect.yaml`` (``campaign-summary``).
        title: the display title.
        description: one or two sentences for the docs and ``--help``.
        query: builds the tables.
        chart: draws the chart from the tables, or None.
        chart_title: the chart's caption.
        options: option name -> description of the report's own options.
        needs_database: whether ``query`` reads the contact-centre database.
    """

    name: str
    title: str
    description: str
    query: QueryFunction
    chart: ChartFunction | None = None
    chart_title: str = ""
    options: Mapping[str, str] = field(default_factory=dict)
    needs_database: bool = True

    def check_options(self, options: Mapping[str, Any] | None) -> dict[str, Any]:
        """Return ``options`` as a dict, refusing names the report does not know.

        Raises:
            InvalidParameter: an option this report does not take.
        """
        given = dict(options or {})
        unknown = sorted(set(given) - set(self.options))
        if unknown:
            known = ", ".join(sorted(self.options)) or "none"
            raise InvalidParameter(
                f"report {self.name!r} has no option {', '.join(map(repr, unknown))}; "
                f"its options: {known}"
            )
        return given


_catalogue: dict[str, ReportDefinition] = {}
_lock = threading.Lock()


def register_report(definition: ReportDefinition, *, replace: bool = False) -> ReportDefinition:
    """Add a report to the catalogue.

    Args:
        definition: the report.
        replace: allow replacing a report of the same name (a module imported twice).

    Raises:
        ValueError: the name is taken by another report and ``replace`` is false.
    """
    with _lock:
        existing = _catalogue.get(definition.name)
        if existing is not None and existing is not definition and not replace:
            raise ValueError(f"a report named {definition.name!r} is already registered")
        _catalogue[definition.name] = definition
    return definition


def report_names() -> list[str]:
    """The names in the catalogue, sorted."""
    return sorted(_catalogue)


def reports() -> list[ReportDefinition]:
    """Every report of the catalogue, sorted by name."""
    return [_catalogue[name] for name in report_names()]


def get_report(name: str) -> ReportDefinition:
    """The report named ``name``.

    Raises:
        ObjectNotFound: no such report; the message lists the available names.
    """
    try:
        return _catalogue[name]
    except (KeyError, TypeError):
        raise ObjectNotFound(
            f"no report named {name!r}; available reports: {', '.join(report_names())}"
        ) from None


def build_report(definition: ReportDefinition, query: ReportQuery) -> ReportData:
    """Run a report's query and chart.

    Raises:
        InvalidParameter: the report reads the database and ``query.engine`` is None.
    """
    if definition.needs_database and query.engine is None:
        raise InvalidParameter(f"report {definition.name!r} needs the contact-centre database")
    content = definition.query(query)
    chart = definition.chart(content, query.period) if definition.chart else None
    return ReportData(
        name=definition.name,
        title=definition.title,
        period=query.period,
        generated_at=query.now,
        tables=content.tables,
        highlights=content.highlights,
        chart=chart,
        chart_title=definition.chart_title,
    )
