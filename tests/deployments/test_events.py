"""Tasks that react, end to end: failure alerts, imports when a file lands, chains.

The slow tests share one real stack (``cctasks up --no-demo`` in a subprocess: Prefect
server, process worker, ``prefect.yaml`` deployed with its triggers, the alerts of a
test ``alerts.yaml``), a real SMTP server (aiosmtpd) and a webhook receiver
(``http.server`` on loopback), all on free ports. Nothing is mocked: the sensor
deployment runs on its 30 s schedule, its events go through the server's triggers, and
the runs they start go through the worker.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from email import message_from_bytes
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, TypeVar
from uuid import UUID

import pytest
import sqlalchemy as sa
from aiosmtpd.controller import Controller
from conftest import free_port
from support.stack_support import RunningStack, kill_everything, start_stack, stop_stack

from contact_center.exceptions import InvalidParameter
from contact_center.parsing.arrivals import SeenFile, new_arrivals, stable_files
from contact_center.storage.db import create_db_engine, ensure_schema
from deployments.alerts import ALERT_PREFIX, alert_automation, ensure_alerts, load_alerts
from deployments.demo import seed_campaigns
from deployments.demo.files import write_demo_files
from flows.file_sensor import arrival_event
from runlog.origins import describe_trigger, started_by

T = TypeVar("T")
SENSOR_PERIOD = 30.0  # prefect.yaml: the sensor's interval
# A file is announced within the sensor's period plus its settling (35 s), then the
# trigger creates the run and the worker starts it; the budget is wider because the
# suite shares 2 cores with other work (at a load average of 14, 90 s was not enough).
REACTION_BUDGET = 240.0
EMAIL_TO = "ops@cc.example"


# --- pure parts --------------------------------------------------------------------------


def test_a_file_is_stable_when_two_listings_agree() -> None:
    first = [SeenFile("a.csv", 10, 1.0), SeenFile("b.csv", 10, 1.0), SeenFile("c.csv", 5, 1.0)]
    second = [SeenFile("a.csv", 10, 1.0), SeenFile("b.csv", 20, 2.0), SeenFile("d.csv", 1, 3.0)]
    assert stable_files(first, second) == [SeenFile("a.csv", 10, 1.0)]
    # An empty file is one whose writer has not written yet.
    assert stable_files([SeenFile("e.csv", 0, 1.0)], [SeenFile("e.csv", 0, 1.0)]) == []


def test_a_file_is_announced_once_per_version() -> None:
    a1, b1 = SeenFile("a.csv", 10, 1.0), SeenFile("b.csv", 7, 1.0)
    fresh, memory = new_arrivals([a1, b1], {})
    assert fresh == [a1, b1]
    fresh, memory = new_arrivals([a1, b1], memory)
    assert fresh == []
    a2 = SeenFile("a.csv", 10, 2.0)  # written again: a new version, announced again
    fresh, memory = new_arrivals([a2], memory)
    assert fresh == [a2] and set(memory) == {"a.csv"}  # b.csv is gone: forgotten


def test_the_event_names_the_file_by_its_location(tmp_path: Path) -> None:
    from contact_center.parsing.locations import parse_location

    sftp = arrival_event("leads", parse_location("sftp://partner-drop/in/leads_*.csv"),
                         SeenFile("leads_1.csv", 42, 0.0))
    assert sftp["event"] == "cctasks.file.arrived"
    resource = sftp["resource"]
    assert resource["cctasks.location"] == "sftp://partner-drop/in/leads_1.csv"
    assert resource["prefect.resource.id"] == "cctasks.file.sftp://partner-drop/in/leads_1.csv"
    assert (resource["cctasks.watch"], resource["cctasks.file.size"]) == ("leads", "42")
    assert resource["cctasks.file.modified"] == "1970-01-01T00:00:00+00:00"
    local = arrival_event("x", parse_location(f"{tmp_path}/*.csv"), SeenFile("x.csv", 1, 0.0))
    assert local["resource"]["cctasks.location"] == f"{tmp_path}/x.csv"


def test_alerts_file_is_checked_and_becomes_automations(tmp_path: Path) -> None:
    path = tmp_path / "alerts.yaml"
    assert load_alerts(path) == []  # no file, no alerts
    path.write_text(
        "alerts:\n  - name: ops\n    email: {block: mail, to: [a@b.example]}\n"
        "    webhook: {block: hook}\n"
    )
    (spec,) = load_alerts(path)
    assert spec.states == ("Failed", "Crashed") and spec.tags == ("cctasks",)
    automation = alert_automation(spec, UUID(int=1))
    assert automation.name == ALERT_PREFIX + "ops"
    assert automation.trigger.expect == {"prefect.flow-run.Failed", "prefect.flow-run.Crashed"}
    (action,) = automation.actions
    assert action.parameters == {
        "flow_run_id": "{{ event.resource.id | replace('prefect.flow-run.', '') }}",
        "email_block": "mail",
        "email_to": ["a@b.example"], "webhook_block": "hook",
    }
    path.write_text("alerts:\n  - name: ops\n    email: {block: mail}\n")
    with pytest.raises(InvalidParameter, match=r"alerts.yaml, alert 1 \('ops'\) email"):
        load_alerts(path)
    path.write_text("alerts:\n  - name: ops\n    states: [Completed]\n    webhook: {block: h}\n")
    with pytest.raises(InvalidParameter, match="states: only"):
        load_alerts(path)


def test_the_views_say_what_starts_a_task() -> None:
    assert started_by(True, None, None, {}) == "schedule"
    assert started_by(False, "USER", "someone", {}) == "manual"
    assert started_by(None, None, None, {}) == "manual"
    assert started_by(False, "AUTOMATION", "on file: leads", {"source": "/d/a.csv"}) == (
        "file /d/a.csv"
    )
    assert started_by(False, "AUTOMATION", "after: spring-leads-import", {}) == (
        "chain after spring-leads-import"
    )
    assert started_by(False, "AUTOMATION", "mine", {}) == "automation mine"
    watches = {"leads": "sftp://partner/in/leads_*.csv"}
    on_file = describe_trigger(
        {"cctasks.file.arrived"},
        {"prefect.resource.id": "cctasks.file.*", "cctasks.watch": "leads"},
        {},
        watches,
    )
    assert on_file == "on file sftp://partner/in/leads_*.csv"
    chain = describe_trigger(
        {"prefect.flow-run.Completed"}, {"prefect.resource.id": "prefect.flow-run.*"},
        [{"prefect.resource.role": "deployment", "prefect.resource.name": "spring-leads-import"}],
        watches,
    )
    assert chain == "after spring-leads-import completed"
    assert describe_trigger({"partner.pinged"}, {}, {}, {}) == "on event partner.pinged"


# --- the real stack ------------------------------------------------------------------------


@pytest.fixture(scope="session", autouse=True)
def prefect_server() -> Iterator[None]:
    """No test harness: these tests talk to the stack they start."""
    yield


@dataclass
class Mailbox:
    """What the SMTP server received."""

    messages: list[Any] = field(default_factory=list)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        self.messages.append(message_from_bytes(envelope.content))
        return "250 OK"


@dataclass
class Receiver:
    """What the webhook receiver received: one JSON body per POST."""

    posts: list[dict[str, Any]] = field(default_factory=list)


def _webhook_server(receiver: Receiver) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            receiver.posts.append(json.loads(body or b"{}"))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


@dataclass
class World:
    """The stack and its peers."""

    stack: RunningStack
    mailbox: Mailbox
    receiver: Receiver
    engine: sa.Engine
    alerts: Path

    @property
    def drop(self) -> Path:
        return self.stack.home / "drop" / "lists"


def _wait(what: str, probe: Callable[[], T | None], timeout: float, every: float = 1.0) -> T:
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        assert time.monotonic() < deadline, f"{what}: not within {timeout:.0f} s"
        time.sleep(every)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    root = tmp_path_factory.mktemp("events")
    mailbox, receiver = Mailbox(), Receiver()
    smtp = Controller(mailbox, hostname="127.0.0.1", port=free_port())
    smtp.start()
    webhook = _webhook_server(receiver)
    alerts = root / "alerts.yaml"
    alerts.write_text(
        "alerts:\n  - name: failed tasks\n    tags: [cctasks]\n    states: [Failed, Crashed]\n"
        f"    email: {{block: cctasks-email, to: [{EMAIL_TO}]}}\n"
        "    webhook: {block: ops-webhook}\n"
    )
    home = root / "home"
    stack = start_stack(home, "--no-demo", extra_env={"CCTASKS_ALERTS_FILE": str(alerts)})
    try:
        _save_channels(stack, smtp.port, webhook.server_address[1])
        engine = ensure_schema(create_db_engine(f"sqlite:///{home / 'contact-center.db'}"))
        seed_campaigns(engine)
        yield World(stack, mailbox, receiver, engine, alerts)
    except BaseException:
        kill_everything(stack)
        raise
    finally:
        smtp.stop()
        webhook.shutdown()
    stop_stack(stack)


def _settings(stack: RunningStack) -> Any:
    from prefect.settings import PREFECT_API_URL, temporary_settings

    return temporary_settings(updates={PREFECT_API_URL: stack.api_url})


def _save_channels(stack: RunningStack, smtp_port: int, webhook_port: int) -> None:
    from prefect.blocks.notifications import CustomWebhookNotificationBlock
    from prefect_email import EmailServerCredentials

    with _settings(stack):
        EmailServerCredentials(
            smtp_server="127.0.0.1", smtp_port=smtp_port, smtp_type="INSECURE"
        ).save("cctasks-email", overwrite=True)
        CustomWebhookNotificationBlock(
            name="ops", url=f"http://127.0.0.1:{webhook_port}/alert",
            json_data={"subject": "{{subject}}", "text": "{{body}}"},
            allow_private_urls=True,  # the receiver listens on loopback
        ).save("ops-webhook", overwrite=True)


def _runs(stack: RunningStack, deployment: str, since: float) -> list[Any]:
    """The runs of ``flow/deployment`` created after ``since`` (epoch s), oldest first."""
    from datetime import UTC, datetime

    from prefect import get_client
    from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterId

    with _settings(stack), get_client(sync_client=True) as client:
        found = client.read_deployment_by_name(deployment)
        runs = client.read_flow_runs(
            deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=[found.id]))
        )
    after = datetime.fromtimestamp(since, UTC)
    return sorted((r for r in runs if r.created and r.created >= after), key=lambda r: r.created)


def _ended(runs: list[Any]) -> list[Any]:
    return [r for r in runs if r.state and r.state.is_final()]


def _ended_runs(world: World, deployment: str, since: float, what: str) -> list[Any]:
    """The runs of ``deployment`` created since ``since``, once one has ended."""
    return _wait(what, lambda: _ended(_runs(world.stack, deployment, since)), REACTION_BUDGET)


def _imports(world: World, status: str) -> int:
    query = sa.text(
        "SELECT count(*) FROM list_imports i JOIN calling_lists l ON l.id = i.list_id "
        "WHERE l.name = 'Spring Leads' AND i.status = :status"
    )
    with world.engine.connect() as conn:
        return int(conn.execute(query, {"status": status}).scalar_one())


def _campaign_starts(world: World) -> int:
    query = sa.text(
        "SELECT count(*) FROM campaign_events e JOIN campaigns c ON c.id = e.campaign_id "
        "WHERE c.name = 'Spring Sales' AND e.action = 'start' AND e.result = 'started'"
    )
    with world.engine.connect() as conn:
        return int(conn.execute(query).scalar_one())


def _demo_leads(tmp_path: Path) -> bytes:
    write_demo_files(tmp_path)
    return next(tmp_path.rglob("spring_leads.csv")).read_bytes()


IMPORT = "import-calling-list/spring-leads-import"
CAMPAIGN = "campaign-trigger/spring-sales-hours"


@pytest.mark.slow
@pytest.mark.timeout(1500)
def test_a_landed_file_is_imported_once_and_starts_the_campaign(
    world: World, tmp_path: Path
) -> None:
    content = _demo_leads(tmp_path)
    began = time.time()
    world.drop.mkdir(parents=True, exist_ok=True)
    target = world.drop / "spring_leads.csv"
    target.write_bytes(content)
    # Within the sensor's period plus its settling, the trigger and the import itself.
    (run,) = _ended_runs(world, IMPORT, began, "a triggered import")
    assert run.state.name == "Completed", run.state
    assert run.parameters["source"] == str(target)  # the event's location became the source
    assert run.created_by is not None and run.created_by.type == "AUTOMATION"
    assert _imports(world, "completed") == 1
    # The chain: a loaded import starts the campaign, seen in its audit table.
    (start,) = _ended_runs(world, CAMPAIGN, began, "the chained start")
    assert start.state.name == "Completed" and start.parameters["step"] == "start", start.state
    assert _campaign_starts(world) == 1

    # The same file written again: announced again, imported as skipped, no chain.
    again = time.time()
    target.write_bytes(content)
    (rerun,) = _ended_runs(world, IMPORT, again, "the second import")
    assert rerun.state.name == "Skipped", rerun.state
    assert (_imports(world, "completed"), _imports(world, "skipped")) == (1, 1)
    time.sleep(30)  # time enough for a chain run to have been created
    assert _runs(world.stack, CAMPAIGN, again) == []
    assert len(_runs(world.stack, IMPORT, again)) == 1


@pytest.mark.slow
@pytest.mark.timeout(1500)
def test_a_file_still_growing_is_imported_once_whole(world: World, tmp_path: Path) -> None:
    lines = _demo_leads(tmp_path).splitlines(keepends=True)
    content = b"".join(lines[:-7])  # another version of the list: new to the checksum check
    thirds = [content[: len(content) // 3], content[len(content) // 3 : 2 * len(content) // 3],
              content[2 * len(content) // 3 :]]
    began = time.time()
    target = world.drop / "spring_leads.csv"
    with target.open("wb") as handle:  # one upload, in three writes 2 s apart
        for part in thirds:
            handle.write(part)
            handle.flush()
            time.sleep(2)
    (run,) = _ended_runs(world, IMPORT, began, "the import")
    assert run.state.name == "Completed", run.state
    query = sa.text(
        "SELECT i.rows_read FROM list_imports i JOIN calling_lists l ON l.id = i.list_id "
        "WHERE l.name = 'Spring Leads' AND i.status = 'completed' ORDER BY i.id DESC"
    )
    with world.engine.connect() as conn:
        rows_read = conn.execute(query).scalars().first()
    assert rows_read == len(lines) - 7 - 1  # every row of the whole file (less the header)
    time.sleep(SENSOR_PERIOD + 5)  # the next look finds nothing new
    assert len(_runs(world.stack, IMPORT, began)) == 1


@pytest.mark.slow
@pytest.mark.timeout(1500)
def test_a_failed_import_alerts_once_by_email_and_webhook(world: World) -> None:
    from prefect.deployments import run_deployment

    world.drop.mkdir(parents=True, exist_ok=True)
    broken = world.drop / "broken.csv"
    broken.write_text("Name,Colour\nx,y\n")
    before_mail, before_posts = len(world.mailbox.messages), len(world.receiver.posts)
    with _settings(world.stack):
        failed = run_deployment(
            IMPORT, parameters={"source": str(broken)}, timeout=REACTION_BUDGET
        )
    assert failed.state is not None and failed.state.name == "Failed", failed.state
    mails = _wait("the alert email",
                  lambda: world.mailbox.messages[before_mail:] or None, REACTION_BUDGET)
    posts = _wait(
        "the alert POST", lambda: world.receiver.posts[before_posts:] or None, REACTION_BUDGET
    )
    time.sleep(10)  # a second alert would come now
    assert len(world.mailbox.messages) - before_mail == 1
    assert len(world.receiver.posts) - before_posts == 1
    (mail,), (post,) = mails, posts
    body = mail.get_payload(decode=True).decode()
    assert mail["To"] == EMAIL_TO and "spring-leads-import" in mail["Subject"]
    for fact in ("Task: spring-leads-import", "Object: Spring Leads", "Step: import",
                 "State: Failed", "broken.csv", f"/runs/flow-run/{failed.id}"):
        assert fact in body, (fact, body)
    assert "Task: spring-leads-import" in post["text"] and "Failed" in post["subject"]

    # Asked again for the same run (an automation firing twice), nothing is sent.
    with _settings(world.stack):
        again = run_deployment(
            "send-failure-alert/failure-alert", timeout=REACTION_BUDGET,
            parameters={"flow_run_id": str(failed.id), "webhook_block": "ops-webhook"},
        )
    assert again.state is not None and again.state.name == "Skipped", again.state
    assert len(world.receiver.posts) - before_posts == 1


@pytest.mark.slow
def test_applying_the_alerts_again_changes_nothing(world: World) -> None:
    from prefect import get_client

    with _settings(world.stack):
        assert ensure_alerts(world.alerts) == {ALERT_PREFIX + "failed tasks": "kept"}
        assert ensure_alerts(world.alerts) == {ALERT_PREFIX + "failed tasks": "kept"}
        with get_client(sync_client=True) as client:
            names = [a.name for a in client.read_automations()]
    assert names.count(ALERT_PREFIX + "failed tasks") == 1
    for trigger in ("on file: spring-leads", "after: spring-leads-import"):
        assert names.count(trigger) == 1, names
