"""The outcome's one-line summary, the first line of its Markdown artifact in the UI."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from contact_center.outcome import Outcome
from flows.common.outcome import _summary_markdown


@pytest.fixture(scope="session", autouse=True)
def prefect_server() -> Iterator[None]:
    """No Prefect server: these tests build text."""
    yield


def test_an_import_names_its_counts_and_its_rejects_by_reason() -> None:
    outcome = Outcome(
        "Spring Leads", "import", status="completed", rows_read=300, loaded=263, rejected=37,
        rejects_by_reason={"missing_key": 8, "no_valid_phone": 23, "duplicate_key": 6},
    )
    assert outcome.summary() == (
        "Spring Leads: 263 loaded, 37 rejected (8 missing key, 23 no valid phone, 6 duplicate key)"
    )


def test_only_the_counts_that_are_not_zero_are_named() -> None:
    outcome = Outcome(
        "Company DNC", "import", status="completed", loaded=1200, updated=30, removed=0,
        excluded=0, unchanged=4,
    )
    assert outcome.summary() == "Company DNC: 1,200 loaded, 30 updated, 4 unchanged"
    excluded = Outcome("Spring Leads", "import", loaded=5, rejected=1, excluded=2,
                       rejects_by_reason={"missing_key": 1})
    assert excluded.summary() == "Spring Leads: 5 loaded, 1 rejected (1 missing key), 2 excluded"


def test_a_failed_run_leads_with_its_error_on_one_line() -> None:
    outcome = Outcome(
        "Spring Leads", "import", status="failed", loaded=10,
        message="InvalidFile: leads.csv, row 7, column Phone:\nnot a phone number",
    )
    assert outcome.summary() == (
        "Spring Leads · import failed: InvalidFile: leads.csv, row 7, column Phone: "
        "not a phone number"
    )


def test_a_run_without_row_counts_says_its_message() -> None:
    trigger = Outcome("Spring Sales", "start", status="completed", message="started")
    assert trigger.summary() == "Spring Sales · start completed: started"
    skipped = Outcome(
        "Spring Leads", "import", status="skipped", unchanged=300,
        message="same file as the last import",
    )
    assert skipped.summary() == "Spring Leads · import skipped: same file as the last import"


def test_the_markdown_starts_with_the_summary_shown_as_written() -> None:
    outcome = Outcome(
        "Spring_Leads *VIP*", "import", status="failed",
        message="InvalidFile: [x](javascript:alert(1)) | <b>bold</b>",
    )
    first, blank, heading = _summary_markdown(outcome).splitlines()[:3]
    assert first == (
        r"**Spring\_Leads \*VIP\* · import failed: InvalidFile: \[x\](javascript:alert(1)) "
        r"\| \<b\>bold\</b\>**"
    )
    assert blank == "" and heading.startswith("### Spring_Leads *VIP* · import: failed")
