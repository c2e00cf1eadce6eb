"""The campaign domain: seeding helpers, start/stop with audit, the start check, holidays."""

from __future__ import annotations

import threading
from datetime import UTC, date, datetime

import pytest
import sqlalchemy as sa

from contact_center.exceptions import CampaignStateError, InvalidParameter, ObjectNotFound
from contact_center.storage.campaign_rules import (
    RESULT_ALREADY_RUNNING,
    RESULT_ALREADY_STOPPED,
    RESULT_STARTED,
    RESULT_STOPPED,
    notification_payload,
    parse_holiday_region,
    parse_skip_dates,
    skip_reason,
)
from contact_center.storage.campaign_steps import (
    apply_campaign_step,
    campaign_events,
    mark_notified,
    record_skip,
)
from contact_center.storage.campaigns import (
    check_start,
    ensure_campaign,
    get_campaign,
    link_exclusion_list,
    link_list,
    set_list_enabled,
)
from contact_center.storage.models import CallingList, Exclusion, ExclusionList, ListRecord

NY = "America/New_York"


def add_records(engine: sa.Engine, list_name: str, accounts: list[str]) -> None:
    """Insert records into an existing calling list (as an import would)."""
    with engine.begin() as conn:
        list_id = conn.execute(
            sa.select(CallingList.id).where(CallingList.name == list_name)
        ).scalar_one()
        conn.execute(
            sa.insert(ListRecord),
            [{"list_id": list_id, "record_key": a, "account": a} for a in accounts],
        )


def add_exclusions(engine: sa.Engine, exclusion_list: str, keys: list[str]) -> None:
    """Insert Do-Not-Call keys into an existing exclusion list."""
    with engine.begin() as conn:
        list_id = conn.execute(
            sa.select(ExclusionList.id).where(ExclusionList.name == exclusion_list)
        ).scalar_one()
        conn.execute(
            sa.insert(Exclusion), [{"exclusion_list_id": list_id, "key_value": k} for k in keys]
        )


# --- pure ------------------------------------------------------------------------------


def test_skip_reason_reads_the_date_in_the_campaigns_time_zone() -> None:
    christmas = frozenset({date(2026, 12, 25)})
    # 20:00 on the 24th in New York is already the 25th in UTC: not skipped.
    eve_stop = datetime(2026, 12, 25, 1, 0, tzinfo=UTC)
    assert skip_reason(eve_stop, NY, skip_dates=christmas) is None
    assert skip_reason(eve_stop, "UTC", skip_dates=christmas) == "2026-12-25 is in skip_dates"
    # 08:00 on the 25th in New York is 13:00 UTC.
    start = datetime(2026, 12, 25, 13, 0, tzinfo=UTC)
    assert skip_reason(start, NY, skip_dates=christmas) == "2026-12-25 is in skip_dates"


def test_skip_reason_public_holidays_by_country_and_subdivision() -> None:
    observed = datetime(2026, 7, 3, 12, 0, tzinfo=UTC)  # July 4th is a Saturday
    reason = skip_reason(observed, NY, holiday_region=("US", None))
    assert reason == "2026-07-03 is a holiday in US: Independence Day (observed)"
    assert (
        skip_reason(datetime(2026, 7, 2, 12, tzinfo=UTC), NY, holiday_region=("US", None)) is None
    )
    lincoln = datetime(2026, 2, 12, 13, 0, tzinfo=UTC)  # a New York state holiday
    assert skip_reason(lincoln, NY, holiday_region=parse_holiday_region("US")) is None
    assert "Lincoln's Birthday" in (
        skip_reason(lincoln, NY, holiday_region=parse_holiday_region("us-ny")) or ""
    )


@pytest.mark.parametrize(
    "code, match",
    [("XX", "unknown country 'XX'"), ("US-ZZ", "US has no subdivision 'ZZ'")],
)
def test_holiday_region_refuses_unknown_codes(code: str, match: str) -> None:
    with pytest.raises(InvalidParameter, match=match):
        parse_holiday_region(code)


def test_parse_skip_dates() -> None:
    assert parse_skip_dates(["2026-12-24", date(2026, 12, 31)]) == {
        date(2026, 12, 24),
        date(2026, 12, 31),
    }
    assert parse_skip_dates(None) == frozenset()
    with pytest.raises(InvalidParameter, match="'24/12/2026' is not an ISO date"):
        parse_skip_dates(["24/12/2026"])
    with pytest.raises(InvalidParameter, match="list of ISO dates"):
        parse_skip_dates("2026-12-24")


# --- database -----------------------------------------------------------------------------


def test_ensure_and_link_are_idempotent(engine: sa.Engine) -> None:
    first = ensure_campaign(engine, "Spring Sale", time_zone=NY)
    again = ensure_campaign(engine, "Spring Sale", time_zone=NY)
    assert first == again and first.state == "stopped" and first.time_zone == NY
    link_list(engine, "Spring Sale", "Spring Leads")
    link_list(engine, "Spring Sale", "Spring Leads")
    link_exclusion_list(engine, "Spring Sale", "Company DNC")
    link_exclusion_list(engine, "Spring Sale", "Company DNC")
    with engine.connect() as conn:
        assert conn.execute(sa.text("select count(*) from campaign_lists")).scalar_one() == 1
        assert conn.execute(sa.text("select count(*) from calling_lists")).scalar_one() == 1
        assert (
            conn.execute(sa.text("select count(*) from campaign_exclusion_lists")).scalar_one() == 1
        )
    with pytest.raises(InvalidParameter, match="'Mars/Olympus' is not an IANA time zone"):
        ensure_campaign(engine, "Other", time_zone="Mars/Olympus")
    with pytest.raises(ObjectNotFound, match="campaign 'Nope' does not exist"):
        link_list(engine, "Nope", "Spring Leads")
    with pytest.raises(ObjectNotFound, match="'Autumn' is not linked"):
        set_list_enabled(engine, "Spring Sale", "Autumn", False)


def test_start_stop_repeat_and_audit(engine: sa.Engine) -> None:
    ensure_campaign(engine, "Spring Sale", time_zone=NY)
    steps = [
        ("start", "schedule", RESULT_STARTED, "running"),
        ("start", "manual", RESULT_ALREADY_RUNNING, "running"),
        ("stop", "api", RESULT_STOPPED, "stopped"),
        ("stop", "schedule", RESULT_ALREADY_STOPPED, "stopped"),
    ]
    with engine.connect() as conn:
        for i, (step, source, result, state) in enumerate(steps):
            done = apply_campaign_step(
                conn, "Spring Sale", step, source=source, flow_run_id=f"run-{i}"
            )
            assert (done.result, done.state) == (result, state)
            assert get_campaign(conn, "Spring Sale").state == state
        events = campaign_events(conn, "Spring Sale")
    assert [(e.action, e.source, e.result, e.flow_run_id, e.notified) for e in events] == [
        ("start", "schedule", "started", "run-0", None),
        ("start", "manual", "already running", "run-1", None),
        ("stop", "api", "stopped", "run-2", None),
        ("stop", "schedule", "already stopped", "run-3", None),
    ]
    assert all(e.occurred_at.tzinfo is not None for e in events)
    assert events[0].occurred_at <= events[-1].occurred_at
    with engine.connect() as conn, pytest.raises(ObjectNotFound, match="'Nope'"):
        apply_campaign_step(conn, "Nope", "start")
    with engine.connect() as conn, pytest.raises(InvalidParameter, match="'pause'"):
        apply_campaign_step(conn, "Spring Sale", "pause")


def test_undelivered_change_is_notified_again_on_repeat(engine: sa.Engine) -> None:
    ensure_campaign(engine, "Spring Sale")
    with engine.connect() as conn:
        first = apply_campaign_step(conn, "Spring Sale", "start", notify=True)
        assert first.notify and first.changed
        assert notification_payload(first) == {
            "campaign": "Spring Sale",
            "step": "start",
            "time": first.occurred_at.isoformat(),
            "state": "running",
        }
        # The dialler never got it: a repeat tells it again.
        again = apply_campaign_step(conn, "Spring Sale", "start", notify=True)
        assert again.notify and not again.changed
        mark_notified(conn, again.event_id, True)
        third = apply_campaign_step(conn, "Spring Sale", "start", notify=True)
        assert not third.notify
        assert [e.notified for e in campaign_events(conn, "Spring Sale")] == [False, True, None]


def test_skip_changes_nothing_but_is_recorded(engine: sa.Engine) -> None:
    ensure_campaign(engine, "Spring Sale", state="running")
    with engine.connect() as conn:
        skipped = record_skip(conn, "Spring Sale", "stop", reason="2026-07-03 is a holiday")
        assert (skipped.previous_state, skipped.state) == ("running", "running")
        assert get_campaign(conn, "Spring Sale").state == "running"
        (event,) = campaign_events(conn, "Spring Sale")
    assert (event.result, event.message) == ("skipped (holiday)", "2026-07-03 is a holiday")


def test_concurrent_starts_change_the_state_once(engine: sa.Engine) -> None:
    ensure_campaign(engine, "Spring Sale")
    barrier = threading.Barrier(4)
    results: list[str] = []
    errors: list[BaseException] = []

    def trigger() -> None:
        try:
            with engine.connect() as conn:
                barrier.wait()
                results.append(apply_campaign_step(conn, "Spring Sale", "start").result)
        except BaseException as exc:  # collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=trigger) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert sorted(results) == ["already running"] * 3 + ["started"]


def test_start_needs_an_enabled_list_with_dialable_records(engine: sa.Engine) -> None:
    ensure_campaign(engine, "Spring Sale", time_zone=NY)
    with (
        engine.connect() as conn,
        pytest.raises(CampaignStateError, match="it has no calling lists"),
    ):
        check_start(conn, "Spring Sale")
    link_list(engine, "Spring Sale", "Spring Leads")
    with (
        engine.connect() as conn,
        pytest.raises(
            CampaignStateError,
            match=r"no enabled calling list has dialable records "
            r"\(lists: Spring Leads \(0 dialable\)\)",
        ),
    ):
        check_start(conn, "Spring Sale")
    with engine.connect() as conn:
        assert check_start(conn, "Spring Sale", allow_empty=True)[0].dialable == 0
    add_records(engine, "Spring Leads", ["A1", "A2"])
    with engine.connect() as conn:
        (ready,) = check_start(conn, "Spring Sale")
    assert (ready.list_name, ready.enabled, ready.dialable) == ("Spring Leads", True, 2)
    # Every record on the campaign's Do-Not-Call list: nothing left to dial.
    link_exclusion_list(engine, "Spring Sale", "Company DNC")
    add_exclusions(engine, "Company DNC", ["A1", "A2"])
    with (
        engine.connect() as conn,
        pytest.raises(CampaignStateError, match=r"Spring Leads \(0 dialable\)"),
    ):
        check_start(conn, "Spring Sale")
    # A disabled list does not count, however many records it has.
    link_list(engine, "Spring Sale", "Old Leads", enabled=False)
    add_records(engine, "Old Leads", ["B1"])
    with (
        engine.connect() as conn,
        pytest.raises(CampaignStateError, match=r"Old Leads \(disabled\)"),
    ):
        check_start(conn, "Spring Sale")
    set_list_enabled(engine, "Spring Sale", "Old Leads", True)
    with engine.connect() as conn:
        ready_lists = check_start(conn, "Spring Sale")
    assert [(r.list_name, r.dialable) for r in ready_lists] == [
        ("Old Leads", 1),
        ("Spring Leads", 0),
    ]
    with engine.connect() as conn, pytest.raises(ObjectNotFound, match="'Nope'"):
        check_start(conn, "Nope")
