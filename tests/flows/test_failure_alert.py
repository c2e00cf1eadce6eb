"""The ``send-failure-alert`` flow on the session's Prefect server, with a real SMTP
server (aiosmtpd) and a webhook receiver on loopback. (The automation that runs it is
tested end to end in test_events.py.)"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from email import message_from_bytes
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from conftest import free_port
from prefect import flow
from prefect.blocks.notifications import CustomWebhookNotificationBlock
from prefect_email import EmailServerCredentials

from contact_center.exceptions import InvalidFile, InvalidParameter
from flows.failure_alert import ALERTED_TAG, send_failure_alert


class _Mailbox:
    def __init__(self) -> None:
        self.messages: list[Any] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        self.messages.append(message_from_bytes(envelope.content))
        return "250 OK"


@pytest.fixture
def channels() -> Iterator[tuple[_Mailbox, list[dict[str, Any]]]]:
    mailbox, posts = _Mailbox(), list[dict[str, Any]]()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802
            posts.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    smtp = Controller(mailbox, hostname="127.0.0.1", port=free_port())
    smtp.start()
    web = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
    threading.Thread(target=web.serve_forever, daemon=True).start()
    EmailServerCredentials(
        smtp_server="127.0.0.1", smtp_port=smtp.port, smtp_type="INSECURE"
    ).save("alert-test-email", overwrite=True)
    CustomWebhookNotificationBlock(
        name="ops", url=f"http://127.0.0.1:{web.server_address[1]}/hook",
        json_data={"subject": "{{subject}}", "text": "{{body}}"},
        allow_private_urls=True,  # the receiver listens on loopback
    ).save("alert-test-hook", overwrite=True)
    try:
        yield mailbox, posts
    finally:
        smtp.stop()
        web.shutdown()


@flow(name="import-calling-list", flow_run_name="alert-test")
def _failing_import(list_name: str, source: str) -> None:
    raise InvalidFile("no column named 'Account'", file="broken.csv")


def test_a_failed_run_is_alerted_once_with_its_facts(
    channels: tuple[_Mailbox, list[dict[str, Any]]],
) -> None:
    mailbox, posts = channels
    state = _failing_import("Spring Leads", "/drop/broken.csv", return_state=True)  # type: ignore[call-overload]
    run_id = state.state_details.flow_run_id
    sent = send_failure_alert(
        flow_run_id=run_id, email_block="alert-test-email", email_to=["ops@cc.example"],
        webhook_block="alert-test-hook", return_state=True,
    )
    assert sent.is_completed() and sent.name == "Completed", sent
    (mail,), (post,) = mailbox.messages, posts
    body = mail.get_payload(decode=True).decode()
    assert mail["To"] == "ops@cc.example"
    assert mail["Subject"] == "cctasks: alert-test (Spring Leads, import) Failed"
    for fact in ("Task: alert-test", "Object: Spring Leads", "Step: import", "State: Failed",
                 "Error: InvalidFile: file 'broken.csv': no column named 'Account'",
                 f"/runs/flow-run/{run_id}"):
        assert fact in body, (fact, body)
    assert post == {"subject": mail["Subject"], "text": "\n".join(body.splitlines())}

    from prefect import get_client

    with get_client(sync_client=True) as client:
        assert ALERTED_TAG in client.read_flow_run(run_id).tags
    again = send_failure_alert(
        flow_run_id=run_id, email_block="alert-test-email", email_to=["ops@cc.example"],
        return_state=True,
    )
    assert again.name == "Skipped" and len(mailbox.messages) == 1 and len(posts) == 1


def test_an_alert_must_go_somewhere() -> None:
    from uuid import uuid4

    with pytest.raises(InvalidParameter, match="give email_to or webhook_block"):
        send_failure_alert(flow_run_id=uuid4())
    with pytest.raises(InvalidParameter, match="email_block and email_to go together"):
        send_failure_alert(flow_run_id=uuid4(), email_to=["a@b.example"])
