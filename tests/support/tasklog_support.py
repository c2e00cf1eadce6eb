"""Small flows named like the five real ones, and helpers, for the task-log and CLI tests.

They use the real outcome and progress helpers of ``flows/common`` so that the views
read exactly what the real flows record. (This module holds no tests.)
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from prefect import flow
from prefect.client.orchestration import get_client
from prefect.client.schemas.actions import DeploymentScheduleCreate
from prefect.client.schemas.filters import (
    ArtifactFilter,
    ArtifactFilterKey,
    FlowRunFilter,
    FlowRunFilterDeploymentId,
    FlowRunFilterState,
    FlowRunFilterStateType,
)
from prefect.client.schemas.objects import FlowRun, StateType
from prefect.client.schemas.sorting import ArtifactSort
from prefect.flow_engine import run_flow
from prefect.settings import PREFECT_FLOWS_HEARTBEAT_FREQUENCY, temporary_settings
from prefect.states import Cancelled, Crashed, Pending, Running

from contact_center.exceptions import InvalidFile
from contact_center.outcome import Outcome
from contact_center.settings import TASK_LOG_ARTIFACT_KEY
from flows.common.outcome import RunProgress, recording_outcome
from runlog.publish import publishes_task_log

# Flow runs that wait in the middle of their load step, by name, until released.
GATES: dict[str, threading.Event] = {}
# Attempts so far, by object name: the retried flow fails its first attempts.
ATTEMPTS: dict[str, int] = {}


def unique(prefix: str) -> str:
    """An object name no other test uses."""
    return f"{prefix} {uuid.uuid4().hex[:8]}"


def _work(outcome: Outcome, nbytes: int, gate: str | None) -> None:
    progress = RunProgress({"fetch": 0.5, "load": 0.5})
    progress.update("fetch", done=nbytes, total=nbytes, force=True)
    outcome.bytes = nbytes
    if gate:
        progress.update("load", done=1, total=2, force=True)  # 75 %
        GATES[gate].wait(60)
    progress.finish()


@publishes_task_log
@flow(
    name="import-calling-list",
    flow_run_name="{list_name} · import",
    retries=2,
    retry_delay_seconds=0,
)
def import_calling_list(
    list_name: str, nbytes: int = 0, fail_attempts: int = 0, gate: str | None = None
) -> Outcome:
    """Imports nothing; fails its first ``fail_attempts`` attempts."""
    with recording_outcome(Outcome(object_name=list_name, step="import")) as outcome:
        ATTEMPTS[list_name] = ATTEMPTS.get(list_name, 0) + 1
        if ATTEMPTS[list_name] <= fail_attempts:
            outcome.bytes = nbytes
            raise InvalidFile("no header row", file=f"{list_name}.csv", row=1)
        _work(outcome, nbytes, gate)
    return outcome


@publishes_task_log
@flow(name="import-exclusions", flow_run_name="{exclusion_list} · {step}")
def import_exclusions(exclusion_list: str, step: str = "import", nbytes: int = 0) -> Outcome:
    """Imports nothing."""
    with recording_outcome(Outcome(object_name=exclusion_list, step=step)) as outcome:
        _work(outcome, nbytes, None)
    return outcome


@publishes_task_log
@flow(name="campaign-trigger", flow_run_name="{campaign} · {step}")
def campaign_trigger(campaign: str, step: str) -> Outcome:
    """Triggers nothing."""
    with recording_outcome(Outcome(object_name=campaign, step=step)) as outcome:
        _work(outcome, 0, None)
    return outcome


@publishes_task_log
@flow(name="export-campaign-results", flow_run_name="{campaign} · export")
def export_campaign_results(campaign: str, nbytes: int = 0, delay: float = 0.0) -> Outcome:
    """Exports nothing, slowly if asked."""
    with recording_outcome(Outcome(object_name=campaign, step="export")) as outcome:
        time.sleep(delay)
        _work(outcome, nbytes, None)
    return outcome


@publishes_task_log
@flow(name="run-report", flow_run_name="{report} · generate")
def run_report(report: str, nbytes: int = 0, error: str | None = None) -> Outcome:
    """Generates nothing; fails with ``error`` if given."""
    with recording_outcome(Outcome(object_name=report, step="generate")) as outcome:
        outcome.bytes = nbytes
        if error:
            raise InvalidFile(error, file="report.csv")
        _work(outcome, nbytes, None)
    return outcome


@flow(name="not-a-cctasks-flow")
def other_flow(x: int = 1) -> int:
    """A flow that the views ignore unless --all."""
    return x


@contextmanager
def fast_flows() -> Iterator[None]:
    """Sync flow calls without the 1 s heartbeat wait."""
    with temporary_settings(updates={PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None}):
        yield


def call(fn: Any, **params: Any) -> UUID:
    """Call a flow (ad hoc, no deployment) and return its run id, even when it fails."""
    state = fn(**params, return_state=True)
    return UUID(str(state.state_details.flow_run_id))


def in_thread(fn: Any, **params: Any) -> threading.Thread:
    """Run a flow in a thread (it waits on a gate)."""
    thread = threading.Thread(target=lambda: fn(**params, return_state=True), daemon=True)
    thread.start()
    return thread


def ended_run(fn: Any, state: str, message: str, name: str, **params: Any) -> UUID:
    """A run of ``fn`` that ends Crashed or Cancelled, set through the client.

    It is named as Prefect names a flow called directly (from its run-name template).
    """
    final = {"crashed": Crashed, "cancelled": Cancelled}[state]
    with get_client(sync_client=True) as client:
        run = client.create_flow_run(fn, name=name, parameters=params, state=Pending())
        client.set_flow_run_state(run.id, Running())
        client.set_flow_run_state(run.id, final(message=message), force=True)
        return run.id


def read_run(run_id: UUID) -> FlowRun:
    """The run as the server has it now."""
    with get_client(sync_client=True) as client:
        return client.read_flow_run(run_id)


def deploy(
    fn: Any,
    name: str,
    parameters: dict[str, Any],
    schedules: list[DeploymentScheduleCreate] | None = None,
) -> UUID:
    """A deployment of ``fn`` with the flow's parameter schema, as `prefect deploy` makes."""
    schema = fn.parameters.model_dump_for_openapi()
    with get_client(sync_client=True) as client:
        flow_id = client.create_flow_from_name(fn.name)
        return client.create_deployment(
            flow_id=flow_id,
            name=name,
            parameters=parameters,
            schedules=schedules or [],
            parameter_openapi_schema=schema,
            enforce_parameter_schema=True,
        )


def execute_next_run(fn: Any, deployment_id: UUID, timeout: float = 180) -> threading.Thread:
    """Play the worker: wait for a run of the deployment, then execute it in a thread."""

    def work() -> None:
        deadline = time.monotonic() + timeout
        waiting = FlowRunFilter(
            deployment_id=FlowRunFilterDeploymentId(any_=[deployment_id]),
            state=FlowRunFilterState(type=FlowRunFilterStateType(any_=[StateType.SCHEDULED])),
        )
        with get_client(sync_client=True) as client:
            while time.monotonic() < deadline:
                runs = client.read_flow_runs(flow_run_filter=waiting, limit=1)
                if runs:
                    with fast_flows():
                        run_flow(
                            fn, flow_run=runs[0], parameters=runs[0].parameters, return_type="state"
                        )
                    return
                time.sleep(0.2)

    thread = threading.Thread(target=work, daemon=True)
    thread.start()
    return thread


def utcnow() -> datetime:
    """Now, aware."""
    return datetime.now(UTC)


def latest_task_log() -> list[dict[str, Any]]:
    """The rows of the newest task-log artifact, as published after a run ended."""
    with get_client(sync_client=True) as client:
        artifacts = client.read_artifacts(
            artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[TASK_LOG_ARTIFACT_KEY])),
            sort=ArtifactSort.CREATED_DESC,
            limit=1,
        )
    data = artifacts[0].data
    return json.loads(data) if isinstance(data, str) else data  # type: ignore[no-any-return]
