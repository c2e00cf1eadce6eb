"""Campaign results, pure: the two export formats, their columns and the ``since`` parameter.

**Formats.** Both are CSV in UTF-8 with a header row; their columns are fixed
(:data:`SIMPLE_COLUMNS`, :data:`DETAILED_COLUMNS`) and followed by the records'
custom fields, one column per key, sorted (see :func:`custom_columns`):

**Safety.** Every text cell that starts with ``=``, ``+``, ``-``, ``@``, a tab or a
carriage return gets a leading apostrophe (:func:`neutralise`), so spreadsheets show
it as text instead of running it. This includes E.164 phone numbers: ``+12125550100``
is written ``'+12125550100``, which a spreadsheet shows as text (never a number that
loses its ``+``, never a formula); a program that reads the file strips one leading
apostrophe. ``neutralise_formulas=False`` writes cells exactly as stored, for
machine-to-machine feeds.

"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

from contact_center.exceptions import InvalidParameter
from contact_center.storage.models import RECORD_FIELDS

__all__ = [
    "ATTEMPT_FIELDS",
    "DETAILED_COLUMNS",
    "EXPORT_BATCH_ROWS",
    "FORMATS",
    "FORMULA_TRIGGERS",
    "SIMPLE_COLUMNS",
    "Since",
    "custom_columns",
    "neutralise",
    "parse_since",
    "parse_time",
]

FORMATS = ("simple", "detailed")
#: A cell that starts with one of these is neutralised (OWASP's CSV-injection list).
FORMULA_TRIGGERS = ("=", "+", "-", "@", "\t", "\r")
#: Rows fetched per batch where the rows pass through Python (SQLite).
EXPORT_BATCH_ROWS = 1_000

# The record's standard fields, shared by both formats (custom fields come last).
_RECORD_COLUMNS = ("campaign", "list", "record_key", *RECORD_FIELDS)

#: A result row's own fields, as stored in ``call_attempts`` and written by ``detailed``.
ATTEMPT_FIELDS = (
    "phone",
    "attempted_at",
    "recorded_at",
    "is_call_attempt",
    "completed",
    "record_disposition",
    "record_disposition_code",
    "call_disposition",
    "call_disposition_code",
    "out_of_quota",
    "call_note",
    "global_interaction_id",
    "action_applied",
    "agent",
)

#: The columns of the ``detailed`` format, in order (custom fields follow).
DETAILED_COLUMNS: tuple[str, ...] = (*_RECORD_COLUMNS, "attempt_id", *ATTEMPT_FIELDS)

#: The columns of the ``simple`` format, in order (custom fields follow).
SIMPLE_COLUMNS: tuple[str, ...] = (
    *_RECORD_COLUMNS,
    "record_disposition",
    "record_disposition_code",
    "completed",
    "attempts",
    "last_attempt_at",
    "last_phone",
    "last_call_disposition",
    "last_call_disposition_code",
    "last_agent",
)


# --- parameters (pure) ---------------------------------------------------------------------


@dataclass(frozen=True)
class Since:
    """The ``since`` parameter, parsed.

    Attributes:
        mode: ``last`` (from the watermark) or ``window`` (an explicit backfill).
        start: the explicit window's start (UTC), for ``window``.
        end: the explicit window's end (UTC, exclusive), for ``window``.
    """

    mode: Literal["last", "window"]
    start: datetime | None = None
    end: datetime | None = None


def parse_time(text: str, name: str) -> datetime:
    """Parse an ISO 8601 time; a time without an offset is UTC.

    Args:
        text: e.g. ``2026-11-01T00:00``, ``2026-11-01``, ``2026-11-01T00:00-05:00``.
        name: the parameter's name, for the message.

    Raises:
        InvalidParameter: not an ISO 8601 date or time.
    """
    try:
        value = datetime.fromisoformat(text.strip())
    except (ValueError, AttributeError):
        raise InvalidParameter(
            f"{name} {text!r} is not an ISO 8601 time (e.g. 2026-11-01T00:00)"
        ) from None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def parse_since(since: str) -> Since:
    """Parse ``since``: ``last``, or ``START/END`` in ISO 8601 (``END`` exclusive).

    Raises:
        InvalidParameter: neither form, or a window whose end is not after its start.
    """
    if not isinstance(since, str) or not since.strip():
        raise InvalidParameter("since must be 'last' or an ISO window 'START/END'")
    text = since.strip()
    if text == "last":
        return Since("last")
    start_text, sep, end_text = text.partition("/")
    if not sep:
        raise InvalidParameter(
            f"since {since!r} must be 'last' or a window 'START/END' "
            "(e.g. 2026-11-01T00:00/2026-11-02T00:00)"
        )
    start = parse_time(start_text, "since start")
    end = parse_time(end_text, "since end")
    if end <= start:
        raise InvalidParameter(f"since {since!r}: the end must be after the start")
    return Since("window", start, end)


def neutralise(value: str | None) -> str | None:
    """Prefix a cell that a spreadsheet would run (``=+-@``, tab, CR) with ``'``.

    This is the rule that :func:`export_query` applies in SQL to every text cell;
    the header is written through this function.
    """
    if value and value[0] in FORMULA_TRIGGERS:
        return "'" + value
    return value


def custom_columns(keys: Sequence[str]) -> list[str]:
    """Header names for custom-field keys: the key itself, unless a standard column
    of either format already has that name (then ``custom_<key>``)."""
    taken = set(SIMPLE_COLUMNS) | set(DETAILED_COLUMNS)
    names: list[str] = []
    for key in keys:
        name = key
        while name in taken:
            name = f"custom_{name}"
        taken.add(name)
        names.append(name)
    return names
