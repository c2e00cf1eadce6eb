"""Campaign results: export windows, watermarks and the ``results_exports`` bookkeeping.

This is the bookkeeping half of the ``export-campaign-results`` flow; no Prefect here.
The formats are in :mod:`contact_center.storage.results_format`, the query and the
file writing in :mod:`contact_center.storage.results_query`.

**Windows.** A window ``[start, end)`` applies to ``call_attempts.recorded_at``, the
time the contact centre wrote the row, not to ``attempted_at``: an attempt written
late still lands in the next window instead of being skipped by a window that has
already moved past its attempt time. ``since: last`` runs from the stored watermark
of the (campaign, destination) pair up to the run's scheduled time, and moves the
watermark when the file has been delivered; an explicit ``START/END`` window
(a backfill) never moves it.

**Exactly once.** :func:`plan_export` writes a ``pending`` ``results_exports`` row
before anything is delivered; its id is the export's id, part of the default file
name (:mod:`contact_center.storage.export_naming`). A later run (a retry, or the next
scheduled run) that finds it resumes that same window under the same id and file
name, so a file that was renamed into place just before a crash is replaced by the
same export, never repeated in a second file. No export ever replaces a file that
another export delivered. :func:`complete_export` marks the row ``delivered`` and
advances the watermark in one transaction, after the rename. A backfill (an explicit
window) reserves a ``backfill`` row the same way, for its id; it is never resumed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, cast

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql as pg_dialect
from sqlalchemy.dialects import sqlite as sqlite_dialect
from sqlalchemy.engine import Connection, Engine

from contact_center.storage.campaigns import CampaignInfo, get_campaign
from contact_center.storage.db import transaction
from contact_center.storage.export_naming import destination_key
from contact_center.storage.models import CallAttempt, ExportWatermark, ResultsExport, utcnow
from contact_center.storage.results_format import Since

__all__ = [
    "ExportPlan",
    "ExportWindow",
    "complete_export",
    "plan_export",
]

_watermarks = cast(sa.Table, ExportWatermark.__table__)
_exports = cast(sa.Table, ResultsExport.__table__)


# --- windows, watermarks and the export record --------------------------------------------


@dataclass(frozen=True)
class ExportWindow:
    """The window one export covers, on ``recorded_at``: ``[start, end)``.

    Attributes:
        start: inclusive, UTC.
        end: exclusive, UTC.
        advances_watermark: ``since: last`` (the watermark moves to ``end`` once
            delivered); an explicit window does not move it.
        export_id: the export's ``results_exports`` row, reserved before the delivery
            (``pending`` for ``since: last``, ``backfill`` for an explicit window).
        resumed: the window is that of an earlier, interrupted export.
        up_to_date: nothing to do: the watermark is already at or past the run's time.
    """

    start: datetime
    end: datetime
    advances_watermark: bool
    export_id: int | None = None
    resumed: bool = False
    up_to_date: bool = False


@dataclass(frozen=True)
class ExportPlan:
    """What the select step decided: the campaign, the window, the columns, the name.

    Attributes:
        campaign: the campaign.
        destination: the destination as the user wrote it.
        format: ``simple`` or ``detailed``.
        window: the window.
        custom_keys: the custom-field keys that become columns, sorted.
        rows: how many data rows are expected (for progress).
        file_name: the final file name at the destination.
        replace: whether the delivery may replace a file of that name: only when the
            export resumes its own interrupted delivery and no other export
            delivered that name.
    """

    campaign: CampaignInfo
    destination: str
    format: str
    window: ExportWindow
    custom_keys: tuple[str, ...]
    rows: int
    file_name: str
    replace: bool = False


def _read_watermark(conn: Connection, campaign_id: int, destination: str) -> datetime | None:
    return conn.execute(
        sa.select(ExportWatermark.watermark).where(
            ExportWatermark.campaign_id == campaign_id,
            ExportWatermark.destination == destination,
        )
    ).scalar()


def _pending_export(
    conn: Connection, campaign_id: int, destination: str, watermark: datetime | None
) -> Any:
    query = (
        sa.select(_exports.c.id, _exports.c.window_start, _exports.c.window_end)
        .where(
            _exports.c.campaign_id == campaign_id,
            _exports.c.destination == destination,
            _exports.c.status == "pending",
        )
        .order_by(_exports.c.id.desc())
        .limit(1)
    )
    if watermark is not None:
        query = query.where(_exports.c.window_start == watermark)
    return conn.execute(query).first()


def _first_start(conn: Connection, campaign_id: int, end: datetime) -> datetime:
    """The start of a first export without ``first_since``: its oldest row, else ``end``."""
    oldest = conn.execute(
        sa.select(sa.func.min(CallAttempt.recorded_at)).where(
            CallAttempt.campaign_id == campaign_id, CallAttempt.recorded_at < end
        )
    ).scalar()
    return oldest if oldest is not None else end


def plan_export(
    bind: Connection | Engine,
    *,
    campaign: str,
    destination: str,
    since: Since,
    run_time: datetime,
    first_since: datetime | None = None,
    format: str = "detailed",
    file_name: Callable[[datetime, datetime, int], str] | None = None,
    flow_run_id: str | None = None,
) -> tuple[CampaignInfo, ExportWindow]:
    """Choose the window of an export and reserve its ``results_exports`` row (its id).

    ``since: last`` resumes the newest ``pending`` export of the pair whose start is
    the watermark (an interrupted run: same window and id, so the same file name);
    else it runs from the watermark (or ``first_since``, or the campaign's oldest
    row) to ``run_time``, and records the window as a ``pending`` row. An explicit
    window reserves a ``backfill`` row, which is never resumed.

    Args:
        bind: an engine or a connection.
        campaign: the campaign's name.
        destination: the destination as written (see :func:`destination_key`).
        since: from :func:`parse_since`.
        run_time: the run's scheduled time: the end of a ``since: last`` window.
        first_since: the start of the very first export, if not everything.
        format: recorded on the export row.
        file_name: renders the file name from (start, end, export id), recorded on
            the row.
        flow_run_id: the Prefect flow run, recorded on the row.

    Raises:
        ObjectNotFound: no such campaign.
    """
    key = destination_key(destination)
    with transaction(bind) as conn:
        info = get_campaign(conn, campaign)
        if since.mode == "window":
            assert since.start is not None and since.end is not None
            reserve = _Reservation(info.id, key, format, flow_run_id, file_name)
            export_id = reserve(conn, since.start, since.end, status="backfill")
            return info, ExportWindow(since.start, since.end, False, export_id=export_id)
        watermark = _read_watermark(conn, info.id, key)
        pending = _pending_export(conn, info.id, key, watermark)
        if pending is not None:
            conn.execute(
                sa.update(_exports)
                .where(_exports.c.id == pending.id)
                .values(flow_run_id=flow_run_id, format=format)
            )
            start = pending.window_start
            return info, ExportWindow(
                start, pending.window_end, True, export_id=pending.id, resumed=True
            )
        run_time = run_time.astimezone(UTC)
        if watermark is not None and watermark >= run_time:
            return info, ExportWindow(watermark, watermark, True, up_to_date=True)
        if watermark is not None:
            start = watermark
        elif first_since is not None:
            start = min(first_since, run_time)
        else:
            start = _first_start(conn, info.id, run_time)
        reserve = _Reservation(info.id, key, format, flow_run_id, file_name)
        export_id = reserve(conn, start, run_time, status="pending")
        return info, ExportWindow(start, run_time, True, export_id=export_id)


@dataclass(frozen=True)
class _Reservation:
    """Writes the ``results_exports`` row of an export about to be delivered."""

    campaign_id: int
    destination: str
    format: str
    flow_run_id: str | None
    file_name: Callable[[datetime, datetime, int], str] | None

    def __call__(self, conn: Connection, start: datetime, end: datetime, *, status: str) -> int:
        """Insert the row; then record its file name, which holds the row's id."""
        export_id = int(
            conn.execute(
                sa.insert(_exports)
                .values(
                    campaign_id=self.campaign_id,
                    destination=self.destination,
                    format=self.format,
                    window_start=start,
                    window_end=end,
                    rows=0,
                    bytes=0,
                    flow_run_id=self.flow_run_id,
                    exported_at=utcnow(),
                    status=status,
                )
                .returning(_exports.c.id)
            ).scalar_one()
        )
        if self.file_name is not None:
            name = self.file_name(start, end, export_id)
            conn.execute(
                sa.update(_exports).where(_exports.c.id == export_id).values(file_name=name)
            )
        return export_id


def _advance_watermark(conn: Connection, campaign_id: int, destination: str, to: datetime) -> None:
    values = {
        "campaign_id": campaign_id,
        "destination": destination,
        "watermark": to,
        "updated_at": utcnow(),
    }
    dialect = pg_dialect if conn.dialect.name == "postgresql" else sqlite_dialect
    insert = dialect.insert(_watermarks).values(**values)
    # Never backwards: a late retry of an older window leaves a newer watermark alone.
    conn.execute(
        insert.on_conflict_do_update(
            index_elements=[_watermarks.c.campaign_id, _watermarks.c.destination],
            set_={"watermark": insert.excluded.watermark, "updated_at": insert.excluded.updated_at},
            where=_watermarks.c.watermark < insert.excluded.watermark,
        )
    )


def complete_export(
    bind: Connection | Engine,
    *,
    campaign_id: int,
    destination: str,
    window: ExportWindow,
    format: str,
    file_name: str | None,
    rows: int,
    bytes: int,
    flow_run_id: str | None = None,
) -> int:
    """Record a delivered export and, for ``since: last``, advance the watermark.

    One transaction: the export row becomes ``delivered`` and the watermark moves to
    the window's end together, or neither happens. Call it only after the file was
    renamed into place (or when an empty window wrote no file).

    Returns:
        The ``results_exports`` row's id.
    """
    key = destination_key(destination)
    values = {
        "file_name": file_name,
        "format": format,
        "rows": rows,
        "bytes": bytes,
        "flow_run_id": flow_run_id,
        "exported_at": utcnow(),
        "status": "delivered",
    }
    with transaction(bind) as conn:
        if window.export_id is not None:
            conn.execute(
                sa.update(_exports).where(_exports.c.id == window.export_id).values(values)
            )
            export_id = window.export_id
        else:
            export_id = conn.execute(
                sa.insert(_exports)
                .values(
                    campaign_id=campaign_id,
                    destination=key,
                    window_start=window.start,
                    window_end=window.end,
                    **values,
                )
                .returning(_exports.c.id)
            ).scalar_one()
        if window.advances_watermark:
            _advance_watermark(conn, campaign_id, key, window.end)
    return int(export_id)
