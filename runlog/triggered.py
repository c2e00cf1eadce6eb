"""The Scheduled view's rows of event-driven tasks: a deployment's trigger in place of a time.

A deployment trigger of ``prefect.yaml`` is an automation on the server whose action runs
that deployment. Each enabled one is a row with the state ``on event`` and no start time,
whose Note says what starts it (:func:`runlog.origins.describe_trigger`), for example
``on file sftp://partner/in/leads_*.csv``: the watched location comes from the sensor
deployments' ``watches`` parameter.
"""

from __future__ import annotations

from typing import Any

from prefect.client.orchestration import SyncPrefectClient
from prefect.client.schemas.filters import FlowFilter, FlowFilterName
from prefect.events.actions import RunDeployment
from prefect.exceptions import ObjectNotFound as PrefectObjectNotFound

from runlog.origins import describe_trigger
from runlog.reader import History
from runlog.rows import ScheduledRow

__all__ = ["SENSOR_FLOW", "trigger_rows"]

#: The sensor's flow (flows/file_sensor.py), whose deployments say what is watched.
SENSOR_FLOW = "watch-drop-folders"
ON_EVENT = "on event"


def _watches(client: SyncPrefectClient) -> dict[str, str]:
    watches: dict[str, str] = {}
    sensors = client.read_deployments(
        flow_filter=FlowFilter(name=FlowFilterName(any_=[SENSOR_FLOW]))
    )
    for sensor in sensors:
        value = (sensor.parameters or {}).get("watches") or {}
        if isinstance(value, dict):
            watches.update({str(k): str(v) for k, v in value.items()})
    return watches


def _spec(value: Any) -> Any:
    """A resource specification (or a list of them) as plain data."""
    if isinstance(value, list):
        return [_spec(v) for v in value]
    return value.model_dump() if hasattr(value, "model_dump") else value


def trigger_rows(history: History, flow_names: list[str] | None) -> list[ScheduledRow]:
    """A row per enabled automation that runs a deployment of ``flow_names`` (all: None)."""
    client = history.client
    automations = [a for a in client.read_automations() if a.enabled]
    if not automations:
        return []
    watches = _watches(client)
    rows: list[ScheduledRow] = []
    for automation in automations:
        trigger: Any = automation.trigger
        for action in automation.actions:
            if not isinstance(action, RunDeployment) or action.deployment_id is None:
                continue
            deployment = history.deployments.get(action.deployment_id)
            if deployment is None:
                try:
                    deployment = client.read_deployment(action.deployment_id)
                except PrefectObjectNotFound:  # the deployment was deleted: no row
                    continue
                history.deployments[deployment.id] = deployment
            history.learn_flow_ids([deployment.flow_id])
            params = {**(deployment.parameters or {}), **(action.parameters or {})}
            flow_name, label, object_name, task_name, step = history.describe(
                deployment.flow_id, deployment.id, params, deployment.name
            )
            if flow_names is not None and flow_name not in flow_names:
                continue
            note = describe_trigger(
                getattr(trigger, "expect", set()) or set(),
                _spec(getattr(trigger, "match", {})),
                _spec(getattr(trigger, "match_related", {})),
                watches,
            )
            rows.append(
                ScheduledRow(
                    start_time=None,
                    object_name=object_name,
                    task_name=task_name,
                    attempts=0,
                    state=ON_EVENT,
                    progress=None,
                    type=label,
                    step=step,
                    run_id=None,
                    flow_name=flow_name,
                    note=note,
                )
            )
    return sorted(rows, key=lambda r: (r.task_name.casefold(), r.step, r.note))
