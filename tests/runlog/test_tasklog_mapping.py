"""The pure mapping of the views: formats, states, results, errors, time filters, columns."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from contact_center.exceptions import InvalidParameter
from runlog.mapping import (
    FLOW_TYPES,
    SCHEDULED_COLUMNS,
    error_of,
    format_duration,
    format_size_kb,
    normalise_column,
    object_wait_of,
    parse_horizon,
    parse_time,
    redact,
    resolve_types,
    result_of,
    run_duration,
    scheduled_state_of,
    size_kb,
)
from runlog.text import clean


@pytest.mark.parametrize(
    "seconds, text",
    [(0, "00:00"), (59.9, "00:59"), (61, "01:01"), (3599, "59:59"), (75 * 60 + 3, "75:03")],
)
def test_duration_is_mm_ss_and_minutes_keep_counting(seconds: float, text: str) -> None:
    assert format_duration(timedelta(seconds=seconds)) == text
    assert format_duration(None) == ""


def test_size_is_kb_with_one_decimal() -> None:
    assert size_kb(1536) == 1.5
    assert size_kb(0) == 0.0
    assert size_kb(None) is None
    assert format_size_kb(size_kb(131_072_000)) == "128000.0"
    assert format_size_kb(size_kb(100)) == "0.1"
    assert format_size_kb(None) == ""


def test_skipped_runs_and_retries_say_so() -> None:
    assert result_of("COMPLETED", "Skipped") == "completed (skipped)"
    assert result_of("COMPLETED", "Completed") == "completed"
    reason = "leads.csv is the same file as the last import (sha256 0f1e…); skipped"
    assert error_of("COMPLETED", "Skipped", reason) == reason
    first = "SourceUnavailable: sftp://drop/in/leads.csv: no such file"
    assert (
        error_of("COMPLETED", "Completed", "All states completed.", 3, first)
        == f"completed after 3 attempts (first: {first})"
    )
    assert error_of("COMPLETED", "Completed", None, 2) == "completed after 2 attempts"
    assert (
        error_of("FAILED", "Failed", f"Flow run encountered an exception: {first}", 3)
        == f"{first} (after 3 attempts)"
    )
    assert error_of("COMPLETED", "Completed", "ok", 1, first) == ""


def test_every_ended_run_has_a_duration() -> None:
    start = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)
    assert run_duration(start, start + timedelta(seconds=75)) == timedelta(seconds=75)
    assert run_duration(None, start) == timedelta(0)  # ended before it started
    assert run_duration(start, None) is None


@pytest.mark.parametrize(
    "raw, shown",
    [
        ("\x1b[2J\x1b[31mSpring Leads\x1b[0m", "Spring Leads"),
        ("Spring\x1b]0;owned\x07 Leads", "Spring Leads"),
        ("line\none\ttab", "line one tab"),
        ("nul\x00 bell\x07 del\x7f c1\x9b31m", "nul bell del c1"),
        ("abc\u202edcba", "abcdcba"),
        ("Zoë · import [red]x[/]", "Zoë · import [red]x[/]"),
    ],
)
def test_control_characters_are_dropped(raw: str, shown: str) -> None:
    assert clean(raw) == shown
    assert error_of("FAILED", "Failed", raw) == shown


def test_results_and_errors() -> None:
    assert [result_of(t) for t in ("COMPLETED", "FAILED", "CRASHED", "CANCELLED")] == [
        "completed",
        "failed",
        "failed",
        "failed",
    ]
    assert error_of("COMPLETED", "Completed", "All states completed.") == ""
    assert (
        error_of("FAILED", "Failed", "Flow run encountered an exception: InvalidFile: bad row 7")
        == "InvalidFile: bad row 7"
    )
    assert error_of("CRASHED", "Crashed", "exit code 137") == "Crashed: exit code 137"
    assert error_of("CANCELLED", "Cancelled", None) == "Cancelled"
    assert error_of("FAILED", "Failed", "line one\n  line two") == "line one line two"


@pytest.mark.parametrize(
    "text, expected",
    [
        ("fetch sftp://bob:hunter2@h/x failed", "fetch sftp://bob:***@h/x failed"),
        ("postgresql+psycopg://app:s3cr%40t@db:5432/cc", "postgresql+psycopg://app:***@db:5432/cc"),
        ("https://:token@host/", "https://:***@host/"),
        ("no url here: a@b", "no url here: a@b"),
        ("sftp://partner-drop/in/a.csv", "sftp://partner-drop/in/a.csv"),
    ],
)
def test_redact_url_passwords(text: str, expected: str) -> None:
    assert redact(text) == expected
    assert "hunter2" not in error_of("FAILED", "Failed", "x sftp://bob:hunter2@h/x")


def test_scheduled_states() -> None:
    # Issue 14: the states are lower case, like the Results, and say what waits.
    cases = {
        ("SCHEDULED", "Scheduled"): "scheduled",
        ("SCHEDULED", "Late"): "late",
        ("SCHEDULED", "AwaitingConcurrencySlot"): "waiting",
        ("SCHEDULED", "AwaitingRetry"): "retrying",
        ("PENDING", "Pending"): "pending",
        ("RUNNING", "Running"): "in progress",
        ("RUNNING", "Retrying"): "retrying",
        ("PAUSED", "Paused"): "paused",
        ("PAUSED", "Suspended"): "paused",
        ("CANCELLING", "Cancelling"): "in progress",
    }
    for (state_type, name), expected in cases.items():
        assert scheduled_state_of(state_type, name) == expected


def test_a_running_run_that_waits_for_its_object_is_waiting() -> None:
    assert object_wait_of("in progress", "waits for list Spring Leads") == (
        "waits for list Spring Leads"
    )
    # Once the run holds the slot it rewrites the artifact: in progress again.
    assert object_wait_of("in progress", "took the slot of list Spring Leads after 3.0 s") is None
    assert object_wait_of("in progress", "Spring Leads · import: load") is None
    assert object_wait_of("in progress", None) is None
    # A retrying run stays retrying.
    assert object_wait_of("retrying", "waits for list Spring Leads") is None
    assert object_wait_of("in progress", "waits for list A\nB\x1b[31m") == "waits for list A B"


def test_types_resolve_from_labels_or_flow_names() -> None:
    assert resolve_types(["campaign trigger", "run-report"]) == ["campaign-trigger", "run-report"]
    assert resolve_types(["Import exclusions by account"]) == ["import-exclusions"]
    with pytest.raises(InvalidParameter, match=r"unknown type 'dialler'; valid types: 'Calling"):
        resolve_types(["dialler"])
    assert {t.label for t in FLOW_TYPES.values()} == {
        "Calling list import",
        "Import exclusions by account",
        "Campaign trigger",
        "Campaign results export",
        "Report execution",
    }


@pytest.mark.parametrize(
    "given, key",
    [
        ("start_time", "start_time"),
        ("Start time", "start_time"),
        ("end", "end_time"),
        ("Size (KB)", "size_kb"),
        ("size", "size_kb"),
        ("object", "object_name"),
        ("Task name", "task_name"),
        ("DURATION", "duration"),
        ("error", "error"),
    ],
)
def test_columns_by_key_header_or_alias(given: str, key: str) -> None:
    assert normalise_column(given) == key


def test_unknown_column_lists_valid_ones() -> None:
    with pytest.raises(
        InvalidParameter, match=r"unknown column 'colour'; valid columns: start_time"
    ):
        normalise_column("colour")
    assert normalise_column("Number of attempts", SCHEDULED_COLUMNS) == "attempts"


def test_time_filters() -> None:
    now = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)
    assert parse_time("24h", now) == datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
    assert parse_time("7d", now) == datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
    assert parse_time("90m", now) == datetime(2026, 11, 29, 10, 30, tzinfo=UTC)
    assert parse_time("2026-11-29T06:00", now, utc=True) == datetime(2026, 11, 29, 6, tzinfo=UTC)
    assert parse_time("2026-11-29T06:00+02:00", now) == datetime(2026, 11, 29, 4, tzinfo=UTC)
    local = parse_time("2026-11-29T06:00", now)
    assert local == datetime(2026, 11, 29, 6).astimezone().astimezone(UTC)
    centre = parse_time("2026-11-29T06:00", now, zone=ZoneInfo("America/New_York"))
    assert centre == datetime(2026, 11, 29, 11, tzinfo=UTC)
    assert parse_horizon("24h") == timedelta(hours=24)
    with pytest.raises(InvalidParameter, match=r"bad time 'yesterday'; use an ISO time"):
        parse_time("yesterday", now)
    with pytest.raises(InvalidParameter, match=r"bad time span '1 fortnight'"):
        parse_horizon("1 fortnight")


def test_the_centre_time_zone_is_a_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    from tasklog.zones import display_zone

    winter = datetime(2026, 1, 15, 12, tzinfo=UTC)
    monkeypatch.setenv("CCTASKS_TIME_ZONE", "America/New_York")
    zone = display_zone()
    assert zone.convert(winter).hour == 7
    assert zone.label(winter) == "times in America/New_York (EST)"
    assert display_zone(utc=True).label(winter) == "times in UTC"
    monkeypatch.delenv("CCTASKS_TIME_ZONE")
    assert display_zone().convert(winter) == winter.astimezone()
    monkeypatch.setenv("CCTASKS_TIME_ZONE", "Mars/Olympus")
    with pytest.raises(InvalidParameter, match=r"CCTASKS_TIME_ZONE 'Mars/Olympus' is not a"):
        display_zone()
