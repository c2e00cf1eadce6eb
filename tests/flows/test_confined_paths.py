"""Confined paths: every location resolves inside its base folder, after symlinks.

On the real sshd and real local files: ``//`` absolute forms, ``..``, symlinks inside
the base that point outside, ``file://``, ``after_import: delete`` and ``archive:``
outside the base, and destinations. Each is refused with one line naming the
parameter, as ``InvalidParameter``, not retried; nothing is read, moved, deleted or
written, and no error quotes the file.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast
from uuid import UUID

import pytest
import sqlalchemy as sa
from prefect import get_client
from prefect.client.schemas.filters import TaskRunFilter, TaskRunFilterFlowRunId
from prefect.client.schemas.objects import State
from prefect.settings import PREFECT_FLOWS_HEARTBEAT_FREQUENCY, temporary_settings

from blocks.sftp import SftpServer
from contact_center.exceptions import InvalidParameter
from contact_center.parsing.locations import within
from contact_center.settings import get_settings
from contact_center.storage.models import CallingList, ExclusionList, ResultsExport
from flows.calling_list_import import import_calling_list
from flows.common.transfer import deliver
from flows.exclusion_import import import_exclusions
from flows.report_execution import run_report
from flows.results_export import export_campaign_results

#: What every file outside the bases holds: no error, log or outcome may quote it.
SECRET = "TOPSECRET-7f3a"
LEADS = "account,phone1\nA1,2127365000\nA2,2127365001\n"
LOCAL_HINT = "(CCTASKS_LOCAL_FOLDERS lists the folders allowed)"


@pytest.fixture(autouse=True)
def _quick_runs() -> Iterator[None]:
    with temporary_settings(updates={PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None}):
        yield


@pytest.fixture
def outside() -> Iterator[Path]:
    """A folder outside the local folders (the session's temporary root), with a secret."""
    folder = Path(tempfile.mkdtemp(prefix="cctasks-outside-"))
    assert not within(str(folder), str(get_settings().local_folders[0]))
    (folder / "secret.csv").write_text(f"account,phone\n{SECRET},2127365000\n")
    try:
        yield folder
    finally:
        shutil.rmtree(folder)


def import_list(name: str, source: str, **parameters: Any) -> State:
    return cast(
        State,
        import_calling_list(list_name=name, source=source, **parameters, return_state=True),
    )


def run_id(state: State) -> UUID:
    flow_run_id = state.state_details.flow_run_id
    assert flow_run_id is not None
    return flow_run_id


def attempts(state: State) -> dict[str, int]:
    """Task name -> attempts, of the flow run's task runs."""
    with get_client(sync_client=True) as client:
        runs = client.read_task_runs(
            task_run_filter=TaskRunFilter(flow_run_id=TaskRunFilterFlowRunId(any_=[run_id(state)]))
        )
    return {r.name.rsplit("-", 1)[0]: r.run_count for r in runs}


def refused(state: State, line: str) -> None:
    """The run failed on one InvalidParameter line that is ``line``, quoting no file."""
    assert state.is_failed(), state.message
    message = state.message or ""
    assert f"InvalidParameter: {line}" in message, message
    assert "\n" not in message and SECRET not in message and "root:" not in message
    outcome = state.result(raise_on_failure=False)
    assert isinstance(outcome, InvalidParameter) and str(outcome) == line


def list_names(engine: sa.Engine) -> list[str]:
    with engine.connect() as conn:
        names = conn.scalars(sa.select(CallingList.name)).all()
        names += conn.scalars(sa.select(ExclusionList.name)).all()
    return list(names)


# --- the rule ------------------------------------------------------------------------------


def test_within_compares_folders_not_prefixes() -> None:
    assert within("/srv/drop/in/a.csv", "/srv/drop") and within("/srv/drop", "/srv/drop/")
    assert within("//srv/drop/a.csv", "/srv/drop") and within("/srv/./drop//a", "/srv/drop")
    assert not within("//etc/shadow", "/srv/drop")
    assert not within("/srv/dropbox/a.csv", "/srv/drop")
    assert not within("/srv/drop/../etc/passwd", "/srv/drop")
    assert within("/anything", "/")


def test_local_folders_default_to_drop_and_outbox(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CCTASKS_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("CCTASKS_LOCAL_FOLDERS")
    home = tmp_path / "home"
    assert get_settings().local_folders == (home / "drop", home / "outbox")
    monkeypatch.setenv("CCTASKS_LOCAL_FOLDERS", f" {tmp_path}/a {os.pathsep}{tmp_path}/b/../c ")
    assert get_settings().local_folders == (tmp_path / "a", tmp_path / "c")


# --- SFTP sources --------------------------------------------------------------------------


def _sftp_cases(sshd: Any, block: str, secret: Path) -> dict[str, tuple[str, str]]:
    """name -> (source, the one line that refuses it)."""
    folder = sshd.home / "confined"
    folder.mkdir(exist_ok=True)
    for name, target in (("link.csv", secret), ("linked", secret.parent)):
        if not (folder / name).is_symlink():
            (folder / name).symlink_to(target)
    base = f"the block's base folder '{sshd.home}'"
    return {
        "etc-shadow": (
            f"sftp://{block}//etc/shadow",
            f"source 'sftp://{block}//etc/shadow' is outside {base}",
        ),
        "absolute": (
            f"sftp://{block}/{secret}",  # "/tmp/..." after the block's "/": an absolute path
            f"source 'sftp://{block}/{secret}' is outside {base}",
        ),
        "symlinked-file": (
            f"sftp://{block}/confined/link.csv",
            f"source 'sftp://{block}/confined/link.csv' resolves to '{secret}', which is "
            f"outside {base}",
        ),
        "symlinked-folder-glob": (
            f"sftp://{block}/confined/linked/*.csv",
            f"source 'sftp://{block}/confined/linked/*.csv' resolves to '{secret.parent}', "
            f"which is outside {base}",
        ),
        "dotdot": (
            f"sftp://{block}/confined/../../sshd.log",
            f"location 'sftp://{block}/confined/../../sshd.log' climbs out of its base with "
            "'..'; refused",
        ),
    }


@pytest.mark.parametrize(
    "case", ["etc-shadow", "absolute", "symlinked-file", "symlinked-folder-glob", "dotdot"]
)
def test_sftp_sources_outside_the_base_are_refused_and_not_retried(
    case: str, sshd: Any, sftp_block: str, engine: sa.Engine
) -> None:
    secret = sshd.root / "outside" / "secret.csv"
    secret.parent.mkdir(exist_ok=True)
    secret.write_text(f"account,phone\n{SECRET},2127365000\n")
    source, line = _sftp_cases(sshd, sftp_block, secret)[case]
    state = import_list("Confined", source, after_import="delete")
    refused(state, line)
    assert attempts(state).get("fetch_list_file", 1) == 1  # InvalidParameter is not retried
    assert secret.read_text().startswith("account,phone\n" + SECRET)  # not deleted
    assert list_names(engine) == []
    # The exclusion import refuses the same, and does not retry either.
    if case != "dotdot":
        excluded = cast(State, import_exclusions("Confined DNC", source=source, return_state=True))
        refused(excluded, line)
        assert attempts(excluded).get("fetch_exclusion_file", 1) == 1
        assert list_names(engine) == [] and secret.exists()


def test_block_base_folder_confines_sources_deletions_and_archives(
    sshd: Any, engine: sa.Engine
) -> None:
    root = sshd.home / "based"
    for name in ("base/in", "other", "base/elsewhere"):
        (root / name).mkdir(parents=True, exist_ok=True)
    escape = sshd.root / "escape"
    escape.mkdir(exist_ok=True)
    if not (root / "base" / "escape").is_symlink():
        (root / "base" / "escape").symlink_to(escape)
    SftpServer(
        host=sshd.host,
        port=sshd.port,
        username=sshd.username,
        private_key=sshd.private_key,
        known_host_keys=sshd.known_hosts,
        base_folder=str(root / "base"),
    ).save("based-sftp", overwrite=True)
    base = f"the block's base folder '{root / 'base'}'"

    # Inside the login folder but outside the block's base: refused, and not deleted.
    (root / "other" / "leads.csv").write_text(LEADS)
    other = "sftp://based-sftp/based/other/leads.csv"
    refused(
        import_list("Based", other, after_import="delete"), f"source '{other}' is outside {base}"
    )
    assert (root / "other" / "leads.csv").read_text() == LEADS

    # archive:/abs outside the base: refused before any I/O, so nothing is loaded or moved.
    leads = root / "base" / "in" / "leads.csv"
    leads.write_text(LEADS)
    source = "sftp://based-sftp/based/base/in/leads.csv"
    action = f"archive:{sshd.root}/stolen"
    refused(
        import_list("Based", source, after_import=action),
        f"after_import '{action}' is outside {base}",
    )
    assert leads.read_text() == LEADS and not (sshd.root / "stolen").exists()
    assert list_names(engine) == []

    # An archive folder that is a symlink out of the base: the load commits, then the
    # move is refused (the file stays where it was) and the run fails saying why.
    action = "archive:based/base/escape"
    state = import_list("Based", source, after_import=action)
    refused(state, f"after_import '{action}' resolves to '{escape}', which is outside {base}")
    assert leads.read_text() == LEADS and list(escape.iterdir()) == []
    assert list_names(engine) == ["Based"]

    # Inside the base, everything works: archived into a folder of the base.
    action = "archive:based/base/elsewhere"
    state = import_list("Based", source, after_import=action, force=True)
    assert state.is_completed(), state.message
    assert state.result().extra["after_import"] == "archived to based/base/elsewhere/leads.csv"
    assert (root / "base" / "elsewhere" / "leads.csv").read_text() == LEADS


# --- local sources -------------------------------------------------------------------------


def test_local_paths_outside_the_local_folders_are_refused(
    tmp_path: Path, outside: Path, engine: sa.Engine
) -> None:
    allowed = f"the local folders '{get_settings().local_folders[0]}' {LOCAL_HINT}"
    secret = outside / "secret.csv"
    refused(
        import_list("Local", "file:///etc/passwd"),
        f"source 'file:///etc/passwd' is outside {allowed}",
    )
    refused(
        import_list("Local", str(secret), after_import="delete"),
        f"source '{secret}' is outside {allowed}",
    )
    (tmp_path / "link.csv").symlink_to(secret)
    link = str(tmp_path / "link.csv")
    refused(
        import_list("Local", link, after_import="delete"),
        f"source '{link}' resolves to '{secret}', which is outside {allowed}",
    )
    (tmp_path / "linked").symlink_to(outside)
    pattern = f"file://{tmp_path}/linked/*.csv"
    refused(
        import_list("Local", pattern),
        f"source '{pattern}' resolves to '{outside}', which is outside {allowed}",
    )
    leads = tmp_path / "leads.csv"
    leads.write_text(LEADS)
    action = f"archive:{outside}/stolen"
    refused(
        import_list("Local", str(leads), after_import=action),
        f"after_import '{action}' is outside {allowed}",
    )
    # Nothing was read, loaded, moved or deleted.
    assert secret.read_text().startswith("account,phone\n" + SECRET)
    assert leads.read_text() == LEADS and sorted(p.name for p in outside.iterdir()) == [
        "secret.csv"
    ]
    assert (tmp_path / "link.csv").is_symlink() and list_names(engine) == []
    # Inside: loaded and archived.
    state = import_list("Local", str(leads), after_import=f"archive:{tmp_path}/done")
    assert state.is_completed(), state.message
    assert (tmp_path / "done" / "leads.csv").read_text() == LEADS


# --- destinations --------------------------------------------------------------------------


def test_destinations_outside_are_refused_and_nothing_is_written(
    sshd: Any, sftp_block: str, tmp_path: Path, outside: Path
) -> None:
    report = tmp_path / "report.csv"
    report.write_text("a,b\n1,2\n")
    allowed = f"the local folders '{get_settings().local_folders[0]}' {LOCAL_HINT}"
    with pytest.raises(InvalidParameter) as info:
        deliver(report, str(outside), name="report.csv")
    assert str(info.value) == f"destination '{outside}' is outside {allowed}"
    base = f"the block's base folder '{sshd.home}'"
    absolute = f"sftp://{sftp_block}/{outside}"
    with pytest.raises(InvalidParameter) as info:
        deliver(report, absolute, name="report.csv")
    assert str(info.value) == f"destination '{absolute}' is outside {base}"
    out = sshd.home / "deliver-confined"
    out.mkdir(exist_ok=True)
    if not (out / "linked").is_symlink():
        (out / "linked").symlink_to(outside)
    linked = f"sftp://{sftp_block}/deliver-confined/linked"
    with pytest.raises(InvalidParameter, match=r"^destination .* resolves to .* outside "):
        deliver(report, linked, name="report.csv")
    # A temporary name planted as a symlink out of the base is not written through.
    (out / ".report.csv.part").unlink(missing_ok=True)
    (out / ".report.csv.part").symlink_to(outside / "secret.csv")
    with pytest.raises(InvalidParameter, match=r"^destination .* resolves to .* outside "):
        deliver(report, f"sftp://{sftp_block}/deliver-confined", name="report.csv")
    (local_out := tmp_path / "out").mkdir()
    (local_out / ".report.csv.part").symlink_to(outside / "secret.csv")
    final, _ = deliver(report, str(local_out), name="report.csv")
    assert Path(final.path).read_text() == "a,b\n1,2\n" and not Path(final.path).is_symlink()
    assert sorted(p.name for p in outside.iterdir()) == ["secret.csv"]
    assert (outside / "secret.csv").read_text().startswith("account,phone\n" + SECRET)


def test_report_and_export_refuse_a_destination_outside_before_any_work(
    engine: sa.Engine, outside: Path
) -> None:
    allowed = f"the local folders '{get_settings().local_folders[0]}' {LOCAL_HINT}"
    state = run_report(
        report="list-status",
        period="2026-03-07/2026-03-08",
        formats=["csv"],
        destination=str(outside / "reports"),
        return_state=True,
    )
    refused(state, f"destination '{outside / 'reports'}' is outside {allowed}")
    assert attempts(state) == {}  # nothing queried, rendered or delivered
    state = export_campaign_results(
        campaign="Spring Sales", destination=f"file://{outside}/exports", return_state=True
    )
    refused(state, f"destination 'file://{outside}/exports' is outside {allowed}")
    assert attempts(state) == {}
    with engine.connect() as conn:
        assert conn.scalar(sa.select(sa.func.count()).select_from(ResultsExport)) == 0
    assert sorted(p.name for p in outside.iterdir()) == ["secret.csv"]
