"""Large results on SQLite and PostgreSQL: an export streams its rows without holding
them, and the demo's generator of call attempts is realistic, repeatable and refuses bad
input."""

from __future__ import annotations

import io
import tracemalloc
from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from support.results_support import CAMPAIGN, T0, seed_list

from contact_center.exceptions import CampaignStateError, InvalidParameter, ObjectNotFound
from contact_center.storage.campaigns import get_campaign
from contact_center.storage.models import CallAttempt
from contact_center.storage.results_query import export_query, header, write_export
from deployments.demo.attempts import generate_call_attempts

# --- streaming ------------------------------------------------------------------------------


def test_export_streams_without_holding_the_rows(engine: sa.Engine) -> None:
    seed_list(
        engine,
        [
            {
                "account": f"R{i}",
                "phone1": f"+1212555{i:04d}",
                "custom_fields": {"tier": "gold", "segment": f"s{i % 7}"},
            }
            for i in range(500)
        ],
    )
    generate_call_attempts(
        engine, CAMPAIGN, count=40_000, seed=3, start=T0, end=T0 + timedelta(days=1)
    )
    with engine.connect() as conn:
        campaign_id = get_campaign(conn, CAMPAIGN).id
        query = export_query(
            conn.dialect.name,
            format="detailed",
            campaign_id=campaign_id,
            start=T0,
            end=T0 + timedelta(days=2),
            custom_keys=["segment", "tier"],
        )
        sink = io.BytesIO()
        tracemalloc.start()
        try:
            rows = write_export(conn, query, header("detailed", ["segment", "tier"]), _Discard())
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        write_export(conn, query, header("detailed", ["segment", "tier"]), sink)
    assert rows == 40_000
    size = len(sink.getvalue())
    # Holding every row as Python objects would take several times the CSV's size.
    assert size > 8_000_000 and peak < size / 2, (size, peak)


class _Discard(io.RawIOBase):
    """A binary sink that keeps nothing, to measure what the export itself holds."""

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        return len(data)


# --- the generator ------------------------------------------------------------------------


def test_generate_call_attempts_is_realistic_and_repeatable(engine: sa.Engine) -> None:
    seed_list(engine, [{"account": f"G{i}", "phone1": f"+1312555{i:04d}"} for i in range(50)])
    end = T0 + timedelta(days=1)
    assert generate_call_attempts(engine, CAMPAIGN, count=3000, seed=7, start=T0, end=end) == 3000
    with engine.connect() as conn:
        rows = conn.execute(sa.select(CallAttempt.__table__).order_by(CallAttempt.id)).all()
    assert len(rows) == 3000
    assert all(T0 <= r.attempted_at < end and r.attempted_at <= r.recorded_at <= end for r in rows)
    assert [r.attempted_at for r in rows] == sorted(r.attempted_at for r in rows)
    excluded = [r for r in rows if r.record_disposition == "Excluded"]
    quota = [r for r in rows if r.out_of_quota]
    assert 40 < len(excluded) < 150 and 20 < len(quota) < 110
    assert not any(r.is_call_attempt or r.global_interaction_id for r in excluded + quota)
    dialled = [r for r in rows if r.is_call_attempt]
    assert {r.call_disposition for r in dialled} >= {"No Answer", "Busy", "Connected"}
    assert all(r.agent for r in dialled if r.call_disposition == "Connected")
    assert all(r.phone and r.phone.startswith("+1312555") for r in dialled)
    assert any(r.recorded_at - r.attempted_at > timedelta(minutes=10) for r in rows)
    # Same seed, same rows (ids aside).
    with engine.begin() as conn:
        conn.execute(sa.delete(CallAttempt))
    generate_call_attempts(engine, CAMPAIGN, count=3000, seed=7, start=T0, end=end)
    with engine.connect() as conn:
        again = conn.execute(sa.select(CallAttempt.__table__).order_by(CallAttempt.id)).all()
    assert [(r.record_key, r.attempted_at, r.call_disposition) for r in again] == [
        (r.record_key, r.attempted_at, r.call_disposition) for r in rows
    ]


def test_generate_call_attempts_refuses_bad_input(engine: sa.Engine) -> None:
    with pytest.raises(ObjectNotFound, match="'Nope'"):
        generate_call_attempts(engine, "Nope", count=1, start=T0, end=T0 + timedelta(hours=1))
    seed_list(engine, [])
    with pytest.raises(CampaignStateError, match="no records to attempt"):
        generate_call_attempts(engine, CAMPAIGN, count=1, start=T0, end=T0 + timedelta(hours=1))
    with pytest.raises(InvalidParameter, match="must be after start"):
        generate_call_attempts(engine, CAMPAIGN, count=1, start=T0, end=T0)
