"""The ``export-campaign-results`` flow's request: its parameters validated, its file
name, its run time and the local file it renders into. No tasks here: those are in
:mod:`flows.results_export`.
"""

from __future__ import annotations

import gzip as gzip_lib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO

from prefect.runtime import flow_run as runtime_flow_run

from contact_center.exceptions import InvalidParameter
from contact_center.parsing.locations import has_glob, parse_location, render_path
from contact_center.parsing.names import check_name
from contact_center.storage.export_naming import render_file_name
from contact_center.storage.results_format import Since, parse_since, parse_time

__all__ = [
    "EXPORT_GZIP_LEVEL",
    "ExportRequest",
    "RenderedExport",
    "export_file_name",
    "export_output",
    "export_run_time",
    "validate_request",
]

#: zlib level of ``gzip: true`` exports: 6 is gzip's own default size/speed balance.
EXPORT_GZIP_LEVEL = 6


@dataclass(frozen=True)
class ExportRequest:
    """The flow's parameters, validated.

    Attributes:
        campaign: the campaign's name.
        destination: the destination folder as written (a location string).
        format: ``simple`` or ``detailed``.
        since: the parsed ``since``.
        first_since: the start of the very first ``since: last`` export, if given.
        file_name: the file-name template.
        gzip: compress the file (``.gz`` is appended to its name).
        skip_empty: an empty window writes no file (else a header-only file).
        neutralise_formulas: prefix cells that a spreadsheet would run with ``'``.
    """

    campaign: str
    destination: str
    format: str
    since: Since
    first_since: datetime | None
    file_name: str
    gzip: bool
    skip_empty: bool
    neutralise_formulas: bool


@dataclass(frozen=True)
class RenderedExport:
    """The local file of an export.

    Attributes:
        path: the file, or ``None`` when an empty window was skipped.
        rows: data rows written (the header excluded).
        size: the file's size in bytes.
    """

    path: Path | None
    rows: int
    size: int


def validate_request(
    *,
    campaign: str,
    destination: str,
    format: str,
    since: str,
    first_since: str | None,
    file_name: str,
    gzip: bool,
    skip_empty: bool,
    neutralise_formulas: bool,
    now: datetime,
) -> ExportRequest:
    """The flow's parameters after the checks that their types cannot express.

    Args:
        now: the current time; an explicit window must have ended by then.

    Raises:
        InvalidParameter: a parameter is not valid; the message names it.
    """
    campaign = check_name("campaign", campaign)
    location = parse_location(destination)
    if has_glob(location.path):
        raise InvalidParameter(f"destination {destination!r} is a folder; it cannot hold a glob")
    render_path(location.path, now)  # a bad date template fails here, not after the query
    parsed = parse_since(since)
    if parsed.mode == "window" and parsed.end is not None and parsed.end > now:
        raise InvalidParameter(
            f"since {since!r} ends in the future; results not written yet would be missing"
        )
    start = parse_time(first_since, "first_since") if first_since else None
    render_file_name(
        file_name, campaign=campaign, start=now, end=now, format=format, export_id=0, gzip=gzip
    )
    return ExportRequest(
        campaign=campaign,
        destination=destination.strip(),
        format=format,
        since=parsed,
        first_since=start,
        file_name=file_name,
        gzip=gzip,
        skip_empty=skip_empty,
        neutralise_formulas=neutralise_formulas,
    )


def export_file_name(request: ExportRequest, start: datetime, end: datetime, export_id: int) -> str:
    """The export's file name, from the request's template, its window and its id."""
    return render_file_name(
        request.file_name,
        campaign=request.campaign,
        start=start,
        end=end,
        format=request.format,
        export_id=export_id,
        gzip=request.gzip,
    )


@contextmanager
def export_output(path: Path, gzip: bool, inner_name: str) -> Iterator[IO[bytes]]:
    """The local file to render into, gzip-compressed when asked."""
    with path.open("wb", buffering=1 << 20) as raw:
        if not gzip:
            yield raw
            return
        # mtime=0: the same window compresses to the same bytes on a rerun.
        with gzip_lib.GzipFile(
            filename=inner_name,
            mode="wb",
            fileobj=raw,
            compresslevel=EXPORT_GZIP_LEVEL,
            mtime=0,
        ) as packed:
            yield packed  # type: ignore[misc]


def export_run_time() -> datetime:
    """The end of a ``since: last`` window: the run's scheduled time, never the future.

    A retry of the same flow run keeps its scheduled time, so it computes the same
    window and file name.
    """
    scheduled = runtime_flow_run.scheduled_start_time
    value = datetime.fromtimestamp(scheduled.timestamp(), UTC).replace(
        microsecond=scheduled.microsecond
    )
    return min(value, datetime.now(UTC))
