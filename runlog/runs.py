"""``cctasks run``: request an immediate run of a deployment, and follow it.

Parameters given as ``k=v`` are checked against the deployment's parameter schema
(the flow's signature, as ``prefect deploy`` stored it) before the run is created,
so a typo never reaches a worker.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import Any
from uuid import UUID

import httpx
from jsonschema.exceptions import best_match
from prefect.client.orchestration import SyncPrefectClient
from prefect.client.schemas.objects import Artifact, FlowRun
from prefect.client.schemas.responses import DeploymentResponse
from prefect.settings import PREFECT_API_URL, PREFECT_CLIENT_MAX_RETRIES, temporary_settings
from prefect.utilities.schema_tools.validation import validate
from prefect.utilities.urls import url_for

from contact_center.exceptions import InvalidParameter, ObjectNotFound
from contact_center.outcome import Outcome
from runlog.client import prefect_client
from runlog.mapping import SKIPPED, error_of, redact
from runlog.planned import Tries, flow_tries, step_tries
from runlog.reader import History
from runlog.text import clean

__all__ = [
    "RequestedRun",
    "RunStatus",
    "coerce_parameters",
    "final_outcome",
    "follow_run",
    "request_run",
    "resolve_deployment",
    "run_url",
]

# While watching, one request waits at most this long, so that a server that stops
# answering is reported within seconds (Prefect's default is 60 s, then retries).
WATCH_REQUEST_TIMEOUT = 5.0


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
        attempts: the try running (or awaited): the flow's or its retrying step's,
            whichever is higher.
        progress: percent from the progress artifact, if any.
        final: whether the run has ended.
        completed: whether it ended completed (skipped included).
        error: why it did not complete (redacted), if it ended otherwise; why it was
            skipped, if it was.
        name: the flow run's name.
        max_attempts: how many tries the retrying step (or flow) has, when known.
        step: what the run does now, from its progress artifact (``fetch, 12.5 MB
            of 125.0 MB, attempt 2 of 3``).
        reachable: False while the Prefect server does not answer (the other fields
            are then the last known ones).
        problem: why the server does not answer, when it does not.
    """

    state_type: str
    state: str
    attempts: int
    progress: float | None
    final: bool
    completed: bool
    error: str
    name: str
    max_attempts: int | None = None
    step: str = ""
    reachable: bool = True
    problem: str = ""

    @property
    def attempts_text(self) -> str:
        """``2 of 3`` once a retrying step (or flow) tries again, else the number."""
        if self.max_attempts and self.max_attempts > 1 and self.attempts > 1:
            return f"{self.attempts} of {self.max_attempts}"
        return str(self.attempts)


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
    history = History(client)
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
            # best_match looks inside anyOf (an optional value), so the reason is
            # "5 is greater than the maximum of 1", not "not valid under any schema".
            first_error = first_error or best_match(errors).message
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
        try:
            run = client.create_flow_run_from_deployment(deployment.id, parameters=overrides)
        except httpx.HTTPStatusError as exc:
            # The server checks the parameters against the schema too (the deployment's
            # enforce_parameter_schema); it answers 409 with what it refused.
            if exc.response.status_code not in (409, 422):
                raise
            detail = exc.response.json().get("detail", "") if exc.response.content else ""
            raise InvalidParameter(
                f"the server refused the parameters of {label}: {clean(str(detail))}"
            ) from exc
    return RequestedRun(
        run_id=run.id,
        name=clean(run.name),
        task=clean(label),
        parameters=overrides,
        url=run_url(run.id),
    )


def _status(run: FlowRun, progress: Artifact | None, step: Tries | None) -> RunStatus:
    state_type = run.state.type.value if run.state else "SCHEDULED"
    name = (run.state.name if run.state else None) or ""
    final = bool(run.state and run.state.is_final())
    own = flow_tries(run)
    tries = step if step is not None and step.number >= own.number else own
    percent = progress.data if progress is not None else None
    description = (progress.description or "") if progress is not None else ""
    return RunStatus(
        state_type=state_type,
        state=name,
        attempts=max(own.number, step.number if step else 0),
        progress=float(percent) if isinstance(percent, int | float) else None,
        final=final,
        completed=state_type == "COMPLETED",
        error=_why(state_type, name, run.state.message if run.state else None) if final else "",
        name=clean(redact(run.name)),
        max_attempts=tries.of,
        step=clean(description.rsplit(": ", 1)[-1]) if description else "",
    )


def _why(state_type: str, state_name: str, message: str | None) -> str:
    """Why a run did not complete, or why it was skipped; empty when it completed."""
    if state_type == "COMPLETED" and state_name != SKIPPED:
        return ""
    return error_of(state_type, state_name, message)


def _unreachable(exc: Exception) -> bool:
    """Whether ``exc`` means the server does not answer (now), rather than a bad request."""
    if isinstance(exc, httpx.TransportError):
        return True
    return isinstance(exc, httpx.HTTPStatusError) and exc.response.status_code >= 500


def follow_run(
    run_id: UUID, interval: float = 1.0, timeout: float | None = None
) -> Iterator[RunStatus]:
    """Yield the run's status each time its state, attempts, progress or the server's
    reachability change.

    A server that stops answering is reported at once (one request waits at most
    :data:`WATCH_REQUEST_TIMEOUT` seconds, without Prefect's own client retries) and
    asked again every ``interval`` until it answers or ``timeout`` seconds pass. The
    last status yielded is final, unless ``timeout`` seconds pass first.
    """
    deadline = None if timeout is None else time.monotonic() + timeout
    last: RunStatus | None = None
    last_key: tuple[Any, ...] | None = None
    url = str(PREFECT_API_URL.value() or "")
    with (
        temporary_settings(updates={PREFECT_CLIENT_MAX_RETRIES: 0}),
        prefect_client(timeout=WATCH_REQUEST_TIMEOUT) as client,
    ):
        history = History(client)
        while True:
            try:
                status = _read_status(client, history, run_id)
            except (httpx.TransportError, httpx.HTTPStatusError) as exc:
                if not _unreachable(exc):
                    raise
                status = replace(
                    last or _UNKNOWN,
                    reachable=False,
                    problem=f"the Prefect server at {url} does not answer ({type(exc).__name__})",
                )
            key = (status.state, status.attempts, status.progress, status.final, status.reachable)
            if key != last_key:
                last_key = key
                yield status
            if status.reachable:
                last = status
            if status.final or (deadline is not None and time.monotonic() >= deadline):
                return
            time.sleep(interval)


_UNKNOWN = RunStatus(
    state_type="SCHEDULED",
    state="",
    attempts=0,
    progress=None,
    final=False,
    completed=False,
    error="",
    name="",
)


def _read_status(client: SyncPrefectClient, history: History, run_id: UUID) -> RunStatus:
    run = client.read_flow_run(run_id)
    progress, step = None, None
    if run.start_time:
        progress = history.progress_artifacts([run_id]).get(run_id)
        step = step_tries(client, [run_id]).get(run_id)
    return _status(run, progress, step)


def final_outcome(run_id: UUID) -> Outcome | None:
    """The outcome a run recorded last (its counts), or None if it recorded none."""
    with prefect_client(timeout=WATCH_REQUEST_TIMEOUT) as client:
        facts = History(client).outcome_facts([run_id])
    found = facts.get(run_id)
    return found.outcome if found else None
