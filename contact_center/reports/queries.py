"""The queries of the built-in reports over the contact-centre database.

Each function takes a :class:`~contact_center.reports.catalogue.ReportQuery` and
returns :class:`~contact_center.reports.catalogue.ReportContent`. The SQL is
SQLAlchemy Core with bound parameters and runs the same on SQLite and PostgreSQL;
the database aggregates, and pandas only pivots the small result.

Days are the contact centre's local days: the period's local midnights (see
:func:`~contact_center.reports.periods.day_starts`) are bound into a ``CASE`` that
numbers each row's day, which stays exact across DST changes on every database.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from contact_center.exceptions import InvalidParameter, ObjectNotFound
from contact_center.parsing.names import check_name
from contact_center.reports.catalogue import ReportContent, ReportQuery
from contact_center.reports.periods import day_starts
from contact_center.storage.dialing import calling_hours_counts, record_is_current
from contact_center.storage.exclusions import key_is_excluded, record_match_columns
from contact_center.storage.models import (
    CallAttempt,
    CallingList,
    Campaign,
    CampaignList,
    Exclusion,
    ExclusionImport,
    ExclusionList,
    ListImport,
    ListRecord,
)

__all__ = [
    "NO_DISPOSITION",
    "campaign_summary",
    "exclusion_activity",
    "list_status",
]

#: The disposition column for attempts that carry no call disposition.
NO_DISPOSITION = "(none)"

_attempts = CallAttempt.__table__
_campaigns = Campaign.__table__
_campaign_lists = CampaignList.__table__
_lists = CallingList.__table__
_records = ListRecord.__table__
_list_imports = ListImport.__table__
_exclusion_lists = ExclusionList.__table__
_exclusions = Exclusion.__table__
_exclusion_imports = ExclusionImport.__table__


def _count_if(condition: sa.ColumnElement[bool]) -> sa.ColumnElement[int]:
    return sa.func.coalesce(sa.func.sum(sa.case((condition, 1), else_=0)), 0)


def _names_option(query: ReportQuery, option: str) -> list[str] | None:
    """A report option that lists object names, as a list (or None for all)."""
    value = query.options.get(option)
    if value is None:
        return None
    names = [value] if isinstance(value, str) else list(value)
    if not names or not all(isinstance(n, str) and n for n in names):
        raise InvalidParameter(f"option {option!r} must be a name or a list of names")
    for name in names:
        check_name(f"option {option}", name)
    return names


def _require_names(
    conn: Connection, table: sa.FromClause, names: Sequence[str] | None, what: str
) -> None:
    if names is None:
        return
    found = set(conn.execute(sa.select(table.c.name).where(table.c.name.in_(names))).scalars())
    missing = [n for n in names if n not in found]
    if missing:
        raise ObjectNotFound(f"no {what} named {', '.join(map(repr, missing))}")


# --- campaign-summary ---------------------------------------------------------------


def _day_index(column: sa.ColumnElement[Any], bounds: list[datetime]) -> sa.ColumnElement[int]:
    """The 0-based local day of ``column`` within ``bounds`` (from :func:`day_starts`)."""
    whens = [(column < bound, number) for number, bound in enumerate(bounds[1:-1])]
    last = len(bounds) - 2
    return sa.case(*whens, else_=last) if whens else sa.literal(last)


#: A connect is an attempt that reached a live party: an agent took the call.
CONNECT = _attempts.c.agent.is_not(None)


def campaign_summary(query: ReportQuery) -> ReportContent:
    """Per campaign and local day: attempts, connects, completion rate, dispositions.

    Definitions (over rows whose ``attempted_at`` is in the period):

    - *attempts*: rows that are call attempts (``is_call_attempt``);
    - *not dialled*: rows that are not (an exclusion match or a quota);
    - *connects*: attempts that an agent took (``agent`` set);
    - *completed*: attempts that completed their record;
    - *completion rate*: completed / attempts, in per cent;
    - one column per disposition, counting attempts: the record disposition the
      attempt set (Sale, Not Interested, ...), else its call disposition (No Answer,
      Busy, ...), else ``(none)``.

    Options:
        campaigns: a campaign name or list of names (default: every campaign).
    """
    assert query.engine is not None
    period = query.period
    bounds = day_starts(period)
    days = [bound.date().isoformat() for bound in bounds[:-1]]
    day = _day_index(_attempts.c.attempted_at, bounds).label("day")
    names = _names_option(query, "campaigns")
    in_period = [
        _attempts.c.attempted_at >= period.start_utc,
        _attempts.c.attempted_at < period.end_utc,
    ]
    if names is not None:
        in_period.append(_campaigns.c.name.in_(names))
    joined = _attempts.join(_campaigns, _campaigns.c.id == _attempts.c.campaign_id)
    is_attempt = _attempts.c.is_call_attempt.is_(True)
    totals_stmt = (
        sa.select(
            _campaigns.c.name.label("campaign"),
            day,
            _count_if(is_attempt).label("attempts"),
            _count_if(sa.and_(is_attempt, CONNECT)).label("connects"),
            _count_if(sa.and_(is_attempt, _attempts.c.completed.is_(True))).label("completed"),
            _count_if(~is_attempt).label("not_dialled"),
        )
        .select_from(joined)
        .where(*in_period)
        .group_by(_campaigns.c.name, day)
    )
    disposition = sa.func.coalesce(
        _attempts.c.record_disposition, _attempts.c.call_disposition, sa.literal(NO_DISPOSITION)
    ).label("disposition")
    dispositions_stmt = (
        sa.select(_campaigns.c.name.label("campaign"), day, disposition, sa.func.count().label("n"))
        .select_from(joined)
        .where(*in_period, is_attempt)
        .group_by(_campaigns.c.name, day, disposition)
    )
    with query.engine.connect() as conn:
        _require_names(conn, _campaigns, names, "campaign")
        totals = pd.DataFrame(conn.execute(totals_stmt).mappings().all())
        by_disposition = pd.DataFrame(conn.execute(dispositions_stmt).mappings().all())
    return _campaign_summary_content(totals, by_disposition, days)


def _rate(done: pd.Series, total: pd.Series) -> pd.Series:
    return (100.0 * done / total.where(total > 0)).round(1).fillna(0.0)


_SUMMARY_COLUMNS = {
    "campaign": "Campaign",
    "day": "Day",
    "attempts": "Attempts",
    "connects": "Connects",
    "completed": "Completed",
    "completion_rate": "Completion rate (%)",
    "not_dialled": "Not dialled",
}


def _campaign_summary_content(
    totals: pd.DataFrame, by_disposition: pd.DataFrame, days: list[str]
) -> ReportContent:
    counts = ["attempts", "connects", "completed", "not_dialled"]
    if totals.empty:
        totals = pd.DataFrame(columns=["campaign", "day", *counts])
    totals = totals.astype({c: "int64" for c in counts})
    totals["campaign"] = totals["campaign"].astype(object)
    totals["day"] = pd.Series(
        [days[int(i)] for i in totals["day"]], index=totals.index, dtype=object
    )
    if by_disposition.empty:
        wide = pd.DataFrame({"campaign": [], "day": []}, dtype=object)
        disposition_names: list[str] = []
    else:
        by_disposition["campaign"] = by_disposition["campaign"].astype(object)
        by_disposition["day"] = [days[int(i)] for i in by_disposition["day"]]
        totals_by_name = by_disposition.groupby("disposition")["n"].sum()
        # Most frequent first; ties by name, so the columns are stable.
        disposition_names = sorted(
            (str(name) for name in totals_by_name.index),
            key=lambda name: (-int(totals_by_name[name]), name),
        )
        wide = by_disposition.pivot_table(
            index=["campaign", "day"], columns="disposition", values="n", aggfunc="sum"
        ).reset_index()
        wide.columns.name = None
    daily = totals.merge(wide, on=["campaign", "day"], how="left")
    for name in disposition_names:
        daily[name] = daily[name].fillna(0).astype("int64")
    daily["completion_rate"] = _rate(daily["completed"], daily["attempts"])
    daily = daily.sort_values(["campaign", "day"]).reset_index(drop=True)
    ordered = [*_SUMMARY_COLUMNS, *disposition_names]
    daily = daily[ordered]

    per_campaign = daily.groupby("campaign", sort=True)[[*counts, *disposition_names]].sum()
    per_campaign = per_campaign.reset_index()
    per_campaign["completion_rate"] = _rate(per_campaign["completed"], per_campaign["attempts"])
    per_campaign = per_campaign[[c for c in ordered if c != "day"]]

    attempts = int(daily["attempts"].sum())
    completed = int(daily["completed"].sum())
    highlights = {
        "Campaigns": int(per_campaign["campaign"].nunique()),
        "Attempts": attempts,
        "Connects": int(daily["connects"].sum()),
        "Completed": completed,
        "Completion rate (%)": round(100.0 * completed / attempts, 1) if attempts else 0.0,
    }
    per_day = daily.groupby("day")[["attempts", "connects", "completed"]].sum()
    per_day = per_day.reindex(days, fill_value=0)
    return ReportContent(
        tables={
            "Daily": daily.rename(columns=_SUMMARY_COLUMNS),
            "Campaign totals": per_campaign.rename(columns=_SUMMARY_COLUMNS),
        },
        highlights=highlights,
        chart_frame=per_day.rename(columns=str.capitalize),
    )


# --- list-status --------------------------------------------------------------------


def _lists_stmt(names: list[str] | None) -> sa.Select[Any]:
    stmt = sa.select(_lists.c.id, _lists.c.name).order_by(_lists.c.name)
    return stmt.where(_lists.c.name.in_(names)) if names is not None else stmt


def _list_counts_stmt(list_id: int, now: datetime) -> sa.Select[int, int, int]:
    """Records, expired and excluded of one list; dialable is what is left.

    The exclusion lookup appears once, so the database runs it once per record.
    """
    current = record_is_current(_records.c.expires_at, now)
    excluded = key_is_excluded(record_match_columns(_records), calling_list_id=list_id, now=now)
    return sa.select(
        sa.func.count().label("records"),
        _count_if(sa.and_(current, excluded)).label("excluded"),
        _count_if(~current).label("expired"),
    ).where(_records.c.list_id == list_id)


def _completed_records_stmt() -> sa.Select[int, int]:
    # IN (subquery) runs as one semi-join (PostgreSQL) or against one temporary index
    # (SQLite); a correlated EXISTS per record would scan call_attempts per record.
    completed = sa.select(_attempts.c.record_id).where(_attempts.c.completed.is_(True))
    return (
        sa.select(_records.c.list_id, sa.func.count().label("completed"))
        .where(_records.c.id.in_(completed))
        .group_by(_records.c.list_id)
    )


def _list_imports_stmt(query: ReportQuery) -> sa.Select[Any]:
    return (
        sa.select(
            _list_imports.c.list_id,
            sa.func.count().label("imports"),
            sa.func.coalesce(sa.func.sum(_list_imports.c.loaded), 0).label("rows_loaded"),
        )
        .where(
            _list_imports.c.started_at >= query.period.start_utc,
            _list_imports.c.started_at < query.period.end_utc,
            _list_imports.c.status == "completed",
        )
        .group_by(_list_imports.c.list_id)
    )


def _enabled_campaigns_stmt() -> sa.Select[Any]:
    return (
        sa.select(_campaign_lists.c.list_id, _campaigns.c.name)
        .join(_campaigns, _campaigns.c.id == _campaign_lists.c.campaign_id)
        .where(_campaign_lists.c.enabled.is_(True))
        .order_by(_campaigns.c.name)
    )


def list_status(query: ReportQuery) -> ReportContent:
    """Per calling list: records, dialable, excluded, expired and completed, at the run time.

    Definitions (a snapshot at ``query.now``; the three first columns add up to records):

    - *expired*: records whose ``expires_at`` has passed;
    - *excluded*: unexpired records whose key is in an active, unexpired exclusion
      list of a campaign that has the list enabled (the campaign trigger's rule);
    - *dialable*: unexpired records that are not excluded;
    - *completed*: records with a completed call attempt (any time);
    - *imports* and *rows loaded* in the period, from the list's import history;
    - per campaign, list and time zone (a second table): the campaign's dialable
      records *dialable now*, inside its calling hours in every zone of the
      record, and *outside calling hours* (the campaign's own exclusion lists).

    Options:
        lists: a calling-list name or list of names (default: every list).
    """
    assert query.engine is not None
    now = query.now
    names = _names_option(query, "lists")
    with query.engine.connect() as conn:
        _require_names(conn, _lists, names, "calling list")
        lists = conn.execute(_lists_stmt(names)).all()
        # One grouped query per list, with the list's id bound: the exclusion lists
        # that apply differ per calling list (those of the campaigns it is enabled in).
        counts = {
            list_id: conn.execute(_list_counts_stmt(list_id, now)).one() for list_id, _ in lists
        }
        completed = {
            row.list_id: int(row.completed) for row in conn.execute(_completed_records_stmt())
        }
        imports = {row.list_id: row for row in conn.execute(_list_imports_stmt(query))}
        campaigns: dict[int, list[str]] = {}
        for list_id, campaign in conn.execute(_enabled_campaigns_stmt()):
            campaigns.setdefault(list_id, []).append(campaign)
    rows = []
    for list_id, name in lists:
        count = counts[list_id]
        loaded = imports.get(list_id)
        rows.append(
            {
                "Calling list": name,
                "Campaigns": ", ".join(campaigns.get(list_id, [])),
                "Records": int(count.records),
                "Dialable": int(count.records) - int(count.expired) - int(count.excluded),
                "Excluded": int(count.excluded),
                "Expired": int(count.expired),
                "Completed": int(completed.get(list_id, 0)),
                "Imports in period": int(loaded.imports) if loaded else 0,
                "Rows loaded in period": int(loaded.rows_loaded) if loaded else 0,
            }
        )
    columns = [
        "Calling list", "Campaigns", "Records", "Dialable", "Excluded", "Expired", "Completed",
        "Imports in period", "Rows loaded in period",
    ]  # fmt: skip
    table = pd.DataFrame(rows, columns=columns)
    highlights = {
        "Calling lists": len(table),
        **{c: int(table[c].sum()) for c in ("Records", "Dialable", "Excluded", "Expired")},
        "Completed": int(table["Completed"].sum()),
    }
    hours = _calling_hours_table(query, {name for _, name in lists}, campaigns)
    highlights["Dialable now"] = int(hours["Dialable now"].sum())
    highlights["Outside calling hours"] = int(hours["Outside calling hours"].sum())
    chart_frame = table.set_index("Calling list")[["Dialable", "Excluded", "Expired"]]
    return ReportContent(
        tables={"List status": table, "Calling hours": hours},
        highlights=highlights,
        chart_frame=chart_frame,
    )


def _calling_hours_table(
    query: ReportQuery, list_names: set[str], campaigns: dict[int, list[str]]
) -> pd.DataFrame:
    """Dialable now / outside calling hours per campaign, list and zone, at ``query.now``."""
    assert query.engine is not None
    columns = ["Campaign", "Calling list", "Time zone", "Dialable now", "Outside calling hours"]
    rows = []
    with query.engine.connect() as conn:
        for campaign in sorted({c for names in campaigns.values() for c in names}):
            for count in calling_hours_counts(conn, campaign, at=query.now):
                if count.list_name in list_names:
                    zone = count.zone or "(none)"
                    rows.append(
                        [campaign, count.list_name, zone, count.dialable_now, count.outside_hours]
                    )
    return pd.DataFrame(rows, columns=columns).astype(
        {"Dialable now": "int64", "Outside calling hours": "int64"}
    )


# --- exclusion-activity -------------------------------------------------------------


def exclusion_activity(query: ReportQuery) -> ReportContent:
    """Per exclusion list: keys added, renewed, removed and expired in the period.

    Definitions:

    - *added*, *renewed*, *removed*: the sums over the list's imports and resets
      that started in the period (``exclusion_imports``);
    - *expired*: keys whose ``expires_at`` falls in the period (keys already
      removed cannot be counted; an import with ``replace`` removes them);
    - *active keys*: keys not expired at the run time.

    Options:
        exclusion_lists: a name or list of names (default: every exclusion list).
    """
    assert query.engine is not None
    period = query.period
    names = _names_option(query, "exclusion_lists")
    imports = _exclusion_imports
    activity_stmt = (
        sa.select(
            imports.c.exclusion_list_id,
            _count_if(imports.c.step == "import").label("imports"),
            _count_if(imports.c.step == "reset").label("resets"),
            sa.func.coalesce(sa.func.sum(imports.c.added), 0).label("added"),
            sa.func.coalesce(sa.func.sum(imports.c.renewed), 0).label("renewed"),
            sa.func.coalesce(sa.func.sum(imports.c.removed), 0).label("removed"),
            sa.func.coalesce(sa.func.sum(imports.c.rejected), 0).label("rejected"),
        )
        .where(imports.c.started_at >= period.start_utc, imports.c.started_at < period.end_utc)
        .group_by(imports.c.exclusion_list_id)
    )
    expired_in_period = sa.and_(
        _exclusions.c.expires_at >= period.start_utc, _exclusions.c.expires_at < period.end_utc
    )
    keys_stmt = sa.select(
        _exclusions.c.exclusion_list_id,
        _count_if(expired_in_period).label("expired"),
        _count_if(record_is_current(_exclusions.c.expires_at, query.now)).label("active_keys"),
    ).group_by(_exclusions.c.exclusion_list_id)
    lists_stmt = sa.select(
        _exclusion_lists.c.id, _exclusion_lists.c.name, _exclusion_lists.c.active
    ).order_by(_exclusion_lists.c.name)
    if names is not None:
        lists_stmt = lists_stmt.where(_exclusion_lists.c.name.in_(names))
    with query.engine.connect() as conn:
        _require_names(conn, _exclusion_lists, names, "exclusion list")
        lists = conn.execute(lists_stmt).all()
        activity = {row.exclusion_list_id: row for row in conn.execute(activity_stmt)}
        keys = {row.exclusion_list_id: row for row in conn.execute(keys_stmt)}
    rows = []
    for list_id, name, active in lists:
        done = activity.get(list_id)
        held = keys.get(list_id)
        rows.append(
            {
                "Exclusion list": name,
                "List active": "yes" if active else "no",
                "Imports": int(done.imports) if done else 0,
                "Resets": int(done.resets) if done else 0,
                "Added": int(done.added) if done else 0,
                "Renewed": int(done.renewed) if done else 0,
                "Removed": int(done.removed) if done else 0,
                "Expired": int(held.expired) if held else 0,
                "Rejected": int(done.rejected) if done else 0,
                "Active keys": int(held.active_keys) if held else 0,
            }
        )
    columns = [
        "Exclusion list", "List active", "Imports", "Resets", "Added", "Renewed", "Removed",
        "Expired", "Rejected", "Active keys",
    ]  # fmt: skip
    table = pd.DataFrame(rows, columns=columns)
    highlights = {"Exclusion lists": len(table)}
    highlights.update({c: int(table[c].sum()) for c in ("Added", "Renewed", "Removed", "Expired")})
    chart_frame = table.set_index("Exclusion list")[["Added", "Renewed", "Removed", "Expired"]]
    return ReportContent(
        tables={"Exclusion activity": table}, highlights=highlights, chart_frame=chart_frame
    )
