"""Fixtures and helpers of the export-campaign-results flow tests (``test_results_export*.py``,
``test_export_names.py``).

The test modules import the fixtures under the names they define here; pytest knows
them by the ``name`` each gives (the names the tests ask for). (This module holds no tests.)
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from prefect.settings import PREFECT_FLOWS_HEARTBEAT_FREQUENCY, temporary_settings

import flows.results_export as results_export
from support.results_support import RECORDS, add_attempts, seed_list


@pytest.fixture(autouse=True, name="_fast_flows")
def fast_flows_fixture(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """No heartbeat wait per flow call; no backoff wait in the delivery's retries."""
    monkeypatch.setattr(
        results_export,
        "deliver_export",
        results_export.deliver_export.with_options(retry_delay_seconds=0),
    )
    with temporary_settings(updates={PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None}):
        yield


def no_delivery_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    """Let the first delivery failure fail the run (as if every retry failed)."""
    monkeypatch.setattr(
        results_export, "deliver_export", results_export.deliver_export.with_options(retries=0)
    )


@pytest.fixture(name="seeded")
def seeded_fixture(engine: sa.Engine) -> dict[str, Any]:
    """Three records and five result rows written in the last hour."""
    list_id = seed_list(engine, RECORDS)
    now = datetime.now(UTC)
    rows = [
        {
            "record_key": "A1",
            "phone": "+12125550101",
            "recorded_at": now - timedelta(minutes=50),
            "record_disposition": "No Answer",
            "call_disposition": "No Answer",
        },
        {
            "record_key": "A2",
            "phone": "+13125550199",
            "recorded_at": now - timedelta(minutes=40),
            "record_disposition": "Busy",
            "call_note": "=cmd|' /C calc'!A0",
        },
        {
            "record_key": "A1",
            "phone": "+12125550102",
            "recorded_at": now - timedelta(minutes=30),
            "record_disposition": "Sale",
            "completed": True,
            "agent": "ana.lopez",
        },
        {
            "record_key": "A3",
            "recorded_at": now - timedelta(minutes=20),
            "is_call_attempt": False,
            "record_disposition": "Excluded",
            "completed": True,
        },
        {
            "record_key": "A2",
            "recorded_at": now - timedelta(minutes=10),
            "is_call_attempt": False,
            "out_of_quota": True,
            "record_disposition": "Out of quota",
        },
    ]
    return {"list_id": list_id, "ids": add_attempts(engine, list_id, rows)}


@dataclass(frozen=True)
class Remote:
    """A fresh folder on the test sshd: where to look locally, and its location string."""

    folder: Path
    destination: str


@pytest.fixture(name="remote")
def remote_fixture(sshd: Any, sftp_block: str) -> Remote:
    """A folder of its own on the test sshd (the sshd lives for the whole session)."""
    name = f"exports/{uuid.uuid4().hex[:10]}"
    return Remote(sshd.home / name, f"sftp://{sftp_block}/{name}")
