"""The ``run-report`` flow end to end: a real SMTP server (aiosmtpd, TLS and login), the
real sshd, SQLite and PostgreSQL, and the real Prefect harness."""

from __future__ import annotations

import datetime as dt
import email
import io
import ipaddress
import json
import ssl
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.policy import default as default_policy
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
from test_report_queries import PERIOD, seed

from contact_center.exceptions import InvalidParameter, ObjectNotFound
from contact_center.outcome import Outcome
from contact_center.settings import OUTCOME_ARTIFACT_KEY
from flows.report_execution import email_report, run_report
from flows.report_request import prepare_request

# The SSL server is TLS from the first byte, which aiosmtpd cannot see, so it warns.
pytestmark = pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS:UserWarning")

SENDER = "reports@cc.example"
PASSWORD = "Sm7p-Sekret-Value-42"
NY = "America/New_York"


# --- a real SMTP server with TLS and login ----------------------------------------------


@dataclass
class Mailbox:
    """What the test SMTP server received, and how it should misbehave."""

    stall_login: bool = False
    envelopes: list[Any] = field(default_factory=list)
    data_calls: int = 0
    reject_data: str | None = None
    refuse: set[str] = field(default_factory=set)
    logins: list[tuple[str, str]] = field(default_factory=list)

    async def handle_RCPT(  # noqa: N802 (aiosmtpd's hook name)
        self, server: Any, session: Any, envelope: Any, address: str, options: Any
    ) -> str:
        if address in self.refuse:
            return f"550 5.1.1 <{address}>: mailbox unavailable"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        self.data_calls += 1
        if self.reject_data:
            return self.reject_data
        self.envelopes.append(envelope)
        return "250 Message accepted for delivery"

    def message(self, number: int = 0) -> EmailMessage:
        parsed = email.message_from_bytes(self.envelopes[number].content, policy=default_policy)
        assert isinstance(parsed, EmailMessage)
        return parsed


@dataclass
class SmtpServer:
    port: int
    mailbox: Mailbox
    mode: str


def _certificate(folder: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 (trusted through SSL_CERT_FILE)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = folder / "smtp.crt", folder / "smtp.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return _certificate(tmp_path_factory.mktemp("smtp-tls"))


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


# --- destinations ------------------------------------------------------------------------


def test_report_delivered_to_the_real_sshd(engine: sa.Engine, sshd: Any, sftp_block: str) -> None:
    seed(engine)
    state = run_report(
        report="list-status",
        period=PERIOD,
        formats=["csv", "xlsx"],
        destination=f"sftp://{sftp_block}/reports/daily",
        time_zone=NY,
        return_state=True,
    )
    assert state.is_completed(), state.message
    folder = sshd.home / "reports" / "daily"
    names = sorted(p.name for p in folder.iterdir())
    # Two tables (the lists and their calling hours): one CSV file per table.
    assert names == [
        "list-status_2026-03-07_2026-03-08.xlsx",
        "list-status_2026-03-07_2026-03-08_calling-hours.csv",
        "list-status_2026-03-07_2026-03-08_list-status.csv",
    ]
    lines = (folder / names[2]).read_text().splitlines()
    assert lines[0].startswith("Calling list,Campaigns,Records,Dialable,Excluded,Expired")
    assert "Leads A,Spring Sale,6,3,1,2,2,1,6" in lines
    outcome = state.result()
    assert outcome.bytes == sum((folder / n).stat().st_size for n in names)
    assert sorted(outcome.files) == [f"sftp://{sftp_block}/reports/daily/{n}" for n in names]


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


# --- bad input fails before anything is generated ------------------------------------


@pytest.mark.parametrize(
    "changes, error, match",
    [
        ({"report": "campaign-sumary"}, ObjectNotFound,
         "available reports: campaign-summary, exclusion-activity, list-status, task-log"),
        ({"formats": ["pdf", "docx"]}, InvalidParameter, "format 'docx' is not one of"),
        ({"email_to": ["ok@cc.example", "bad@"]}, InvalidParameter, "'bad@' is not a valid"),
        ({"email_to": None, "destination": None}, InvalidParameter, "must go somewhere"),
        ({"period": "fortnight"}, InvalidParameter, "period 'fortnight' is not one of"),
        ({"time_zone": "Moon/Base"}, InvalidParameter, "not an IANA time zone"),
        ({"email_to": ["ok@cc.example"], "email_block": "no-such-block"}, ObjectNotFound,
         "no Email Server Credentials block"),
        ({"destination": "sftp://no-such-sftp/x"}, ObjectNotFound, "no SFTP Server block"),
        ({"options": {"colour": "red"}}, InvalidParameter, "has no option 'colour'"),
        ({"email_subject": "a\nBcc: x@y.z"}, InvalidParameter, "single line"),
        ({"formats": "pdf, odt"}, InvalidParameter, "format 'odt' is not one of"),
    ],
)  # fmt: skip
def test_bad_parameters_are_refused_up_front(
    changes: dict[str, Any], error: type[Exception], match: str, tmp_path: Path
) -> None:
    parameters: dict[str, Any] = {
        "report": "campaign-summary",
        "period": "yesterday",
        "formats": ["pdf"],
        "email_to": None,
        "email_block": "cctasks-email",
        "email_subject": None,
        "email_from": None,
        "destination": str(tmp_path),
        "time_zone": NY,
        "options": None,
        "now": dt.datetime(2026, 3, 9, 12, 0, tzinfo=dt.UTC),
    }
    parameters.update(changes)
    with pytest.raises(error, match=match):
        prepare_request(**parameters)


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


# --- task-log ----------------------------------------------------------------------------


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_task_log_report_lists_the_runs_of_the_period(engine: sa.Engine, tmp_path: Path) -> None:
    started = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1)
    good = run_report(
        report="list-status", period=PERIOD, formats=["csv"], destination=str(tmp_path / "a"),
        time_zone=NY, return_state=True,
    )  # fmt: skip
    bad = run_report(
        report="list-status", period=PERIOD, formats=["pdf", "odt"],
        destination=str(tmp_path / "a"), time_zone=NY, return_state=True,
    )  # fmt: skip
    assert good.is_completed() and bad.is_failed()
    window = (
        f"{started.isoformat()}/{(dt.datetime.now(dt.UTC) + dt.timedelta(seconds=1)).isoformat()}"
    )
    state = run_report(
        report="task-log",
        period=window,
        formats=["csv", "html"],
        destination=str(tmp_path / "log"),
        time_zone="UTC",
        return_state=True,
    )
    assert state.is_completed(), state.message
    folder = tmp_path / "log"
    (runs_csv,) = list(folder.glob("*_runs.csv"))
    lines = runs_csv.read_text().splitlines()
    assert lines[0] == (
        "Start time,End time,Type,Object name,Task name,Step,Attempts,Duration,Size (KB),"
        "Result,Error"
    )
    rows = lines[1:]
    assert len(rows) == 2, rows
    assert ",Report execution,list-status,list-status · generate,generate,1," in rows[0]
    assert rows[0].split(",")[-2:] == ["completed", ""]
    # Refused by the typed parameter: the row names the parameter and what it accepts.
    assert ",failed," in rows[1] and "formats" in rows[1] and "'pdf'" in rows[1]
    (by_type,) = list(folder.glob("*_by-type.csv"))
    assert by_type.read_text().splitlines()[1].startswith("Report execution,2,1,1,")
    (page,) = list(folder.glob("*.html"))
    html = page.read_text()
    assert 'src="data:image/png;base64,' in html and "Runs per day by result" in html
    only_failed = run_report(
        report="task-log", period=window, formats=["csv"], destination=str(tmp_path / "f"),
        time_zone="UTC", options={"failed_only": True}, return_state=True,
    )  # fmt: skip
    assert only_failed.is_completed(), only_failed.message
    (failed_csv,) = list((tmp_path / "f").glob("*_runs.csv"))
    assert len(failed_csv.read_text().splitlines()) == 2


def test_email_task_retries_are_the_network_setting() -> None:
    from contact_center.settings import NETWORK_RETRIES

    assert email_report.retries == NETWORK_RETRIES == 2
