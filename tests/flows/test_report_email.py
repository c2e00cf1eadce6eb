"""The run-report flow's e-mail delivery, against a real SMTP server on loopback that
requires TLS (STARTTLS or SSL) and a login: attachments and recipients, SMTP errors and
retries, refused logins and recipients, a stalled server, e-mail with a local copy, and a
failed validation that sends nothing.

The other destinations, bad parameters and the task-log report are in
``test_report_flow.py``.
"""

from __future__ import annotations

import io
import json
import ssl
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openpyxl
import pytest
import sqlalchemy as sa
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from conftest import free_port
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import (
    ArtifactFilter,
    ArtifactFilterFlowRunId,
    ArtifactFilterKey,
)
from prefect_email import EmailServerCredentials
from support.smtp_server import Mailbox, SmtpServer, self_signed_certificate
from test_report_queries import PERIOD, seed

from contact_center.outcome import Outcome
from contact_center.settings import OUTCOME_ARTIFACT_KEY
from flows.report_execution import email_report, run_report

# The SSL server is TLS from the first byte, which aiosmtpd cannot see, so it warns.
pytestmark = pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS:UserWarning")

SENDER = "reports@cc.example"
PASSWORD = "Sm7p-Sekret-Value-42"
NY = "America/New_York"


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return self_signed_certificate(tmp_path_factory.mktemp("smtp-tls"))


@pytest.fixture(params=["STARTTLS"])
def smtp(
    request: pytest.FixtureRequest,
    certificate: tuple[Path, Path],
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[SmtpServer]:
    """A real SMTP server on loopback that needs TLS (SSL or STARTTLS) and a login."""
    mode = request.param
    cert_path, key_path = certificate
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert_path, key_path)
    # The client verifies the server: trust the test certificate, and only it.
    monkeypatch.setenv("SSL_CERT_FILE", str(cert_path))
    mailbox = Mailbox()

    def authenticate(server: Any, session: Any, envelope: Any, mechanism: str, data: Any) -> Any:
        if not isinstance(data, LoginPassword):
            return AuthResult(success=False, handled=False)
        login, password = data.login.decode(), data.password.decode()
        mailbox.logins.append((login, mechanism))
        if mailbox.stall_login:
            # "handled" without an answer: the client waits for a reply that never comes.
            return AuthResult(success=False, handled=True)
        # handled=False: aiosmtpd itself answers (235, or 535 on a refused login).
        return AuthResult(success=login == SENDER and password == PASSWORD, handled=False)

    port = free_port()
    options: dict[str, Any] = {
        "authenticator": authenticate,
        "auth_required": True,
        "auth_require_tls": True,
    }
    if mode == "SSL":
        # aiosmtpd does not see the implicit TLS of the socket: let AUTH go over it.
        options["auth_require_tls"] = False
        controller = Controller(
            mailbox, hostname="127.0.0.1", port=port, ssl_context=context, **options
        )
    else:
        controller = Controller(
            mailbox,
            hostname="127.0.0.1",
            port=port,
            tls_context=context,
            require_starttls=True,
            **options,
        )
    controller.start()
    try:
        yield SmtpServer(port=port, mailbox=mailbox, mode=mode)
    finally:
        controller.stop()


def save_email_block(smtp: SmtpServer, password: str = PASSWORD) -> str:
    name = f"test-email-{uuid.uuid4().hex[:8]}"
    EmailServerCredentials(
        username=SENDER,
        password=password,
        smtp_server="127.0.0.1",
        smtp_port=smtp.port,
        smtp_type=smtp.mode,
        verify=True,
    ).save(name, overwrite=True)
    return name


@pytest.fixture
def fast_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    """Keep the real retry count, without the production back-off delays."""
    monkeypatch.setattr(email_report, "retry_delay_seconds", [0.0, 0.0])


def outcome_of(flow_run_id: uuid.UUID) -> Outcome:
    """The outcome artifact the run recorded on the Prefect server."""
    with get_client(sync_client=True) as client:
        artifacts = client.read_artifacts(
            artifact_filter=ArtifactFilter(
                flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id]),
                key=ArtifactFilterKey(any_=[OUTCOME_ARTIFACT_KEY]),
            )
        )
    assert artifacts, "no outcome artifact"
    data = artifacts[0].data
    rows = json.loads(data) if isinstance(data, str) else data
    return Outcome.from_row(rows[0])


def emailed_list_status(block: str, **changes: Any) -> Any:
    """Run list-status for the seeded period, emailed as CSV; return the final state."""
    parameters: dict[str, Any] = {
        "report": "list-status",
        "period": PERIOD,
        "formats": ["csv"],
        "email_to": ["supervisor@cc.example"],
        "email_block": block,
        "time_zone": NY,
    }
    parameters.update(changes)
    return run_report(**parameters, return_state=True)


# --- email -----------------------------------------------------------------------------


@pytest.mark.parametrize("smtp", ["STARTTLS", "SSL"], indirect=True)
def test_report_emailed_with_attachments_to_several_recipients(
    engine: sa.Engine, smtp: SmtpServer
) -> None:
    seed(engine)
    block = save_email_block(smtp)
    recipients = ["supervisor@cc.example", "Ops Desk <ops@cc.example>", "qa@cc.example"]
    state = run_report(
        report="campaign-summary",
        period=PERIOD,
        formats=["pdf", "xlsx", "html", "csv"],
        email_to=recipients,
        email_block=block,
        time_zone=NY,
        return_state=True,
    )
    assert state.is_completed(), state.message
    outcome = state.result()
    mailbox = smtp.mailbox
    assert len(mailbox.envelopes) == 1
    assert [login for login, _mechanism in mailbox.logins] == [SENDER]
    envelope = mailbox.envelopes[0]
    assert envelope.mail_from == SENDER
    assert sorted(envelope.rcpt_tos) == ["ops@cc.example", "qa@cc.example", "supervisor@cc.example"]
    message = mailbox.message()
    assert message["Subject"] == "Campaign summary · 2026-03-07 to 2026-03-08 (America/New_York)"
    assert message["From"] == SENDER
    assert "Ops Desk <ops@cc.example>" in message["To"]
    body = message.get_body(("html",))
    assert body is not None
    html = body.get_content()
    for fact in ("Campaign summary", "Attempts<b>5</b>", "Completion rate (%)<b>40</b>"):
        assert fact in html
    attachments = {
        part.get_filename(): part.get_payload(decode=True) for part in message.iter_attachments()
    }
    base = "campaign-summary_2026-03-07_2026-03-08"
    assert sorted(attachments) == sorted(
        [
            f"{base}.pdf",
            f"{base}.xlsx",
            f"{base}.html",
            f"{base}_daily.csv",
            f"{base}_campaign-totals.csv",
        ]
    )
    assert attachments[f"{base}.pdf"].startswith(b"%PDF")
    book = openpyxl.load_workbook(io.BytesIO(attachments[f"{base}.xlsx"]))
    assert book["Daily"]["C2"].value == 1 and book["Daily"].freeze_panes == "A2"
    assert b"Spring Sale" in attachments[f"{base}_daily.csv"]
    # The outcome: bytes = the files sent; recorded on the server as well.
    sizes = sum(len(content) for content in attachments.values())
    assert outcome.status == "completed" and outcome.bytes == sizes
    assert outcome.files == [f"email:{a}" for a in ["supervisor@cc.example", "ops@cc.example",
                                                     "qa@cc.example"]]  # fmt: skip
    recorded = outcome_of(state.state_details.flow_run_id)
    assert recorded.bytes == sizes and recorded.object_name == "campaign-summary"
    assert recorded.step == "generate" and recorded.rows_read == 5


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_smtp_error_is_retried_then_fails_with_the_reply_and_no_password(
    engine: sa.Engine, smtp: SmtpServer, fast_retries: None, caplog: pytest.LogCaptureFixture
) -> None:
    seed(engine)
    smtp.mailbox.reject_data = "554 5.7.1 Message rejected: attachment policy"
    block = save_email_block(smtp)
    state = emailed_list_status(block)
    assert state.is_failed()
    assert smtp.mailbox.data_calls == 3  # one try and two retries
    assert not smtp.mailbox.envelopes
    assert "554 5.7.1 Message rejected: attachment policy" in state.message
    assert "127.0.0.1" in state.message
    assert PASSWORD not in state.message and PASSWORD not in caplog.text
    outcome = outcome_of(state.state_details.flow_run_id)
    assert outcome.status == "failed" and "554 5.7.1" in (outcome.message or "")
    # Generated, but nothing counts as sent.
    assert outcome.bytes == 0 and outcome.files == []
    assert outcome.extra["generated"] == [
        "list-status_2026-03-07_2026-03-08_list-status.csv",
        "list-status_2026-03-07_2026-03-08_calling-hours.csv",
    ]
    assert outcome.extra["delivered"] == []
    assert PASSWORD not in json.dumps(outcome.to_dict())


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_refused_login_names_the_reply_not_the_password(
    engine: sa.Engine, smtp: SmtpServer, fast_retries: None, caplog: pytest.LogCaptureFixture
) -> None:
    wrong = "Wr0ng-Passw0rd-Value"
    block = save_email_block(smtp, password=wrong)
    state = emailed_list_status(block, report="exclusion-activity", formats=["html"])
    assert state.is_failed()
    assert "535" in state.message and "Authentication" in state.message
    assert wrong not in state.message and wrong not in caplog.text
    # smtplib tries each mechanism the server offers; the flow tried three times.
    assert [m for _login, m in smtp.mailbox.logins].count("PLAIN") == 3
    assert not smtp.mailbox.envelopes


@pytest.mark.timeout(120)
@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_a_stalled_smtp_server_times_out_each_try(
    engine: sa.Engine, smtp: SmtpServer, fast_retries: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("flows.common.mail.EMAIL_TIMEOUT_SECONDS", 2.0)
    smtp.mailbox.stall_login = True
    block = save_email_block(smtp)
    state = emailed_list_status(block)
    assert state.is_failed()
    assert f"SMTP server 127.0.0.1:{smtp.port} did not answer within 2 s" in state.message
    assert len(smtp.mailbox.logins) == 3 and not smtp.mailbox.envelopes


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_a_refused_recipient_fails_the_run_after_the_others_got_it(
    engine: sa.Engine, smtp: SmtpServer, fast_retries: None
) -> None:
    smtp.mailbox.refuse = {"gone@cc.example"}
    block = save_email_block(smtp)
    state = emailed_list_status(block, email_to=["supervisor@cc.example", "gone@cc.example"])
    assert state.is_failed()
    assert "refused gone@cc.example (550 5.1.1" in state.message
    assert "went to supervisor@cc.example" in state.message
    assert smtp.mailbox.data_calls == 1  # not retried: supervisor has it already
    assert smtp.mailbox.envelopes[0].rcpt_tos == ["supervisor@cc.example"]
    outcome = outcome_of(state.state_details.flow_run_id)
    assert outcome.bytes == 0 and outcome.extra["delivered"] == ["email:supervisor@cc.example"]



# --- e-mail with a local copy; a failed validation sends nothing ----------------------


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_local_destination_and_email_together(
    engine: sa.Engine, smtp: SmtpServer, tmp_path: Path
) -> None:
    seed(engine)
    block = save_email_block(smtp)
    state = run_report(
        report="exclusion-activity",
        period="2026-03-01/2026-03-09",
        formats="pdf",
        email_to="supervisor@cc.example",
        email_block=block,
        email_subject="DNC weekly",
        destination=str(tmp_path / "out"),
        time_zone=NY,
        return_state=True,
    )
    assert state.is_completed(), state.message
    (pdf,) = (tmp_path / "out").iterdir()
    assert pdf.name == "exclusion-activity_2026-03-01_2026-03-09.pdf"
    message = smtp.mailbox.message()
    assert message["Subject"] == "DNC weekly"
    (attachment,) = message.iter_attachments()
    assert attachment.get_payload(decode=True) == pdf.read_bytes()
    outcome = state.result()
    assert outcome.bytes == pdf.stat().st_size
    assert outcome.files == [str(pdf), "email:supervisor@cc.example"]



@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_a_failed_validation_generates_and_sends_nothing(
    engine: sa.Engine, smtp: SmtpServer, tmp_path: Path
) -> None:
    block = save_email_block(smtp)
    # Refused by the parameter's type: the flow's body never runs.
    state = emailed_list_status(block, formats=["pdf", "docx"], destination=str(tmp_path / "out"))
    assert state.is_failed() and "Input should be 'csv', 'xlsx', 'html' or 'pdf'" in state.message
    assert not (tmp_path / "out").exists() and smtp.mailbox.data_calls == 0
    # Refused by the check a type cannot express, at the start of the body.
    state = emailed_list_status(block, period="fortnight", destination=str(tmp_path / "out"))
    assert state.is_failed() and "period 'fortnight' is not one of" in state.message
    assert not (tmp_path / "out").exists() and smtp.mailbox.data_calls == 0
    outcome = outcome_of(state.state_details.flow_run_id)
    assert outcome.status == "failed" and "generated" not in outcome.extra

