"""``cctasks run``: request an immediate run of a deployment, and follow it.

Parameters given as ``k=v`` are checked against the deployment's parameter schema
(the flow's signature, as ``prefect deploy`` stored it) before the run is created,
so a typo never reaches a worker.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from prefect.client.orchestration import SyncPrefectClient
from prefect.client.schemas.objects import FlowRun
from prefect.client.schemas.responses import DeploymentResponse
from prefect.settings import PREFECT_API_URL
from prefect.utilities.schema_tools.validation import validate
from prefect.utilities.urls import url_for

from contact_center.exceptions import InvalidParameter, ObjectNotFound
from tasklog.history import _History, prefect_client
from tasklog.mapping import error_of, redact

__all__ = [
    "RequestedRun",
    "RunStatus",
    "coerce_parameters",
    "follow_run",
    "request_run",
    "resolve_deployment",
    "run_url",
]


@dataclass(frozen=True)
class RequestedRun:
    """A run that ``cctasks run`` created.

    Attributes:
        run_id: the flow run's id.
        name: the flow run's name (Prefect's until the flow names it ``object · step``).
        task: ``flow/deployment``.
        parameters: the overrides given.
        url: the run's page in the Prefect UI.
    """

    run_id: UUID
    name: str
    task: str
    parameters: dict[str, Any]
    url: str


@dataclass(frozen=True)
class RunStatus:
    """What ``follow_run`` reports on each change.

    Attributes:
        state_type: Prefect's state type (``RUNNING``...).
        state: Prefect's state name.
        attempts: ``run_count``.
        progress: percent from the progress artifact, if any.
        final: whether the run has ended.
        completed: whether it ended completed.
        error: why it did not complete (redacted), if it ended otherwise.
        name: the flow run's name.
    """

    state_type: str
    state: str
    attempts: int
    progress: float | None
    final: bool
    completed: bool
    error: str
    name: str


def run_url(run_id: UUID) -> str:
    """The run's page in the Prefect UI."""
    url = url_for("flow-run", obj_id=run_id)
    if url:
        return url
    api = str(PREFECT_API_URL.value() or "").rstrip("/")
    base = api[: -len("/api")] if api.endswith("/api") else api
    return f"{base}/runs/flow-run/{run_id}"


def resolve_deployment(client: SyncPrefectClient, task: str) -> tuple[DeploymentResponse, str]:
    """The deployment named ``task`` (``name`` or ``flow/name``) and its flow's name.

    Raises:
        ObjectNotFound: no such deployment; the message lists the known ones.
        InvalidParameter: the name is ambiguous; the message lists the candidates.
    """
    history = _History(client)
    history.load_our_flows()
    found = history.find_deployments(task, None)
    history.learn_flow_ids([d.flow_id for d in found])
    labels = [f"{history.flow_names.get(d.flow_id, '?')}/{d.name}" for d in found]
    if not found:
        known = history.deployment_names(None)
        raise ObjectNotFound(
            f"unknown task {task!r}; known tasks: {', '.join(known) or '(no deployments)'}"
        )
    if len(found) > 1:
        choices = ", ".join(sorted(labels))
        raise InvalidParameter(f"task {task!r} is ambiguous; use one of: {choices}")
    return found[0], labels[0]


def _parse_pair(pair: str) -> tuple[str, str]:
    key, sep, value = pair.partition("=")
    if not sep or not key.strip():
        raise InvalidParameter(f"bad --param {pair!r}; write it as name=value")
    return key.strip(), value


def coerce_parameters(pairs: list[str], schema: dict[str, Any], task: str) -> dict[str, Any]:
    """``k=v`` pairs as typed values that the deployment's parameter schema accepts.

    A value is read as JSON when that fits the schema (``7``, ``true``, ``["a"]``),
    else as the plain string.

    Raises:
        InvalidParameter: an unknown parameter (the message lists the valid ones) or a
            value the schema refuses.
    """
    properties: dict[str, Any] = schema.get("properties") or {}
    values: dict[str, Any] = {}
    for pair in pairs:
        key, raw = _parse_pair(pair)
        if key not in properties:
            valid = ", ".join(sorted(properties)) or "(none: the task takes no parameters)"
            raise InvalidParameter(
                f"unknown parameter {key!r} for {task}; valid parameters: {valid}"
            )
        candidates: list[Any] = []
        try:
            candidates.append(json.loads(raw))
        except ValueError:
            pass
        candidates.append(raw)
        first_error = ""
        for candidate in candidates:
            errors = validate({key: candidate}, schema, ignore_required=True)
            if not errors:
                values[key] = candidate
                break
            first_error = first_error or errors[0].message
        else:
            raise InvalidParameter(f"bad value for parameter {key!r} of {task}: {first_error}")
    return values


def request_run(task: str, pairs: list[str]) -> RequestedRun:
    """Create a run of ``task`` now, with ``pairs`` (``k=v``) overriding parameters.

    Raises:
        ObjectNotFound: an unknown task.
        InvalidParameter: an unknown parameter, a bad value, or a missing required one.
        SourceUnavailable: the Prefect server cannot be reached.
    """
    with prefect_client() as client:
        deployment, label = resolve_deployment(client, task)
        schema = deployment.parameter_openapi_schema or {}
        overrides = coerce_parameters(pairs, schema, label)
        merged = {**(deployment.parameters or {}), **overrides}
        missing = sorted(set(schema.get("required") or []) - set(merged))
        if missing:
            raise InvalidParameter(
                f"{label} needs parameter(s) {', '.join(missing)}; give them with --param"
            )
        run = client.create_flow_run_from_deployment(deployment.id, parameters=overrides)
    return RequestedRun(
        run_id=run.id, name=run.name, task=label, parameters=overrides, url=run_url(run.id)
    )


def _status(run: FlowRun, progress: float | None) -> RunStatus:
    state_type = run.state.type.value if run.state else "SCHEDULED"
    name = (run.state.name if run.state else None) or ""
    final = bool(run.state and run.state.is_final())
    return RunStatus(
        state_type=state_type,
        state=name,
        attempts=run.run_count,
        progress=progress,
        final=final,
        completed=state_type == "COMPLETED",
        error=error_of(state_type, name, run.state.message if run.state else None) if final else "",
        name=redact(run.name),
    )


def follow_run(
    run_id: UUID, interval: float = 1.0, timeout: float | None = None
) -> Iterator[RunStatus]:
    """Yield the run's status each time its state, attempts or progress change.

    The last status yielded is final, unless ``timeout`` seconds pass first.
    """
    deadline = None if timeout is None else time.monotonic() + timeout
    last: tuple[Any, ...] | None = None
    with prefect_client() as client:
        history = _History(client)
        while True:
            run = client.read_flow_run(run_id)
            progress = history.progress([run_id]).get(run_id) if run.start_time else None
            status = _status(run, progress)
            key = (status.state, status.attempts, status.progress, status.final)
            if key != last:
                last = key
                yield status
            if status.final or (deadline is not None and time.monotonic() >= deadline):
                return
            time.sleep(interval)
