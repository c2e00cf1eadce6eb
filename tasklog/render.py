"""Rendering the views: a rich table, CSV, JSON and XLSX.

Times show in the contact centre's zone, or UTC (see :mod:`tasklog.zones`); the
table names the zone in its title. Duration as mm:ss; Size (KB) with one decimal;
Progress as a whole percent; Number of attempts as ``2 of 3`` while a step retries
(JSON keeps the number). CSV and XLSX use the seed's column headers; JSON uses the
column keys (``start_time``...) with ISO 8601 times and their offset.

Table cells are plain text: a name holding rich markup (``[red]``) shows as written.
The rows themselves hold no control characters (see :mod:`runlog.text`), so no
format can carry an escape sequence to a terminal or a spreadsheet.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from openpyxl import Workbook
from rich.table import Table
from rich.text import Text

from contact_center.exceptions import InvalidParameter
from runlog.mapping import LOG_COLUMNS, SCHEDULED_COLUMNS, format_duration, format_size_kb
from runlog.rows import ScheduledRow, TaskLogRow
from tasklog.zones import DisplayZone

__all__ = ["FORMATS", "columns_of", "render_rich", "render_text", "write_xlsx"]

FORMATS = ("table", "csv", "json", "xlsx")
_TIME_FORMAT = "%Y-%m-%d %H:%M:%S"

Rows = Sequence[TaskLogRow] | Sequence[ScheduledRow]


def columns_of(scheduled: bool) -> tuple[tuple[str, str], ...]:
    """The columns of a view."""
    return SCHEDULED_COLUMNS if scheduled else LOG_COLUMNS


def _value(row: TaskLogRow | ScheduledRow, key: str) -> Any:
    if key == "attempts" and isinstance(row, ScheduledRow):
        return row.attempts_text
    return getattr(row, key)


def _display(key: str, value: Any, zone: DisplayZone) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime):
        return zone.convert(value).strftime(_TIME_FORMAT)
    if key == "duration":
        return format_duration(value)
    if key == "size_kb":
        return format_size_kb(value)
    if key == "progress":
        return f"{value:.0f}%"
    return str(value)


def _json_value(key: str, value: Any, zone: DisplayZone) -> Any:
    if value is None:
        return None
    if isinstance(value, datetime):
        return zone.convert(value).isoformat(timespec="seconds")
    if key == "duration":
        return format_duration(value)
    return value


def render_rich(rows: Rows, scheduled: bool, zone: DisplayZone, title: str = "") -> Table:
    """A rich table with the seed's headers; its title names the time zone."""
    heading = f"{title} · {zone.label()}" if title else zone.label()
    table = Table(title=heading, show_lines=False)
    for key, header in columns_of(scheduled):
        numeric = key in ("duration", "size_kb", "attempts", "progress")
        table.add_column(header, justify="right" if numeric else "left", overflow="fold")
    for row in rows:
        cells = []
        for key, _ in columns_of(scheduled):
            text = _display(key, _value(row, key), zone)
            style = "red" if key == "result" and text == "failed" else ""
            cells.append(Text(text, style=style))
        table.add_row(*cells)
    return table


def render_text(rows: Rows, fmt: str, scheduled: bool, zone: DisplayZone) -> str:
    """CSV or JSON text of the rows."""
    columns = columns_of(scheduled)
    if fmt == "csv":
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow([header for _, header in columns])
        for row in rows:
            writer.writerow([_display(key, _value(row, key), zone) for key, _ in columns])
        return buffer.getvalue()
    if fmt == "json":
        data = [
            {key: _json_value(key, getattr(row, key), zone) for key, _ in columns} for row in rows
        ]
        return json.dumps(data, indent=2, ensure_ascii=False) + "\n"
    raise InvalidParameter(f"unknown format {fmt!r}; valid formats: {', '.join(FORMATS)}")


def write_xlsx(rows: Rows, path: Path, scheduled: bool, zone: DisplayZone) -> None:
    """An XLSX workbook with one sheet; times are real Excel date-times in ``zone``."""
    columns = columns_of(scheduled)
    book = Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.title = "Scheduled" if scheduled else "Task log"
    sheet.append([header for _, header in columns])
    for row in rows:
        values: list[Any] = []
        for key, _ in columns:
            value = _value(row, key)
            if key == "attempts" and isinstance(value, str) and value.isdigit():
                value = int(value)
            if isinstance(value, datetime):
                value = zone.convert(value).replace(tzinfo=None)  # Excel has no time zones
            elif key == "duration":
                value = format_duration(value)
            elif value is not None and not isinstance(value, int | float | str):
                value = str(value)
            values.append(value)
        sheet.append(values)
    for index, (key, _) in enumerate(columns, start=1):
        if key in ("start_time", "end_time"):
            for cell in sheet.iter_cols(min_col=index, max_col=index, min_row=2):
                for item in cell:
                    item.number_format = "yyyy-mm-dd hh:mm:ss"
        if key == "size_kb":
            for cell in sheet.iter_cols(min_col=index, max_col=index, min_row=2):
                for item in cell:
                    item.number_format = "0.0"
    sheet.freeze_panes = "A2"
    book.save(path)
