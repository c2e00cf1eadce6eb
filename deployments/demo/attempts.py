"""Demo call attempts: realistic campaign results for the demo, the tests and the benchmarks.

Not part of the product's data path: ``cctasks up`` seeds the demo centre with them
(:mod:`deployments.demo.seed`), and the tests and ``bench/results_export.py`` fill
``call_attempts`` with them.
"""

from __future__ import annotations

import math
import random
import uuid
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from contact_center.exceptions import CampaignStateError, InvalidParameter
from contact_center.parsing.record_fields import PHONE_FIELDS
from contact_center.storage.bulk import bulk_insert, is_postgresql
from contact_center.storage.campaigns import get_campaign
from contact_center.storage.db import sqlite_timestamp, transaction
from contact_center.storage.models import CallingList, CampaignList, ListRecord
from contact_center.storage.results_format import ATTEMPT_FIELDS

__all__ = ["GENERATE_BATCH_ROWS", "generate_call_attempts"]

#: Rows written per transaction batch by :func:`generate_call_attempts`.
GENERATE_BATCH_ROWS = 50_000

_records = cast(sa.Table, ListRecord.__table__)
_lists = cast(sa.Table, CallingList.__table__)
_campaign_lists = cast(sa.Table, CampaignList.__table__)

# (call disposition, code, record disposition, code, completed, call note, action, agent?, weight)
_DIALLED_OUTCOMES: tuple[tuple[str, str, str, str, bool, str | None, str, bool, int], ...] = (
    (
        "No Answer",
        "NA",
        "No Answer",
        "NA",
        False,
        "SIP 480 Temporarily Unavailable",
        "Reschedule",
        False,
        30,
    ),
    ("Busy", "B", "Busy", "B", False, "SIP 486 Busy Here", "Reschedule", False, 10),
    (
        "Answering Machine",
        "AM",
        "Answering Machine",
        "AM",
        False,
        "CPA: answering machine",
        "Reschedule",
        False,
        15,
    ),
    ("Connected", "CON", "Sale", "SALE", True, "CPA: human", "Complete", True, 8),
    ("Connected", "CON", "Not Interested", "NI", True, "CPA: human", "Complete", True, 15),
    ("Connected", "CON", "Callback Requested", "CB", False, "CPA: human", "Callback", True, 6),
    ("Connected", "CON", "Do Not Call", "DNC", True, "CPA: human", "Add to DNC", True, 2),
    ("Connected", "CON", "Wrong Number", "WN", True, "CPA: human", "Complete", True, 3),
    ("Fax", "FAX", "Fax", "FAX", False, "CPA: fax tone", "Try next phone", False, 3),
    (
        "Invalid Number",
        "SIT",
        "Invalid Number",
        "SIT",
        True,
        "SIP 404 Not Found; SIT tone",
        "Try next phone",
        False,
        4,
    ),
    (
        "Abandoned",
        "ABD",
        "Abandoned",
        "ABD",
        False,
        "No agent within 2 s; message played",
        "Reschedule",
        False,
        2,
    ),
)
_AGENTS = tuple(
    f"{first}.{last}"
    for first, last in (
        ("ana", "lopez"),
        ("ben", "okafor"),
        ("chen", "wei"),
        ("dara", "singh"),
        ("eli", "cohen"),
        ("fatima", "haddad"),
        ("gus", "novak"),
        ("hana", "sato"),
    )
)
_GENERATED_COLUMNS = ("campaign_id", "list_id", "record_id", "record_key", *ATTEMPT_FIELDS)


def _campaign_records(conn: Connection, campaign_id: int, lists: Sequence[str] | None) -> list[Any]:
    query = sa.select(
        _records.c.id,
        _records.c.list_id,
        _records.c.record_key,
        *(_records.c[p] for p in PHONE_FIELDS[:3]),
    ).order_by(_records.c.id)
    if lists is None:
        linked = sa.select(_campaign_lists.c.list_id).where(
            _campaign_lists.c.campaign_id == campaign_id
        )
        query = query.where(_records.c.list_id.in_(linked))
    else:
        query = query.join(_lists, _lists.c.id == _records.c.list_id).where(
            _lists.c.name.in_(list(lists))
        )
    return list(conn.execute(query))


def _generated_row(
    rng: random.Random,
    campaign_id: int,
    record: Any,
    attempted_at: datetime,
    end: datetime,
    excluded_ratio: float,
    out_of_quota_ratio: float,
    late_ratio: float,
    timestamp: Callable[[datetime], Any],
) -> tuple[Any, ...]:
    phones = [p for p in record[3:] if p]
    phone = rng.choice(phones) if phones else None
    draw = rng.random()
    if draw < excluded_ratio:
        dialled = False
        fields: tuple[str, str, str, str, bool, str | None, str, bool, bool] = (
            "",
            "",
            "Excluded",
            "EXCL",
            True,
            "Matched an exclusion list",
            "Not dialled (excluded)",
            False,
            False,
        )
    elif draw < excluded_ratio + out_of_quota_ratio:
        dialled = False
        fields = (
            "",
            "",
            "Out of quota",
            "QUOTA",
            False,
            "Campaign quota reached",
            "Not dialled (quota)",
            False,
            True,
        )
    else:
        dialled = True
        outcome = rng.choices(_DIALLED_OUTCOMES, weights=[o[-1] for o in _DIALLED_OUTCOMES])[0]
        fields = (*outcome[:8], False)
    call_disp, call_code, rec_disp, rec_code, completed, note, action, has_agent, quota = fields
    delay = timedelta(seconds=rng.uniform(5, 300) if dialled else rng.uniform(0.01, 0.5))
    if rng.random() < late_ratio:
        delay += timedelta(minutes=rng.uniform(10, 120))
    return (
        campaign_id,
        record.list_id,
        record.id,
        record.record_key,
        phone,
        timestamp(attempted_at),
        timestamp(min(attempted_at + delay, end)),
        dialled,
        completed,
        rec_disp,
        rec_code,
        call_disp or None,
        call_code or None,
        quota,
        note,
        str(uuid.UUID(int=rng.getrandbits(128), version=4)) if dialled else None,
        action,
        rng.choice(_AGENTS) if has_agent else None,
    )


def generate_call_attempts(
    bind: Connection | Engine,
    campaign_name: str,
    *,
    count: int,
    seed: int = 0,
    start: datetime,
    end: datetime,
    lists: Sequence[str] | None = None,
    excluded_ratio: float = 0.03,
    out_of_quota_ratio: float = 0.02,
    late_ratio: float = 0.01,
) -> int:
    """Write ``count`` realistic campaign results for the demo, tests and benchmarks.

    Each row picks a record of the campaign's linked lists (or of ``lists``) at
    random and an ``attempted_at`` spread evenly over ``[start, end)``; ids grow with
    time. Most rows are dialled attempts with a weighted mix of dispositions (no
    answer, busy, answering machine, connected with sale / not interested /
    callback / do-not-call / wrong number, fax, invalid number, abandoned), SIP and
    CPA codes in the call note, an agent for connected calls and a global
    interaction id. ``excluded_ratio`` of them were not dialled because the record
    matched an exclusion list, and ``out_of_quota_ratio`` because of the quota.
    ``recorded_at`` follows ``attempted_at`` by the call's length; ``late_ratio`` of
    the rows are written 10 to 120 minutes late (never after ``end``).

    The same arguments on the same records write the same rows.

    Args:
        bind: an engine (one transaction) or a connection (the caller's transaction).
        campaign_name: an existing campaign.
        count: how many rows to write.
        seed: the random seed.
        start: the first attempt time (aware; naive means UTC).
        end: the end of the attempt times (exclusive).
        lists: the calling lists to pick records from; default the campaign's lists.
        excluded_ratio: the share not dialled because of an exclusion match.
        out_of_quota_ratio: the share not dialled because of the quota.
        late_ratio: the share written late.

    Returns:
        The number of rows written.

    Raises:
        ObjectNotFound: no such campaign.
        CampaignStateError: the lists hold no records to attempt.
        InvalidParameter: a negative count, ``end`` not after ``start``, bad ratios.
    """
    if count < 0:
        raise InvalidParameter(f"count must not be negative, not {count}")
    start = start.replace(tzinfo=UTC) if start.tzinfo is None else start.astimezone(UTC)
    end = end.replace(tzinfo=UTC) if end.tzinfo is None else end.astimezone(UTC)
    if end <= start:
        raise InvalidParameter(f"end {end.isoformat()} must be after start {start.isoformat()}")
    if min(excluded_ratio, out_of_quota_ratio, late_ratio) < 0 or (
        excluded_ratio + out_of_quota_ratio > 1
    ):
        raise InvalidParameter("the ratios must be between 0 and 1 and sum to at most 1")
    rng = random.Random(seed)
    with transaction(bind) as conn:
        campaign = get_campaign(conn, campaign_name)
        records = _campaign_records(conn, campaign.id, lists)
        if count and not records:
            raise CampaignStateError(
                f"campaign {campaign_name!r} has no records to attempt; "
                "link a calling list with records first"
            )
        # The bulk path bypasses SQLAlchemy's types: SQLite wants the models' text form.
        timestamp: Callable[[datetime], Any] = (
            (lambda value: value) if is_postgresql(conn) else sqlite_timestamp
        )
        span = (end - start).total_seconds()
        batches = max(1, math.ceil(count / GENERATE_BATCH_ROWS))
        written = 0
        for batch in range(batches):
            size = count // batches + (1 if batch < count % batches else 0)
            # Each batch covers its own slice of time, sorted, so ids grow with time.
            low, high = span * batch / batches, span * (batch + 1) / batches
            offsets = sorted(rng.uniform(low, high) for _ in range(size))
            rows = [
                _generated_row(
                    rng,
                    campaign.id,
                    rng.choice(records),
                    start + timedelta(seconds=min(offset, span - 1e-6)),
                    end,
                    excluded_ratio,
                    out_of_quota_ratio,
                    late_ratio,
                    timestamp,
                )
                for offset in offsets
            ]
            written += bulk_insert(conn, "call_attempts", _GENERATED_COLUMNS, rows)
    return written
