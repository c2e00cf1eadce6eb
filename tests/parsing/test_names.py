"""Object names with control characters are refused before any database work, and the
database block refuses a URL that carries a password without echoing it."""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from prefect.settings import PREFECT_FLOWS_HEARTBEAT_FREQUENCY, temporary_settings
from pydantic import ValidationError

from blocks.database import ContactCenterDatabase
from contact_center.exceptions import InvalidParameter
from contact_center.parsing.names import check_name
from flows.calling_list_import import import_calling_list
from flows.campaign_trigger import campaign_trigger
from flows.common import contact_center_engine
from flows.exclusion_import import import_exclusions
from flows.report_execution import run_report
from flows.results_export import export_campaign_results


@pytest.fixture(autouse=True)
def _fast_flows() -> Iterator[None]:
    with temporary_settings(updates={PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None}):
        yield


HOSTILE = {
    "NUL": ("Spring\x00Leads", "U+0000"),
    "escape": ("Spring\x1b[2J\x1b[31mLeads", "U+001B"),
    "newline": ("Spring\nLeads", "U+000A"),
    "DEL": ("Spring\x7f", "U+007F"),
    "C1": ("Spring\x85Leads", "U+0085"),
    "line separator": ("Spring\u2028Leads", "U+2028"),
    "bidi override": ("Spring\u202eLeads", "U+202E"),
    "lone surrogate": ("Spring\ud800", "U+D800"),
}


@pytest.mark.parametrize("value, code", HOSTILE.values(), ids=HOSTILE.keys())
def test_check_name_refuses_control_characters(value: str, code: str) -> None:
    with pytest.raises(
        InvalidParameter, match=rf"^list_name .* {re.escape(code)}; a name must be"
    ) as info:
        check_name("list_name", value)
    assert "\n" not in str(info.value) and "\x1b" not in str(info.value)


def test_check_name_keeps_good_names() -> None:
    for name in ("Spring Leads", "Zoë's list (2026)", "販売リスト", "DNC – global", "a\u200db"):
        assert check_name("list_name", f"  {name} ") == name
    for bad, match in [("", "non-empty"), ("   ", "non-empty"), (None, "non-empty")]:
        with pytest.raises(InvalidParameter, match=match):
            check_name("campaign", bad)
    with pytest.raises(InvalidParameter, match=r"is 201 characters long; a name has at most 200"):
        check_name("campaign", "x" * 201)
    with pytest.raises(InvalidParameter, match=r"'x{60}'…"):  # a long value is cut short
        check_name("campaign", "x" * 500 + "\x00")


NUL = "Spring\x00Leads"
FLOW_CALLS: dict[str, tuple[Callable[[Path], Any], str]] = {
    "list_name": (lambda tmp: import_calling_list(NUL, str(tmp / "leads.csv")), "list_name"),
    "scrub_exclusions": (
        lambda tmp: import_calling_list(
            "Spring Leads", str(tmp / "leads.csv"), scrub_exclusions=["dnc", "d\x00nc"]
        ),
        "scrub_exclusions",
    ),
    "exclusion_list": (
        lambda tmp: import_exclusions(NUL, source=str(tmp / "dnc.csv")),
        "exclusion_list",
    ),
    "export campaign": (
        lambda tmp: export_campaign_results(NUL, str(tmp / "out")),
        "campaign",
    ),
    "trigger campaign": (lambda tmp: campaign_trigger(NUL, "start"), "campaign"),
    "report": (lambda tmp: run_report(NUL, destination=str(tmp / "out")), "report"),
}


@pytest.mark.parametrize("call, parameter", FLOW_CALLS.values(), ids=FLOW_CALLS.keys())
def test_every_flow_refuses_a_nul_in_a_name_before_any_database_work(
    call: Callable[[Path], Any],
    parameter: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A database that cannot be reached: touching it first would fail differently.
    monkeypatch.setenv("CCTASKS_DATABASE_URL", "postgresql+psycopg://nobody@127.0.0.1:9/none")
    (tmp_path / "leads.csv").write_text("account,phone1\nA1,2127365000\n")
    (tmp_path / "dnc.csv").write_text("account\nA1\n")
    with pytest.raises(InvalidParameter, match=rf"^{parameter} .* U\+0000; a name must be"):
        call(tmp_path)
    assert not (tmp_path / "out").exists()


# --- the database block ----------------------------------------------------------------


def test_the_database_block_refuses_a_url_with_a_password() -> None:
    url = "postgresql+psycopg://cctasks:S3cret-Pw%21@db.example:5432/cc"
    with pytest.raises(
        ValidationError, match=r"must not carry the password.*`password` field"
    ) as info:
        ContactCenterDatabase(url=url)
    for text in (str(info.value), repr(info.value)):
        assert "S3cret" not in text and "db.example" not in text
    block = ContactCenterDatabase(url="postgresql+psycopg://cctasks@db.example/cc", password="pw")
    assert block.create_url() == "postgresql+psycopg://cctasks:pw@db.example/cc"
    assert "pw" not in block.display_url
    assert ContactCenterDatabase(url="sqlite:///cc.db").create_url() == "sqlite:///cc.db"


def test_a_block_saved_with_a_password_in_its_url_fails_clearly() -> None:
    """A block saved before the check (bypassing validation) is not silently skipped."""
    name = f"old-db-{uuid.uuid4().hex[:8]}"
    ContactCenterDatabase.model_construct(
        url="postgresql+psycopg://cctasks:S3cret-Pw@db.example/cc", password=None
    ).save(name)
    with pytest.raises(
        InvalidParameter, match=rf"block '{name}' cannot be loaded.*password"
    ) as info:
        contact_center_engine(name)
    assert "S3cret" not in str(info.value)
