"""The run-report flow on the real Prefect harness: a report delivered to the real sshd,
bad parameters refused before anything is generated, the task-log report, and the e-mail
task's retries.

E-mail delivery, against a real SMTP server, is in ``test_report_email.py``.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from test_report_queries import PERIOD, seed

from contact_center.exceptions import InvalidParameter, ObjectNotFound
from flows.report_execution import email_report, run_report
from flows.report_request import prepare_request

NY = "America/New_York"


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
