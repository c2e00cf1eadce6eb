"""The campaign-trigger flow on the real Prefect harness: steps, checks, audit, the dialler
webhook (a real HTTP server on 127.0.0.1) and the ``cctasks campaign`` command."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, cast
from uuid import UUID
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa
from prefect.blocks.system import Secret
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import (
    ArtifactFilter,
    ArtifactFilterFlowRunId,
    ArtifactFilterKey,
)
from prefect.client.schemas.objects import State
from prefect.exceptions import ParameterTypeError
from prefect.settings import PREFECT_FLOWS_HEARTBEAT_FREQUENCY, temporary_settings
from test_campaigns import add_records
from typer.testing import CliRunner

from contact_center.exceptions import (
    CampaignStateError,
    DatabaseError,
    DeliveryFailed,
    InvalidParameter,
    ObjectNotFound,
)
from contact_center.outcome import Outcome
from contact_center.settings import NETWORK_RETRIES, NETWORK_RETRY_DELAYS, OUTCOME_ARTIFACT_KEY
from contact_center.storage.campaign_steps import campaign_events
from contact_center.storage.campaigns import ensure_campaign, get_campaign, link_list
from flows.campaign_trigger import campaign_trigger, notify_dialler

NY = "America/New_York"
CAMPAIGN = "Spring Sale"


@pytest.fixture(autouse=True)
def _no_heartbeat_delay() -> Iterator[None]:
    """Sync flow calls wait ~1 s for the heartbeat thread; these tests run many."""
    with temporary_settings(updates={PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None}):
        yield


@pytest.fixture
def campaign(engine: sa.Engine) -> str:
    """A stopped campaign in New York with one enabled list of two dialable records."""
    ensure_campaign(engine, CAMPAIGN, time_zone=NY)
    link_list(engine, CAMPAIGN, "Spring Leads")
    add_records(engine, "Spring Leads", ["A1", "A2"])
    return CAMPAIGN


def run(**parameters: Any) -> State:
    """Run the flow in-process; return its final state (never raises)."""
    return cast(State, campaign_trigger(**parameters, return_state=True))


def recorded_outcome(state: State) -> Outcome:
    """The outcome artifact that the run stored on the Prefect server."""
    flow_run_id = state.state_details.flow_run_id
    assert flow_run_id is not None
    with get_client(sync_client=True) as client:
        artifacts = client.read_artifacts(
            artifact_filter=ArtifactFilter(
                flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id]),
                key=ArtifactFilterKey(any_=[OUTCOME_ARTIFACT_KEY]),
            )
        )
    assert len(artifacts) == 1
    data = artifacts[0].data
    assert isinstance(data, str)  # a table artifact's data comes back as JSON text
    rows: list[dict[str, Any]] = json.loads(data)
    return Outcome.from_row(rows[0])


def flow_run_name(flow_run_id: UUID) -> str:
    with get_client(sync_client=True) as client:
        return client.read_flow_run(flow_run_id).name


# --- steps and checks -------------------------------------------------------------------


def test_start_stop_and_repeats_record_outcomes_and_audit(engine: sa.Engine, campaign: str) -> None:
    expected = [
        ("start", "started", "stopped", "running"),
        ("start", "already running", "running", "running"),
        ("stop", "stopped", "running", "stopped"),
        ("stop", "already stopped", "stopped", "stopped"),
    ]
    run_ids = []
    for step, result, previous, state in expected:
        final = run(campaign=campaign, step=step)
        assert final.is_completed(), final.message
        assert final.message == result  # what Prefect's run view shows
        outcome = final.result()
        assert (outcome.object_name, outcome.step, outcome.status) == (campaign, step, "completed")
        assert outcome.message == result
        assert outcome.extra.pop("dialable", None) == (
            {"Spring Leads": 2} if step == "start" else None
        )
        assert outcome.extra == {
            "result": result,
            "source": "schedule",
            "previous_state": previous,
            "state": state,
            "notified": None,
        }
        assert recorded_outcome(final).message == result
        with engine.connect() as conn:
            assert get_campaign(conn, campaign).state == state
        run_ids.append(str(final.state_details.flow_run_id))
    assert flow_run_name(UUID(run_ids[0])) == "Spring Sale · start"
    with engine.connect() as conn:
        events = campaign_events(conn, campaign)
    assert [(e.action, e.source, e.result, e.flow_run_id) for e in events] == [
        (step, "schedule", result, run_id)
        for (step, result, _, _), run_id in zip(expected, run_ids, strict=True)
    ]


def test_unknown_campaign_fails_naming_it(engine: sa.Engine) -> None:
    final = run(campaign="Winter Promo", step="start")
    assert final.is_failed()
    with pytest.raises(ObjectNotFound, match="campaign 'Winter Promo' does not exist"):
        final.result()
    outcome = recorded_outcome(final)
    assert outcome.status == "failed" and "Winter Promo" in (outcome.message or "")


def test_start_with_nothing_to_dial_fails_unless_allow_empty(engine: sa.Engine) -> None:
    ensure_campaign(engine, "Empty", time_zone=NY)
    link_list(engine, "Empty", "No Leads")
    final = run(campaign="Empty", step="start")
    assert final.is_failed()
    with pytest.raises(
        CampaignStateError,
        match=r"campaign 'Empty' cannot start: no enabled calling list has dialable records "
        r"\(lists: No Leads \(0 dialable\)\); set allow_empty",
    ):
        final.result()
    with engine.connect() as conn:
        assert get_campaign(conn, "Empty").state == "stopped"
        assert campaign_events(conn, "Empty") == []
    allowed = run(campaign="Empty", step="start", allow_empty=True)
    assert allowed.is_completed() and allowed.result().message == "started"
    assert allowed.result().extra["dialable"] == {"No Leads": 0}
    # Stopping never needs anything to dial.
    assert run(campaign="Empty", step="stop").result().message == "stopped"


def test_skip_date_completes_as_skipped_and_changes_nothing(
    engine: sa.Engine, campaign: str
) -> None:
    # An in-process run is scheduled "now"; its date in the campaign's time zone is skipped.
    today = datetime.now(ZoneInfo(NY)).date().isoformat()
    final = run(campaign=campaign, step="start", skip_dates=["2020-01-01", today])
    assert final.is_completed()
    outcome = final.result()
    assert outcome.status == "skipped"
    assert outcome.message == f"skipped (holiday): {today} is in skip_dates"
    assert outcome.extra["previous_state"] == outcome.extra["state"] == "stopped"
    with engine.connect() as conn:
        assert get_campaign(conn, campaign).state == "stopped"
        (event,) = campaign_events(conn, campaign)
    assert (event.action, event.result, event.message) == (
        "start",
        "skipped (holiday)",
        f"{today} is in skip_dates",
    )


@pytest.mark.parametrize(
    "parameters, error, match",
    [
        ({"step": "pause"}, ParameterTypeError, "step: Input should be 'start' or 'stop'"),
        ({"step": "start", "source": "cron"}, ParameterTypeError,
         "source: Input should be 'schedule', 'manual' or 'api'"),
        ({"step": "start", "skip_dates": ["31/12/2026"]}, InvalidParameter,
         "'31/12/2026' is not an ISO date"),
        ({"step": "start", "holidays": "Narnia"}, InvalidParameter, "unknown country 'NARNIA'"),
        ({"step": "start", "notify_url": "ftp://dialler"}, InvalidParameter,
         "notify_url must be an http"),
        ({"step": "start", "notify_token_block": "tok"}, InvalidParameter, "notify_url is not"),
    ],
)  # fmt: skip
def test_invalid_parameters_fail_before_anything_changes(
    engine: sa.Engine,
    campaign: str,
    parameters: dict[str, Any],
    error: type[Exception],
    match: str,
) -> None:
    final = run(campaign=campaign, **parameters)
    assert final.is_failed()
    with pytest.raises(error, match=match):
        final.result()
    with engine.connect() as conn:
        assert get_campaign(conn, campaign).state == "stopped"
        assert campaign_events(conn, campaign) == []


def test_a_refused_audit_write_leaves_the_state_as_it_was(engine: sa.Engine, campaign: str) -> None:
    # The state is changed first, then the event is written: if the event cannot be
    # written, the whole step rolls back.
    with engine.begin() as conn:
        conn.execute(sa.text("ALTER TABLE campaign_events RENAME TO campaign_events_away"))
    try:
        final = run(campaign=campaign, step="start")
    finally:
        with engine.begin() as conn:
            conn.execute(sa.text("ALTER TABLE campaign_events_away RENAME TO campaign_events"))
    assert final.is_failed()
    with pytest.raises(DatabaseError, match="start of campaign 'Spring Sale' failed"):
        final.result()
    with engine.connect() as conn:
        assert get_campaign(conn, campaign).state == "stopped"
        assert campaign_events(conn, campaign) == []


# --- the dialler webhook ------------------------------------------------------------------


@dataclass
class Dialler:
    """A real HTTP server standing in for the dialler: records POSTs, answers as told."""

    url: str
    answers: list[int] = field(default_factory=list)
    requests: list[tuple[dict[str, str], Any]] = field(default_factory=list)


@pytest.fixture
def dialler() -> Iterator[Dialler]:
    box: list[Dialler] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 (http.server's name)
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            box[0].requests.append((dict(self.headers), json.loads(body)))
            status = box[0].answers.pop(0) if box[0].answers else 204
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    box.append(Dialler(url=f"http://127.0.0.1:{server.server_address[1]}/campaigns/events"))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield box[0]
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def fast_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    """Keep the real retries but shorten their backoff (production: NETWORK_RETRY_DELAYS)."""
    assert notify_dialler.retries == NETWORK_RETRIES
    assert notify_dialler.retry_delay_seconds == [float(s) for s in NETWORK_RETRY_DELAYS]
    monkeypatch.setattr(notify_dialler, "retry_delay_seconds", [0.1] * NETWORK_RETRIES)


def test_webhook_success_with_token_from_a_secret_block(
    engine: sa.Engine, campaign: str, dialler: Dialler, caplog: pytest.LogCaptureFixture
) -> None:
    token = "dialler-Token-s3cr3t"
    Secret(value=token).save("dialler-token", overwrite=True)  # type: ignore[arg-type]
    final = run(
        campaign=campaign,
        step="start",
        notify_url=dialler.url,
        notify_token_block="dialler-token",
    )
    assert final.is_completed(), final.message
    outcome = final.result()
    assert outcome.extra["notified"] is True
    ((headers, body),) = dialler.requests
    assert headers["Authorization"] == f"Bearer {token}"
    assert headers["Content-Type"] == "application/json"
    with engine.connect() as conn:
        (event,) = campaign_events(conn, campaign)
    assert body == {
        "campaign": campaign,
        "step": "start",
        "time": event.occurred_at.isoformat(),
        "state": "running",
    }
    assert event.notified is True
    assert token not in json.dumps(recorded_outcome(final).to_dict()) and token not in caplog.text
    # A repeat changes nothing, so the dialler (which has the state) is not told again.
    again = run(campaign=campaign, step="start", notify_url=dialler.url)
    assert again.result().message == "already running" and len(dialler.requests) == 1


def test_webhook_retries_then_succeeds(
    engine: sa.Engine, campaign: str, dialler: Dialler, fast_retries: None
) -> None:
    dialler.answers = [503]
    final = run(campaign=campaign, step="start", notify_url=dialler.url)
    assert final.is_completed(), final.message
    assert len(dialler.requests) == 2
    with engine.connect() as conn:
        assert [e.notified for e in campaign_events(conn, campaign)] == [True]


def test_webhook_failure_fails_the_run_but_keeps_the_state(
    engine: sa.Engine, campaign: str, dialler: Dialler, fast_retries: None
) -> None:
    dialler.answers = [500] * (NETWORK_RETRIES + 1)
    final = run(campaign=campaign, step="start", notify_url=dialler.url + "?key=hidden")
    assert final.is_failed()
    with pytest.raises(
        DeliveryFailed, match=r"to http://127\.0\.0\.1:\d+/campaigns/events failed: HTTP 500$"
    ):
        final.result()
    assert len(dialler.requests) == NETWORK_RETRIES + 1
    assert "hidden" not in (final.message or "")
    with engine.connect() as conn:
        assert get_campaign(conn, campaign).state == "running"
        (event,) = campaign_events(conn, campaign)
    assert (event.result, event.notified) == ("started", False)
    outcome = recorded_outcome(final)
    assert outcome.status == "failed"
    assert outcome.extra["notified"] is False and outcome.extra["state"] == "running"
    # The next trigger finds the campaign running but tells the dialler what it missed.
    retry = run(campaign=campaign, step="start", notify_url=dialler.url)
    assert retry.is_completed() and retry.result().extra["notified"] is True
    assert dialler.requests[-1][1]["state"] == "running"


def test_missing_token_block_fails_before_the_state_changes(
    engine: sa.Engine, campaign: str, dialler: Dialler
) -> None:
    final = run(campaign=campaign, step="start", notify_url=dialler.url, notify_token_block="nope")
    with pytest.raises(ObjectNotFound, match="no Secret block named 'nope'"):
        final.result()
    with engine.connect() as conn:
        assert get_campaign(conn, campaign).state == "stopped"
    assert dialler.requests == []


# --- the CLI --------------------------------------------------------------------------------


def test_cli_campaign_start_and_stop_record_source_manual(engine: sa.Engine, campaign: str) -> None:
    from cli.main import app

    runner = CliRunner()
    started = runner.invoke(app, ["campaign", "start", campaign])
    assert started.exit_code == 0, started.output
    assert "campaign Spring Sale: started (was stopped, now running)" in started.output
    repeated = runner.invoke(app, ["campaign", "start", campaign])
    assert "already running" in repeated.output
    stopped = runner.invoke(app, ["campaign", "stop", campaign])
    assert stopped.exit_code == 0 and "stopped (was running, now stopped)" in stopped.output
    unknown = runner.invoke(app, ["campaign", "stop", "Nope"])
    assert unknown.exit_code == 1 and "campaign 'Nope' does not exist" in unknown.output
    with engine.connect() as conn:
        events = campaign_events(conn, campaign)
    assert [(e.source, e.result) for e in events] == [
        ("manual", "started"),
        ("manual", "already running"),
        ("manual", "stopped"),
    ]
    assert all(e.flow_run_id for e in events)  # each ran as a flow: the task log shows it
