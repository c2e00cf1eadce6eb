"""What admins see in the Prefect UI of the demo stack, read in a real Chromium.

Prefect's UI (v1, served at ``/``) shows an artifact's description on a run's Artifacts
tab and its content on the artifact's own page; the tests read both as a user would.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
from support.stack_support import RunningStack, yaml_deployments

from contact_center.outcome import Outcome
from flows.common.outcome import _markdown_text

pytestmark = [pytest.mark.slow, pytest.mark.ui, pytest.mark.timeout(1800)]

UPDATE_POLICIES = ["append", "update", "replace"]


# --- helpers ------------------------------------------------------------------------------


@contextmanager
def _client(stack: RunningStack) -> Iterator[Any]:
    """Prefect's client of the stack's server."""
    from prefect import get_client
    from prefect.settings import PREFECT_API_URL, temporary_settings

    with temporary_settings(updates={PREFECT_API_URL: stack.api_url}):
        with get_client(sync_client=True) as client:
            yield client


def _deployment_ids(stack: RunningStack) -> dict[str, UUID]:
    """``flow/deployment`` -> id."""
    with _client(stack) as client:
        flows = {f.id: f.name for f in client.read_flows()}
        return {f"{flows[d.flow_id]}/{d.name}": d.id for d in client.read_deployments()}


def _runs_of(stack: RunningStack, deployment: str, state: str | None = None) -> list[Any]:
    """The runs of ``deployment`` (in ``state``), the newest end first."""
    from prefect.client.schemas.filters import (
        DeploymentFilter,
        DeploymentFilterId,
        FlowRunFilter,
        FlowRunFilterState,
        FlowRunFilterStateType,
    )
    from prefect.client.schemas.objects import StateType
    from prefect.client.schemas.sorting import FlowRunSort

    deployment_id = _deployment_ids(stack)[deployment]
    states = (
        FlowRunFilterState(type=FlowRunFilterStateType(any_=[StateType(state)])) if state else None
    )
    with _client(stack) as client:
        return list(
            client.read_flow_runs(
                deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=[deployment_id])),
                flow_run_filter=FlowRunFilter(state=states) if states else None,
                sort=FlowRunSort.END_TIME_DESC,
            )
        )


def _artifacts_of(stack: RunningStack, flow_run_id: UUID) -> list[Any]:
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

    with _client(stack) as client:
        return list(
            client.read_artifacts(
                artifact_filter=ArtifactFilter(
                    flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id])
                )
            )
        )


def _open(page: Any, url: str) -> None:
    """Open ``url`` and wait until the single-page app has fetched its data."""
    page.goto(url)
    page.wait_for_load_state("networkidle")


def _open_tab(page: Any, name: str) -> None:
    page.locator("li.p-tab", has_text=name).click()
    page.wait_for_load_state("networkidle")


def _shoot(page: Any, folder: Path | None, name: str) -> None:
    """Save the page just checked as one of the manual's pictures, when asked to."""
    if folder is not None:
        folder.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(folder / name))


def _clock(cron: str) -> str:
    """``08:00 AM`` for ``0 8 * * 1-5``: how the UI words a schedule's time of day."""
    minute, hour = (int(part) for part in cron.split()[:2])
    return f"{(hour % 12) or 12:02d}:{minute:02d} {'AM' if hour < 12 else 'PM'}"


def _enum_of(schema: dict[str, Any], name: str) -> list[Any] | None:
    """The choices the parameter schema gives ``name``, following ``$ref``/``allOf``."""
    definitions = schema.get("definitions") or schema.get("$defs") or {}

    def resolve(node: dict[str, Any]) -> list[Any] | None:
        if "enum" in node:
            return list(node["enum"])
        if "$ref" in node:
            return resolve(definitions.get(node["$ref"].rsplit("/", 1)[-1], {}))
        for key in ("allOf", "anyOf", "oneOf"):
            for part in node.get(key, []):
                if (found := resolve(part)) is not None:
                    return found
        return None

    return resolve(schema.get("properties", {}).get(name, {}))


# --- the tests ----------------------------------------------------------------------------


def test_deployments_page_lists_every_task_with_description_and_schedules(
    demo_stack: RunningStack, page: Any, screenshots_dir: Path | None
) -> None:
    expected = yaml_deployments()
    ids = _deployment_ids(demo_stack)
    _open(page, f"http://127.0.0.1:{demo_stack.port}/deployments")
    for name in expected:
        flow, deployment = name.split("/")
        row = page.locator("tr", has=page.get_by_text(deployment, exact=True))
        row.wait_for()
        assert flow in row.inner_text(), name
    _shoot(page, screenshots_dir, "ui-deployments.png")

    for name, spec in expected.items():
        _open(page, f"http://127.0.0.1:{demo_stack.port}/deployments/deployment/{ids[name]}")
        _open_tab(page, "Description")
        # The UI renders the description as Markdown: `code` loses its backticks.
        description = " ".join(spec["description"].replace("`", "").split())
        page.get_by_text(description).first.wait_for()
        for schedule in spec.get("schedules") or []:  # the alert deployment has none
            # A schedule's card shows its slug; hovering it shows the schedule in words.
            card = page.locator(
                ".deployment-schedule-card__content", has_text=re.compile(f"^{schedule['slug']}$")
            )
            card.hover()
            if "interval" in schedule:  # the sensor's: "Every 30 seconds"
                words = re.compile(rf"^Every {schedule['interval']} seconds")
            else:
                clock = _clock(schedule["cron"])
                words = re.compile(rf"^At {clock}.*\({schedule['timezone']}\)$")
            page.get_by_text(words).first.wait_for()
            page.mouse.move(0, 0)  # close it before the next card


def test_a_completed_import_reads_like_the_task_log(
    demo_stack: RunningStack, page: Any, screenshots_dir: Path | None
) -> None:
    # The newest run that loaded its file: a later one of the same file (the sensor's, when
    # the demo's file is announced) ends Skipped, which is of Prefect's Completed type.
    run = next(
        r
        for r in _runs_of(demo_stack, "import-calling-list/spring-leads-import", "COMPLETED")
        if r.state_name == "Completed"
    )
    log = demo_stack.cli("log", "--task", "spring-leads-import", "--format", "json")
    assert log.returncode == 0, log.stderr
    row = json.loads(log.stdout)[0]
    assert run.name == f"{row['object_name']} · {row['step']}" == "Spring Leads · import"
    artifacts = {a.type: a for a in _artifacts_of(demo_stack, run.id) if a.type != "table"}
    tables = [a for a in _artifacts_of(demo_stack, run.id) if a.type == "table"]
    outcome = Outcome.from_row(
        json.loads(next(a for a in tables if a.key == "cctasks-outcome").data)[0]
    )
    summary = outcome.summary()
    assert summary.startswith("Spring Leads: ") and f"{outcome.rows_read} read" not in summary
    assert f"{outcome.rejected} rejected (" in summary  # the demo file holds rejects

    base = f"http://127.0.0.1:{demo_stack.port}"
    _open(page, f"{base}/runs/flow-run/{run.id}")
    page.get_by_text("Spring Leads · import", exact=True).first.wait_for()  # the title
    _shoot(page, screenshots_dir, "ui-runs.png")
    _open_tab(page, "Artifacts")
    page.get_by_text(summary, exact=True).first.wait_for()  # the outcome card's description
    _shoot(page, screenshots_dir, "ui-run-artifacts.png")

    # The outcome's page: the summary first, then its counts as a table.
    _open(page, f"{base}/artifacts/artifact/{artifacts['markdown'].id}")
    markdown = page.locator(".markdown-renderer", has=page.locator("table")).first
    markdown.wait_for()
    assert markdown.inner_text().strip().splitlines()[0] == summary
    counts = {
        cells[0]: cells[1]
        for cells in (
            [c.strip() for c in line.split("\t")]
            for line in markdown.locator("table").inner_text().splitlines()
        )
        if len(cells) == 2
    }
    assert counts["loaded"] == str(outcome.loaded) and counts["rejected"] == str(outcome.rejected)
    assert counts["rows_read"] == str(outcome.rows_read)
    _shoot(page, screenshots_dir, "ui-run-outcome.png")

    # The progress names the run, its step and the stages it went through.
    _open(page, f"{base}/artifacts/artifact/{artifacts['progress'].id}")
    page.get_by_text("Spring Leads · import: fetch, load done", exact=True).first.wait_for()
    page.get_by_text("Progress: 100%").first.wait_for()

    # The rejects: the first rows, with their row numbers and reasons, on the page.
    rejects = next(a for a in tables if (a.description or "").startswith("First "))
    first_rows = json.loads(rejects.data)
    _open(page, f"{base}/artifacts/artifact/{rejects.id}")
    table = page.locator("table").first
    table.wait_for()
    shown = table.inner_text()
    for rejected in first_rows:
        assert rejected["reason"] in shown and rejected["row"] in shown


def test_a_failed_import_shows_the_task_log_error_without_opening_the_logs(
    demo_stack: RunningStack, page: Any
) -> None:
    broken = demo_stack.home / "drop" / "lists" / "broken.csv"
    broken.write_text("Foo,Bar\n1,2\n", encoding="utf-8")
    ran = demo_stack.cli(
        "run", "spring-leads-import", "--param", f"source={broken}", "--watch", "--timeout", "600"
    )
    assert ran.returncode == 1, ran.stdout + ran.stderr
    log = demo_stack.cli(
        "log", "--task", "spring-leads-import", "--result", "failed", "--format", "json"
    )
    error = json.loads(log.stdout)[0]["error"]
    assert error.startswith("InvalidFile: ") and "broken.csv" in error and "Account" in error
    run = _runs_of(demo_stack, "import-calling-list/spring-leads-import", "FAILED")[0]

    _open(page, f"http://127.0.0.1:{demo_stack.port}/runs/flow-run/{run.id}")
    _open_tab(page, "Artifacts")
    line = f"Spring Leads · import failed: {error}"
    page.get_by_text(line, exact=True).first.wait_for()  # the outcome card's description
    markdown = next(a for a in _artifacts_of(demo_stack, run.id) if a.type == "markdown")
    assert str(markdown.data).splitlines()[0] == f"**{_markdown_text(line)}**"


def test_the_custom_run_form_offers_the_update_policies(
    demo_stack: RunningStack, page: Any
) -> None:
    deployment_id = _deployment_ids(demo_stack)["import-calling-list/spring-leads-import"]
    with _client(demo_stack) as client:
        deployment = client.read_deployment(deployment_id)
    choices = _enum_of(deployment.parameter_openapi_schema, "update_policy")
    if choices is None:
        pytest.skip(
            "update_policy is not typed yet: the deployment's parameter schema has no enum "
            "for it (typed parameters, issue 15 point 3); this turns on when they land"
        )
    assert choices == UPDATE_POLICIES

    _open(page, f"http://127.0.0.1:{demo_stack.port}/deployments/deployment/{deployment_id}/run")
    field = page.locator(
        ".schema-form-property", has=page.get_by_text(re.compile(r"^update_policy\b"))
    ).first
    select = field.locator("button.p-select-button__control")
    assert select.inner_text().strip() == deployment.parameters["update_policy"]
    select.focus()
    select.press("ArrowDown")  # opens the list of choices
    options = page.locator(".p-select-option__text")
    options.first.wait_for()
    assert options.all_inner_texts() == UPDATE_POLICIES

    from prefect.exceptions import PrefectHTTPStatusError

    with _client(demo_stack) as client, pytest.raises(
        PrefectHTTPStatusError, match=r"update_policy.*'bogus' is not one of"
    ):
        client.create_flow_run_from_deployment(
            deployment_id, parameters={"update_policy": "bogus"}
        )
    runs = _runs_of(demo_stack, "import-calling-list/spring-leads-import")
    assert not [r for r in runs if r.parameters.get("update_policy") == "bogus"]
