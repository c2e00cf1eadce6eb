"""The results rules that need no database: ``since`` windows and times, export file
names, and formula neutralisation with the custom column names."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from contact_center.exceptions import InvalidParameter
from contact_center.storage.export_naming import DEFAULT_FILE_NAME, render_file_name
from contact_center.storage.results_format import (
    Since,
    custom_columns,
    neutralise,
    parse_since,
    parse_time,
)
from contact_center.storage.results_query import header


def test_parse_since_and_times() -> None:
    assert parse_since("last") == Since("last")
    window = parse_since("2026-11-01T00:00/2026-11-02T00:00")
    assert (window.mode, window.start, window.end) == (
        "window",
        datetime(2026, 11, 1, tzinfo=UTC),
        datetime(2026, 11, 2, tzinfo=UTC),
    )
    assert parse_time("2026-11-01T00:00-05:00", "x") == datetime(2026, 11, 1, 5, tzinfo=UTC)
    assert parse_time("2026-11-01T00:00Z", "x") == datetime(2026, 11, 1, tzinfo=UTC)
    for bad, match in [
        ("yesterday", "must be 'last' or a window"),
        ("2026-11-02/2026-11-01", "end must be after the start"),
        ("2026-13-01/2026-11-02", "not an ISO 8601 time"),
        ("", "since must be"),
    ]:
        with pytest.raises(InvalidParameter, match=match):
            parse_since(bad)


def test_file_names_are_stable_and_safe() -> None:
    start, end = datetime(2026, 11, 1, tzinfo=UTC), datetime(2026, 11, 1, 6, 30, tzinfo=UTC)
    name = render_file_name(
        DEFAULT_FILE_NAME,
        campaign="Spring Sale",
        start=start,
        end=end,
        format="simple",
        export_id=7,
    )
    assert name == "Spring Sale_20261101000000_20261101063000_7.csv"
    assert (
        render_file_name(
            "{campaign}-{format}-{export_id:04d}.csv",
            campaign="a/b:c",
            start=start,
            end=end,
            format="detailed",
            export_id=7,
            gzip=True,
        )
        == "a_b_c-detailed-0007.csv.gz"
    )
    for template, match in [
        ("{campaign.__class__}.csv", "uses"),
        ("{secret}.csv", "uses"),
        ("{start!r}.csv", "uses"),
        ("{campaign", "not a valid template"),
        ("x/{campaign}.csv", "not a plain file name"),
    ]:
        with pytest.raises(InvalidParameter, match=match):
            render_file_name(
                template, campaign="c", start=start, end=end, format="simple", export_id=1
            )


def test_neutralise_and_custom_column_names() -> None:
    for value in ("=1+1", "+12125550100", "-2", "@SUM(A1)", "\tx", "\rx"):
        assert neutralise(value) == "'" + value
    for value in ("plain", "'quoted", "", None, "a=b", " =x"):
        assert neutralise(value) == value
    assert custom_columns(["agent", "tier", "custom_agent"]) == [
        "custom_agent",
        "tier",
        "custom_custom_agent",
    ]
    assert header("simple", ["=x"])[-1] == "'=x"
    assert header("simple", ["=x"], neutralise_formulas=False)[-1] == "=x"
