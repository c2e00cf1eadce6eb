"""Typed flow parameters: a bad value is refused before a run is created.

The five flows type their parameters (``contact_center.parsing.parameters``); ``prefect deploy``
turns the types into each deployment's parameter schema, and ``prefect.yaml`` makes
the server enforce it. Here ``prefect.yaml`` itself is deployed with
``prefect deploy --all`` to the session's real Prefect server, then a bad value is
sent the three ways an admin can: ``cctasks run``, ``prefect deployment run`` and the
API the UI uses. Each is refused, and no flow run exists afterwards.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any, get_args
from uuid import UUID

import httpx
import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterDeploymentId
from prefect.exceptions import ParameterTypeError
from prefect.settings import PREFECT_API_URL
from typer.testing import CliRunner

from cli.main import app
from contact_center.exceptions import InvalidParameter
from contact_center.parsing.detection import DELIMITER_NAMES, DELIMITERS, FORMATS
from contact_center.parsing.parameters import Delimiter, FileFormat, RecordField, choices
from contact_center.storage.models import RECORD_FIELDS
from deployments.bootstrap import deploy_all, ensure_work_pool
from flows.calling_list_import import import_calling_list
from flows.campaign_trigger import campaign_trigger
from flows.common import check_before_io
from flows.exclusion_import import import_exclusions
from flows.report_execution import run_report
from flows.results_export import export_campaign_results

PROJECT = Path(__file__).resolve().parents[2]
LIST_TASK = "import-calling-list/spring-leads-import"
LISTS, DNC, EXPORT = import_calling_list, import_exclusions, export_campaign_results


# --- the types, without a server --------------------------------------------------------


def test_the_choices_are_the_readers_own() -> None:
    assert set(choices(Delimiter)) == set(DELIMITERS) | set(DELIMITER_NAMES)
    assert choices(FileFormat) == FORMATS
    assert choices(RecordField) == RECORD_FIELDS
    assert get_args(Delimiter)  # a Literal, so the schema has an enum


@pytest.mark.parametrize(
    "flow, parameters, match",
    [
        (LISTS, {"update_policy": "merge"}, "update_policy: Input should be"),
        (LISTS, {"delimiter": ";;"}, r"delimiter: Input should be ',', ';'"),
        (LISTS, {"max_reject_ratio": 5}, "max_reject_ratio: Input should be less"),
        (LISTS, {"min_rows": -1}, "min_rows: Input should be greater"),
        (LISTS, {"widths": [3, 0]}, r"widths\.1: Input should be greater than 0"),
        (LISTS, {"after_import": "move"}, "after_import: String should match"),
        (LISTS, {"force": "yes"}, "force: Input should be a valid boolean"),
        (LISTS, {"mapping": {"Mobile": "mobile"}}, r"mapping\.Mobile: Input should"),
        (DNC, {"step": "purge"}, "step: Input should be 'import' or 'reset'"),
        (DNC, {"update_policy": "append"}, "update_policy: Input should be 'add' or"),
        (DNC, {"expires_after_days": 0}, "expires_after_days: Input should"),
        (DNC, {"match_field": "email"}, "match_field: Input should be 'account'"),
        (DNC, {"max_removed_ratio": 2}, "max_removed_ratio: Input should be less"),
        (campaign_trigger, {"step": "pause"}, "step: Input should be 'start' or 'stop'"),
        (campaign_trigger, {"source": "cron"}, "source: Input should be 'schedule', 'manual'"),
        (EXPORT, {"format": "xlsx"}, "format: Input should be 'simple' or"),
        (EXPORT, {"gzip": "no"}, "gzip: Input should be a valid boolean"),
        (run_report, {"formats": ["pdf", "docx"]}, r"formats\.list.*\.1: Input should be 'csv'"),
    ],
)  # fmt: skip
def test_each_flow_refuses_a_bad_value_by_its_type(
    flow: Any, parameters: dict[str, Any], match: str
) -> None:
    required = {
        "import-calling-list": {"list_name": "L", "source": "x.csv"},
        "import-exclusions": {"exclusion_list": "dnc", "source": "x.csv"},
        "campaign-trigger": {"campaign": "C", "step": "start"},
        "export-campaign-results": {"campaign": "C", "destination": "out"},
        "run-report": {"report": "list-status"},
    }[flow.name]
    with pytest.raises(ParameterTypeError, match=match):
        flow.validate_parameters({**required, **parameters})


def test_after_import_is_checked_once_by_type_and_confinement() -> None:
    with pytest.raises(ParameterTypeError, match="after_import: String should match"):
        import_exclusions.validate_parameters({"exclusion_list": "d", "after_import": "archive:"})
    with pytest.raises(InvalidParameter, match=r"after_import 'archive:\.\./x' climbs out"):
        check_before_io("x.csv", after_import="archive:../x")


# --- deployed from prefect.yaml, against the real server --------------------------------


@pytest.fixture(scope="module")
def deployed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """prefect.yaml applied with ``prefect deploy --all``; the environment of a client."""
    ensure_work_pool()
    home = tmp_path_factory.mktemp("typed-home")
    env = {
        **os.environ,
        "PREFECT_API_URL": str(PREFECT_API_URL.value()),
        "CCTASKS_HOME": str(home),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "DO_NOT_TRACK": "1",
    }
    deploy_all(PROJECT, env, home / "deploy.log")
    yield env


def _deployment_id(name: str) -> UUID:
    flow_name, deployment_name = name.split("/")
    with get_client(sync_client=True) as client:
        return client.read_deployment_by_name(f"{flow_name}/{deployment_name}").id


def _runs_of(deployment_id: UUID) -> int:
    with get_client(sync_client=True) as client:
        runs = client.read_flow_runs(
            flow_run_filter=FlowRunFilter(
                deployment_id=FlowRunFilterDeploymentId(any_=[deployment_id])
            )
        )
    return len(runs)


def test_the_deployment_schema_has_the_choices_and_is_enforced(deployed: dict[str, str]) -> None:
    with get_client(sync_client=True) as client:
        deployment = client.read_deployment(_deployment_id(LIST_TASK))
    assert deployment.enforce_parameter_schema is True
    properties = deployment.parameter_openapi_schema["properties"]
    # An enum is what makes the Prefect UI show a drop-down.
    assert properties["update_policy"]["enum"] == ["append", "update", "replace"]
    assert properties["update_policy"]["default"] == "update"
    ratio = properties["max_reject_ratio"]["anyOf"][0]
    assert (ratio["minimum"], ratio["maximum"]) == (0, 1)
    assert set(properties["delimiter"]["anyOf"][0]["enum"]) >= {",", ";", "\t", "|"}
    with get_client(sync_client=True) as client:
        trigger = client.read_deployment(_deployment_id("campaign-trigger/spring-sales-hours"))
    assert trigger.parameter_openapi_schema["properties"]["step"]["enum"] == ["start", "stop"]


@pytest.mark.parametrize(
    "pair, names",
    [
        ("update_policy=bogus", ["'update_policy'", "'append', 'update', 'replace'"]),
        ("max_reject_ratio=5", ["'max_reject_ratio'", "5 is greater than the maximum of 1"]),
    ],
)
def test_cctasks_run_refuses_a_bad_value_and_creates_no_run(
    deployed: dict[str, str], pair: str, names: list[str]
) -> None:
    deployment_id = _deployment_id(LIST_TASK)
    before = _runs_of(deployment_id)
    result = CliRunner().invoke(app, ["run", "spring-leads-import", "-p", pair])
    assert result.exit_code != 0
    message = result.output.strip()
    assert len(message.splitlines()) == 1 and "Traceback" not in message, message
    for name in names:
        assert name in message, message
    assert _runs_of(deployment_id) == before


def test_prefect_deployment_run_is_refused_by_the_server(deployed: dict[str, str]) -> None:
    deployment_id = _deployment_id(LIST_TASK)
    before = _runs_of(deployment_id)
    command = [sys.executable, "-m", "prefect", "deployment", "run", LIST_TASK]
    result = subprocess.run(
        [*command, "-p", "update_policy=bogus"],
        env=deployed,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode != 0
    assert "update_policy" in result.stdout + result.stderr
    assert _runs_of(deployment_id) == before


@pytest.mark.parametrize(
    "parameters, field",
    [({"update_policy": "bogus"}, "update_policy"), ({"min_rows": -5}, "min_rows")],
)
def test_the_api_behind_the_ui_answers_409(
    deployed: dict[str, str], parameters: dict[str, Any], field: str
) -> None:
    deployment_id = _deployment_id(LIST_TASK)
    before = _runs_of(deployment_id)
    response = httpx.post(
        f"{PREFECT_API_URL.value()}/deployments/{deployment_id}/create_flow_run",
        json={"parameters": parameters},
        timeout=30,
    )
    assert response.status_code in (409, 422), response.text
    assert field in response.json()["detail"]
    assert _runs_of(deployment_id) == before


def test_both_imports_retry_the_same_errors() -> None:
    from contact_center.exceptions import HostKeyError
    from flows.calling_list_import import fetch_list_file
    from flows.common.retries import NOT_RETRIED, retry_transfer
    from flows.exclusion_steps import fetch_exclusion_file

    assert fetch_list_file.retry_condition_fn is retry_transfer
    assert fetch_exclusion_file.retry_condition_fn is retry_transfer
    assert HostKeyError in NOT_RETRIED
