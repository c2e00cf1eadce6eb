"""Do-Not-Call lists of the Record Exclusion type: matching and parsing.

An exclusion list holds key values (usually account numbers). A record whose
``match_field`` (default ``account``) equals a key of an *active* list, and whose
exclusion has not expired, must not be dialled. A list is case-sensitive or not;
a case-insensitive list stores its keys folded with :func:`fold_keys` and compares
them with SQL ``lower()`` of the record's value.

This module is pure: :func:`key_is_excluded` builds an SQLAlchemy Core
expression (no I/O), and :func:`parse_exclusion_keys` turns a DataFrame into
valid keys and rejects. The database side of an import is in
:mod:`contact_center.storage.exclusion_load`; the dialling queries in
:mod:`contact_center.storage.dialing`.

Caveat: SQLite's ``lower()`` folds ASCII letters only, so on SQLite a
case-insensitive list matches non-ASCII keys case-sensitively.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.sql.elements import ColumnElement

from contact_center.exceptions import InvalidFile, InvalidParameter
from contact_center.storage.models import (
    RECORD_FIELDS,
    CampaignExclusionList,
    CampaignList,
    Exclusion,
    ExclusionList,
)

__all__ = [
    "MATCH_FIELDS",
    "REJECT_INVALID_EXPIRY",
    "REJECT_KEY_TOO_LONG",
    "REJECT_MISSING_KEY",
    "ParsedKeys",
    "fold_keys",
    "key_is_excluded",
    "merge_parsed",
    "parse_exclusion_keys",
    "record_match_columns",
    "validate_match_field",
]

#: The record fields an exclusion list may match on (the typed fields of a record).
MATCH_FIELDS = RECORD_FIELDS

REJECT_MISSING_KEY = "missing_key"
REJECT_KEY_TOO_LONG = "key_too_long"
REJECT_INVALID_EXPIRY = "invalid_expiry"

#: The width of ``exclusions.key_value``; a longer key could never match a record.
MAX_KEY_LENGTH = 200

_exclusions = Exclusion.__table__
_lists = ExclusionList.__table__
_campaign_exclusions = CampaignExclusionList.__table__
_campaign_lists = CampaignList.__table__


def validate_match_field(match_field: str) -> str:
    """Check that ``match_field`` names a typed record field.

    Raises:
        InvalidParameter: it does not.
    """
    if match_field not in MATCH_FIELDS:
        raise InvalidParameter(
            f"match_field {match_field!r} is not a record field; use one of "
            + ", ".join(MATCH_FIELDS)
        )
    return match_field


def record_match_columns(table: sa.FromClause) -> dict[str, ColumnElement[Any]]:
    """The columns of ``table`` (``list_records`` or a staging table) by field name.

    Pass the result to :func:`key_is_excluded` so that each exclusion list is
    matched against its own ``match_field``. Only the fields ``table`` has are used.
    """
    return {name: table.c[name] for name in MATCH_FIELDS if name in table.c}


def _list_selector(
    exclusion_list_ids: Iterable[int] | None,
    exclusion_list_names: Iterable[str] | None,
    campaign_id: int | ColumnElement[int] | None,
    calling_list_id: int | ColumnElement[int] | None,
    lists: sa.FromClause,
) -> ColumnElement[bool]:
    given = [
        s
        for s in (exclusion_list_ids, exclusion_list_names, campaign_id, calling_list_id)
        if s is not None
    ]
    if len(given) != 1:
        raise ValueError(
            "give exactly one of exclusion_list_ids, exclusion_list_names, campaign_id, "
            "calling_list_id"
        )
    if exclusion_list_ids is not None:
        return lists.c.id.in_(list(exclusion_list_ids))
    if exclusion_list_names is not None:
        return lists.c.name.in_(list(exclusion_list_names))
    if campaign_id is not None:
        linked = sa.select(_campaign_exclusions.c.exclusion_list_id).where(
            _campaign_exclusions.c.campaign_id == campaign_id
        )
        return lists.c.id.in_(linked)
    # A list's records are dialled by every campaign it is enabled in, so every
    # exclusion list of those campaigns applies to them.
    linked = (
        sa.select(_campaign_exclusions.c.exclusion_list_id)
        .join(
            _campaign_lists,
            _campaign_lists.c.campaign_id == _campaign_exclusions.c.campaign_id,
        )
        .where(_campaign_lists.c.list_id == calling_list_id, _campaign_lists.c.enabled.is_(True))
        # Auto-correlation reaches only the enclosing EXISTS; a correlated
        # calling_list_id (e.g. list_records.list_id) lives two levels up.
        .correlate_except(_campaign_exclusions, _campaign_lists)
    )
    return lists.c.id.in_(linked)


def key_is_excluded(
    key: ColumnElement[Any] | Mapping[str, ColumnElement[Any]],
    *,
    now: datetime,
    exclusion_list_ids: Iterable[int] | None = None,
    exclusion_list_names: Iterable[str] | None = None,
    campaign_id: int | ColumnElement[int] | None = None,
    calling_list_id: int | ColumnElement[int] | None = None,
) -> ColumnElement[bool]:
    """An ``EXISTS`` expression: is ``key`` in an active, unexpired exclusion list?

    Give exactly one way of choosing the exclusion lists: their ids, their names,
    the campaign they are linked to, or a calling list (the exclusion lists of
    every campaign that has it enabled). Inactive lists and exclusions that
    expired at or before ``now`` have no effect. Case-insensitive lists compare
    with ``lower(key)``.

    Args:
        key: the value to look up, e.g. ``list_records.c.account``; or the record's
            columns by field name (see :func:`record_match_columns`), so that each
            list is matched against its own ``match_field``.
        now: the time the exclusions must still be valid at (aware, or naive UTC).
        exclusion_list_ids: the lists by id.
        exclusion_list_names: the lists by name (e.g. a list import's ``scrub_exclusions``).
        campaign_id: the lists linked to this campaign (a value or a correlated column).
        calling_list_id: the lists of the campaigns this calling list is enabled in.

    Returns:
        A boolean expression, correlated to ``key``'s table; negate it with ``~``.

    Example:
        ```python
        records = ListRecord.__table__
        stmt = sa.select(records.c.id).where(
            ~key_is_excluded(records.c.account, exclusion_list_names=["dnc"], now=now)
        )
        ```
    """
    exclusions = _exclusions.alias()
    lists = _lists.alias()
    if isinstance(key, Mapping):
        if not key:
            raise ValueError("key_is_excluded needs at least one record column")
        value: ColumnElement[Any] = sa.case(dict(key), value=lists.c.match_field, else_=None)
    else:
        value = key
    folded = sa.case((lists.c.case_sensitive.is_(True), value), else_=sa.func.lower(value))
    return (
        sa.exists()
        .where(
            lists.c.active.is_(True),
            _list_selector(
                exclusion_list_ids, exclusion_list_names, campaign_id, calling_list_id, lists
            ),
            exclusions.c.exclusion_list_id == lists.c.id,
            exclusions.c.key_value == folded,
            sa.or_(exclusions.c.expires_at.is_(None), exclusions.c.expires_at > now),
        )
        .correlate_except(exclusions, lists)
    )


def fold_keys(keys: pd.Series, case_sensitive: bool) -> pd.Series:
    """Keys as a list stores them: unchanged, or lower-cased for a case-insensitive list."""
    return keys if case_sensitive else keys.str.lower()


# --- parsing -----------------------------------------------------------------------


@dataclass
class ParsedKeys:
    """The keys of one exclusion file, ready to load.

    Attributes:
        keys: one row per distinct key: ``key_value`` (trimmed, folded if the list is
            case-insensitive) and ``expires_at`` (aware UTC, or missing for never).
        rows_read: data rows read.
        duplicates: rows whose key repeated an earlier row (ignored, not rejected).
        rejects: the rejected rows: ``row`` (1-based file row), ``reason``, ``value``.
    """

    keys: pd.DataFrame
    rows_read: int
    duplicates: int
    rejects: pd.DataFrame = field(
        default_factory=lambda: pd.DataFrame({"row": [], "reason": [], "value": []})
    )

    @property
    def rejects_by_reason(self) -> dict[str, int]:
        """Reason -> count of rejected rows."""
        counts = self.rejects["reason"].value_counts()
        return {str(k): int(v) for k, v in counts.items()}


def _parse_expiry(values: pd.Series, default: datetime | None) -> tuple[pd.Series, pd.Series]:
    """ISO dates or datetimes -> aware UTC expiries; returns (expiries, invalid mask).

    A date alone means the key is excluded through that day (UTC), so it expires
    at the next midnight. A blank value takes ``default``.
    """
    text = values.astype("string").str.strip()
    blank = text.isna() | (text == "")
    parsed = pd.to_datetime(text.where(~blank), errors="coerce", format="ISO8601", utc=True)
    date_only = text.str.fullmatch(r"\d{4}-\d{2}-\d{2}").fillna(False).astype(bool)
    parsed = parsed.where(~date_only, parsed + pd.Timedelta(days=1))
    invalid = ~blank & parsed.isna()
    if default is not None:
        parsed = parsed.where(~blank, pd.Timestamp(default).tz_convert(UTC))
    return parsed, invalid


def parse_exclusion_keys(
    frame: pd.DataFrame,
    *,
    key_column: str,
    case_sensitive: bool,
    now: datetime,
    expires_after_days: int | None,
    expiry_column: str | None = None,
    first_row: int = 2,
    file: str | None = None,
) -> ParsedKeys:
    """Turn the rows of an exclusion file into distinct keys and rejects.

    Keys are trimmed, then folded for a case-insensitive list. A blank key is
    rejected ``missing_key``; a key longer than 200 characters ``key_too_long``;
    an expiry that is not an ISO date ``invalid_expiry``. A key that repeats an
    earlier row is a duplicate: ignored (the first row wins) and counted.

    Args:
        frame: the file's rows as text; ``key_column`` (and ``expiry_column``) are
            the frame's own column names (already matched against the header).
        key_column: the column holding the keys.
        case_sensitive: whether the list keeps the keys' case.
        now: the import time; expiries count from it.
        expires_after_days: days from ``now`` until a key expires; None for never.
        expiry_column: a column of ISO dates (or datetimes) to take expiries from;
            a blank cell falls back to ``expires_after_days``.
        first_row: the file row number of the frame's first row (header = row 1).
        file: the file's name, for messages.

    Raises:
        InvalidFile: ``key_column`` or ``expiry_column`` is not in the frame.
    """
    for column in (key_column, expiry_column):
        if column is not None and column not in frame.columns:
            raise InvalidFile(f"no column {column!r} in the file", file=file, column=column)
    if now.tzinfo is None:
        now = now.replace(tzinfo=UTC)
    default = now + timedelta(days=expires_after_days) if expires_after_days is not None else None
    rows = pd.Series(range(first_row, first_row + len(frame)), index=frame.index)
    raw = frame[key_column].astype("string")
    keys = raw.str.strip()
    reasons = pd.Series(pd.NA, index=frame.index, dtype="string")
    reasons = reasons.mask(keys.isna() | (keys == ""), REJECT_MISSING_KEY)
    reasons = reasons.mask(reasons.isna() & (keys.str.len() > MAX_KEY_LENGTH), REJECT_KEY_TOO_LONG)
    if expiry_column is not None:
        expiry, invalid = _parse_expiry(frame[expiry_column], default)
        reasons = reasons.mask(reasons.isna() & invalid, REJECT_INVALID_EXPIRY)
    else:
        value = pd.Timestamp(default) if default is not None else pd.NaT
        expiry = pd.Series(value, index=frame.index, dtype="datetime64[us, UTC]")
    rejected = reasons.notna()
    rejects = pd.DataFrame(
        {"row": rows[rejected], "reason": reasons[rejected], "value": raw[rejected]}
    ).reset_index(drop=True)
    valid = pd.DataFrame(
        {"key_value": fold_keys(keys[~rejected], case_sensitive), "expires_at": expiry[~rejected]}
    )
    distinct = valid.drop_duplicates(subset="key_value", keep="first").reset_index(drop=True)
    return ParsedKeys(
        keys=distinct,
        rows_read=len(frame),
        duplicates=len(valid) - len(distinct),
        rejects=rejects,
    )


def merge_parsed(parts: Iterable[ParsedKeys]) -> ParsedKeys:
    """Combine the parsed chunks of one file; a key repeated across chunks is a duplicate."""
    parts = list(parts)
    if not parts:
        return ParsedKeys(
            keys=pd.DataFrame({"key_value": pd.Series([], dtype="string"), "expires_at": []}),
            rows_read=0,
            duplicates=0,
        )
    if len(parts) == 1:
        return parts[0]
    keys = pd.concat([p.keys for p in parts], ignore_index=True)
    distinct = keys.drop_duplicates(subset="key_value", keep="first").reset_index(drop=True)
    return ParsedKeys(
        keys=distinct,
        rows_read=sum(p.rows_read for p in parts),
        duplicates=sum(p.duplicates for p in parts) + len(keys) - len(distinct),
        rejects=pd.concat([p.rejects for p in parts], ignore_index=True),
    )
