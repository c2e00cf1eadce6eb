"""How Prefect's run history maps to the seed's two views: pure functions, no I/O.

The five cctasks flows, their seed "Type" labels, object parameters and default
steps; the seed's columns; the state and result mapping; the display formats
(mm:ss, KB with one decimal); the redaction of anything that looks like a URL
password; and the parsing of the CLI's time filters and column names.

Results stay the seed's ``completed`` and ``failed``; a run that had nothing to do
(its Prefect state is named ``Skipped``) is ``completed (skipped)``. The Scheduled
view's states are ``scheduled``, ``late``, ``waiting`` (for a deployment's concurrency
slot, or a running run for its object's slot), ``pending``, ``in progress``,
``retrying`` and ``paused``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo

from contact_center.exceptions import InvalidParameter
from contact_center.settings import OBJECT_WAIT_PREFIX
from runlog.text import clean

__all__ = [
    "FLOW_TYPES",
    "LOG_COLUMNS",
    "RESULTS",
    "SCHEDULED_COLUMNS",
    "SKIPPED",
    "FlowType",
    "error_of",
    "flow_type",
    "format_duration",
    "format_size_kb",
    "normalise_column",
    "object_wait_of",
    "parse_horizon",
    "parse_time",
    "redact",
    "resolve_types",
    "result_of",
    "run_duration",
    "scheduled_state_of",
    "size_kb",
]


@dataclass(frozen=True)
class FlowType:
    """One cctasks task type.

    Attributes:
        flow_name: the Prefect flow name (see docs/architecture.md).
        label: the seed's "Type" label.
        object_param: the flow parameter that names the object.
        default_step: the step shown when the run has no ``step`` parameter.
    """

    flow_name: str
    label: str
    object_param: str
    default_step: str


FLOW_TYPES: dict[str, FlowType] = {
    t.flow_name: t
    for t in (
        FlowType("import-calling-list", "Calling list import", "list_name", "import"),
        FlowType("import-exclusions", "Import exclusions by account", "exclusion_list", "import"),
        FlowType("campaign-trigger", "Campaign trigger", "campaign", ""),
        FlowType("export-campaign-results", "Campaign results export", "campaign", "export"),
        FlowType("run-report", "Report execution", "report", "generate"),
    )
}

# The seed's columns, as (key, header). The key is what --sort and JSON use.
LOG_COLUMNS: tuple[tuple[str, str], ...] = (
    ("start_time", "Start time"),
    ("end_time", "End time"),
    ("object_name", "Object name"),
    ("task_name", "Task name"),
    ("duration", "Duration"),
    ("size_kb", "Size (KB)"),
    ("result", "Result"),
    ("error", "Error"),
    ("type", "Type"),
    ("step", "Step"),
    ("started_by", "Started by"),
)
SCHEDULED_COLUMNS: tuple[tuple[str, str], ...] = (
    ("start_time", "Start time"),
    ("object_name", "Object name"),
    ("task_name", "Task name"),
    ("attempts", "Number of attempts"),
    ("state", "State"),
    ("progress", "Progress"),
    ("type", "Type"),
    ("step", "Step"),
    ("note", "Note"),
)
RESULTS = ("completed", "failed")
# The name of the (Completed) state of a run that had nothing to do.
SKIPPED = "Skipped"

# Prefect's own prefix on a failed flow run's state message; the Error column drops it.
_PREFECT_FAILURE_PREFIX = "Flow run encountered an exception: "
# scheme://user:password@ -> scheme://user:***@ (defensive: our messages hold no secret).
_URL_PASSWORD = re.compile(r"(?P<head>[A-Za-z][A-Za-z0-9+.\-]*://[^\s:/@]*:)[^\s@/]+@")
_RELATIVE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$", re.IGNORECASE)
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
_COLUMN_ALIASES = {
    "start": "start_time",
    "end": "end_time",
    "object": "object_name",
    "task": "task_name",
    "size": "size_kb",
    "attempts": "attempts",
    "number_of_attempts": "attempts",
}


def flow_type(flow_name: str) -> FlowType | None:
    """The cctasks type of a flow, or None for a flow that is not ours."""
    return FLOW_TYPES.get(flow_name)


def resolve_types(values: list[str]) -> list[str]:
    """Map ``--type`` values (a seed label or a flow name, any case) to flow names.

    Raises:
        InvalidParameter: for a value that names no type; the message lists them.
    """
    names: list[str] = []
    for value in values:
        wanted = value.strip().casefold()
        match = [
            t.flow_name
            for t in FLOW_TYPES.values()
            if wanted in (t.flow_name.casefold(), t.label.casefold())
        ]
        if not match:
            valid = ", ".join(f"'{t.label}' ({t.flow_name})" for t in FLOW_TYPES.values())
            raise InvalidParameter(f"unknown type {value!r}; valid types: {valid}")
        names.extend(n for n in match if n not in names)
    return names


def normalise_column(name: str, columns: tuple[tuple[str, str], ...] = LOG_COLUMNS) -> str:
    """The key of a column given as ``start_time``, ``Start time``, ``size``, ``Size (KB)``...

    Raises:
        InvalidParameter: for an unknown column; the message lists the valid ones.
    """
    key = re.sub(r"[^a-z0-9]+", "_", name.strip().lower()).strip("_")
    key = _COLUMN_ALIASES.get(key, key)
    if key == "size_kb" or key.startswith("size_"):
        key = "size_kb"
    keys = [k for k, _ in columns]
    if key not in keys:
        raise InvalidParameter(f"unknown column {name!r}; valid columns: {', '.join(keys)}")
    return key


def result_of(state_type: str, state_name: str = "") -> str:
    """The seed's Result: ``completed``, else ``failed`` (failed, crashed, cancelled).

    A completed run whose state is named ``Skipped`` is ``completed (skipped)``.
    """
    if state_type != "COMPLETED":
        return "failed"
    return "completed (skipped)" if state_name == SKIPPED else "completed"


def error_of(
    state_type: str,
    state_name: str,
    message: str | None,
    attempts: int = 1,
    first_error: str | None = None,
) -> str:
    """The Error column: why a run did not complete, or what was unusual when it did.

    - failed: the state message without Prefect's prefix; crashed and cancelled runs
      carry their state name as the reason's prefix; after retries, ``(after 3
      attempts)`` follows;
    - skipped: the reason (the state message);
    - completed after retries: ``completed after 3 attempts (first: <error>)``;
    - completed at once: empty.

    The text is one line, without control characters or URL passwords.
    """
    text = " ".join((message or "").split())
    if state_type == "COMPLETED":
        if state_name == SKIPPED:
            pass
        elif attempts > 1:
            first = " ".join((first_error or "").split())
            text = f"completed after {attempts} attempts" + (f" (first: {first})" if first else "")
        else:
            text = ""
    else:
        if text.startswith(_PREFECT_FAILURE_PREFIX.strip()):
            text = text[len(_PREFECT_FAILURE_PREFIX.strip()) :].strip()
        if state_type in ("CRASHED", "CANCELLED"):
            text = f"{state_name}: {text}" if text else state_name
        if attempts > 1:
            text = f"{text} (after {attempts} attempts)"
    return redact(clean(text))


def scheduled_state_of(state_type: str, state_name: str) -> str:
    """The Scheduled view's State of a run that has not ended.

    ``late`` (Prefect marked it Late), ``waiting`` (for a concurrency slot),
    ``retrying`` (waiting to retry, or running a retry), ``scheduled``, ``pending``,
    ``paused`` (a run paused in flight) or ``in progress`` (running, cancelling).
    """
    if state_name in ("AwaitingRetry", "Retrying"):
        return "retrying"
    if state_type == "SCHEDULED":
        if state_name == "Late":
            return "late"
        return "waiting" if state_name == "AwaitingConcurrencySlot" else "scheduled"
    if state_type == "PENDING":
        return "pending"
    if state_type == "PAUSED":
        return "paused"
    return "in progress"


def object_wait_of(state: str, progress_description: str | None) -> str | None:
    """What an ``in progress`` run waits for, from its newest progress artifact's
    description ("waits for list Spring Leads", see flows.common.slots); None when
    the run is not waiting for its object's slot."""
    text = clean(" ".join((progress_description or "").split()))
    if state == "in progress" and text.startswith(OBJECT_WAIT_PREFIX):
        return text
    return None


def redact(text: str) -> str:
    """Hide anything that looks like a password in a URL: ``scheme://user:***@host``."""
    return _URL_PASSWORD.sub(r"\g<head>***@", text)


def run_duration(start: datetime | None, end: datetime | None) -> timedelta | None:
    """The Duration of an ended run, failed ones included: end - start.

    A run that ended before it started (crashed or cancelled while pending) ran for
    no time at all: ``00:00``. A run that has not ended has none.
    """
    if end is None:
        return None
    return max(end - start, timedelta(0)) if start is not None else timedelta(0)


def format_duration(duration: timedelta | None) -> str:
    """``mm:ss``; past an hour the minutes keep counting (``75:03``). Empty for None."""
    if duration is None:
        return ""
    seconds = max(int(duration.total_seconds()), 0)
    return f"{seconds // 60:02d}:{seconds % 60:02d}"


def size_kb(nbytes: int | None) -> float | None:
    """Bytes as KB (1 KB = 1024 bytes) with one decimal; None stays None."""
    return None if nbytes is None else round(nbytes / 1024, 1)


def format_size_kb(value: float | None) -> str:
    """A size in KB with one decimal, or empty."""
    return "" if value is None else f"{value:.1f}"


def parse_horizon(text: str) -> timedelta:
    """A relative span such as ``30m``, ``24h``, ``7d`` or ``2w``.

    Raises:
        InvalidParameter: for anything else.
    """
    match = _RELATIVE.match(text)
    if not match:
        raise InvalidParameter(
            f"bad time span {text!r}; use a number and a unit s, m, h, d or w (e.g. 24h, 7d)"
        )
    return timedelta(**{_UNITS[match.group(2).lower()]: float(match.group(1))})


def parse_time(text: str, now: datetime, utc: bool = False, zone: tzinfo | None = None) -> datetime:
    """A ``--since``/``--until`` value as an aware UTC datetime.

    Args:
        text: an ISO 8601 time or date (``2026-11-29``, ``2026-11-29T06:00``), or a
            span back from now (``24h``, ``7d``).
        now: the current time (aware).
        utc: read a time without an offset as UTC instead of local time.
        zone: read a time without an offset in this zone (the contact centre's)
            instead of the machine's local zone.

    Raises:
        InvalidParameter: for a value that is neither.
    """
    if _RELATIVE.match(text):
        return (now - parse_horizon(text)).astimezone(UTC)
    try:
        parsed = datetime.fromisoformat(text.strip())
    except ValueError:
        raise InvalidParameter(
            f"bad time {text!r}; use an ISO time such as 2026-11-29T06:00 or a span "
            "back from now such as 24h or 7d"
        ) from None
    if parsed.tzinfo is None:
        if utc:
            parsed = parsed.replace(tzinfo=UTC)
        elif zone is not None:
            parsed = parsed.replace(tzinfo=zone)
        else:
            parsed = parsed.astimezone()
    return parsed.astimezone(UTC)
