"""The built-in reports over the contact-centre database, registered on import.

``task-log`` is not here: its rows come from Prefect's run history, so the flows
layer registers it (see :func:`contact_center.reports.runs.task_log_definition`).
"""

from __future__ import annotations

from contact_center.reports.catalogue import (
    ChartFunction,
    ReportContent,
    ReportDefinition,
    register_report,
)
from contact_center.reports.charts import bar_chart
from contact_center.reports.periods import Period
from contact_center.reports.queries import campaign_summary, exclusion_activity, list_status

__all__ = ["CAMPAIGN_SUMMARY", "EXCLUSION_ACTIVITY", "LIST_STATUS", "chart_of"]


def chart_of(
    title: str, ylabel: str, *, stacked: bool = False, horizontal: bool = False
) -> ChartFunction:
    """A chart function that draws a content's ``chart_frame`` as bars."""

    def draw(content: ReportContent, period: Period) -> bytes | None:
        if content.chart_frame is None:
            return None
        return bar_chart(
            content.chart_frame,
            title=f"{title} · {period.description}",
            ylabel=ylabel,
            stacked=stacked,
            horizontal=horizontal,
        )

    return draw


CAMPAIGN_SUMMARY = register_report(
    ReportDefinition(
        name="campaign-summary",
        title="Campaign summary",
        description=(
            "For each campaign and day of the period: attempts, connects (an agent took the "
            "call), completed attempts, completion rate, records not dialled (exclusion or "
            "quota) and the count of each call disposition; campaign totals; a chart of "
            "attempts, connects and completions per day."
        ),
        query=campaign_summary,
        chart=chart_of("Attempts, connects and completions per day", "calls"),
        chart_title="Attempts, connects and completions per day",
        options={"campaigns": "only these campaigns (a name or a list of names)"},
    )
)

LIST_STATUS = register_report(
    ReportDefinition(
        name="list-status",
        title="Calling list status",
        description=(
            "For each calling list, at the time of the run: records, dialable, excluded, "
            "expired and completed records, the campaigns it is enabled in, and its imports "
            "in the period; a chart of dialable, excluded and expired records per list."
        ),
        query=list_status,
        chart=chart_of("Records by status", "records", stacked=True, horizontal=True),
        chart_title="Records by status",
        options={"lists": "only these calling lists (a name or a list of names)"},
    )
)

EXCLUSION_ACTIVITY = register_report(
    ReportDefinition(
        name="exclusion-activity",
        title="Exclusion activity",
        description=(
            "For each exclusion (Do-Not-Call) list: imports and resets in the period, keys "
            "added, renewed, removed and expired in the period, rows rejected, and the keys "
            "active at the time of the run; a chart of the four key counts per list."
        ),
        query=exclusion_activity,
        chart=chart_of("Key activity", "keys", horizontal=True),
        chart_title="Key activity",
        options={"exclusion_lists": "only these exclusion lists (a name or a list of names)"},
    )
)
