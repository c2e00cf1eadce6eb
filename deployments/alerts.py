"""Failure alerts declared in ``alerts.yaml``, applied to the server as automations.

Each alert of the file becomes one automation named ``cctasks alert: <name>``:

- its trigger is reactive: any flow run related to one of the alert's tags (a
  deployment's tags are its runs' tags) whose state becomes one of the alert's
  states (Failed, Crashed) fires it, once per state change;
- its action runs the ``send-failure-alert/failure-alert`` deployment with the run's
  id and the alert's channels (:mod:`flows.failure_alert`), which tags the run once it
  has alerted, so a run is announced once.

:func:`ensure_alerts` applies the file idempotently on every ``cctasks up``: an alert
that is unchanged is kept, a changed one updated, one removed from the file deleted.
The file is ``alerts.yaml`` in the checkout, or ``CCTASKS_ALERTS_FILE``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from prefect import get_client
from prefect.automations import Automation
from prefect.events.actions import RunDeployment
from prefect.events.schemas.automations import AutomationCore, EventTrigger, Posture
from prefect.events.schemas.events import ResourceSpecification
from prefect.exceptions import ObjectNotFound as PrefectObjectNotFound

from contact_center.exceptions import InvalidParameter, ObjectNotFound
from deployments.automations import _definition

__all__ = [
    "ALERT_DEPLOYMENT",
    "ALERT_PREFIX",
    "AlertSpec",
    "alert_automation",
    "alerts_file",
    "ensure_alerts",
    "load_alerts",
]

#: The deployment that sends alerts (prefect.yaml).
ALERT_DEPLOYMENT = "send-failure-alert/failure-alert"
#: Every alert automation's name starts so; others are never touched.
ALERT_PREFIX = "cctasks alert: "
_STATES = {"Failed", "Crashed", "Cancelled", "TimedOut"}


@dataclass(frozen=True)
class AlertSpec:
    """One alert of ``alerts.yaml``.

    Attributes:
        name: the alert's name (its automation is ``cctasks alert: <name>``).
        enabled: whether the automation acts.
        tags: deployments carrying one of these tags are watched.
        states: the end states that alert (Failed, Crashed).
        email_block: the Email Server Credentials block, if by email.
        email_to: its recipients.
        webhook_block: the notification block, if by webhook.
    """

    name: str
    enabled: bool
    tags: tuple[str, ...]
    states: tuple[str, ...]
    email_block: str | None
    email_to: tuple[str, ...]
    webhook_block: str | None


def alerts_file(project_dir: Path) -> Path:
    """``CCTASKS_ALERTS_FILE``, else ``alerts.yaml`` in the checkout."""
    return Path(os.environ.get("CCTASKS_ALERTS_FILE") or project_dir / "alerts.yaml")


def _strings(value: Any, where: str) -> tuple[str, ...]:
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or not all(isinstance(v, str) and v for v in items):
        raise InvalidParameter(f"{where} must be a list of names")
    return tuple(items)


def _spec(entry: Any, where: str) -> AlertSpec:
    if not isinstance(entry, dict) or not isinstance(entry.get("name"), str):
        raise InvalidParameter(f"{where}: an alert needs a name")
    where = f"{where} ({entry['name']!r})"
    unknown = set(entry) - {"name", "enabled", "tags", "states", "email", "webhook"}
    if unknown:
        raise InvalidParameter(f"{where}: unknown keys {', '.join(sorted(unknown))}")
    states = _strings(entry.get("states", ["Failed", "Crashed"]), f"{where} states")
    if not set(states) <= _STATES:
        raise InvalidParameter(f"{where} states: only {', '.join(sorted(_STATES))}")
    email = entry.get("email") or {}
    webhook = entry.get("webhook") or {}
    if not isinstance(email, dict) or not isinstance(webhook, dict):
        raise InvalidParameter(f"{where}: email and webhook take a block (and email a `to`)")
    if bool(email.get("block")) != bool(email.get("to")):
        raise InvalidParameter(f"{where} email: give both block and to")
    if not email and not webhook.get("block"):
        raise InvalidParameter(f"{where}: give email, webhook or both")
    return AlertSpec(
        name=entry["name"],
        enabled=bool(entry.get("enabled", True)),
        tags=_strings(entry.get("tags", ["cctasks"]), f"{where} tags"),
        states=states,
        email_block=email.get("block") or None,
        email_to=_strings(email["to"], f"{where} email.to") if email else (),
        webhook_block=webhook.get("block") or None,
    )


def load_alerts(path: Path) -> list[AlertSpec]:
    """The alerts of the file at ``path`` (none when it does not exist).

    Raises:
        InvalidParameter: the file is not valid YAML or an alert is malformed; the
            message names the file and the alert.
    """
    if not path.is_file():
        return []
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise InvalidParameter(f"{path}: not valid YAML: {exc}") from None
    entries = data.get("alerts") or [] if isinstance(data, dict) else None
    if not isinstance(entries, list):
        raise InvalidParameter(f"{path}: `alerts` must be a list")
    specs = [_spec(entry, f"{path}, alert {i}") for i, entry in enumerate(entries, start=1)]
    names = [s.name for s in specs]
    if len(set(names)) != len(names):
        raise InvalidParameter(f"{path}: two alerts share a name")
    return specs


def alert_automation(spec: AlertSpec, deployment_id: Any) -> Automation:
    """The automation of one alert, running the alert deployment ``deployment_id``."""
    # The triggering event's resource is the run: prefect.flow-run.<id>.
    parameters: dict[str, Any] = {
        "flow_run_id": "{{ event.resource.id | replace('prefect.flow-run.', '') }}"
    }
    if spec.email_block:
        parameters.update(email_block=spec.email_block, email_to=list(spec.email_to))
    if spec.webhook_block:
        parameters["webhook_block"] = spec.webhook_block
    return Automation(
        name=ALERT_PREFIX + spec.name,
        description=(
            f"Alert when a run of a deployment tagged {', '.join(spec.tags)} ends "
            f"{' or '.join(spec.states)} (declared in alerts.yaml; applied by cctasks up)."
        ),
        enabled=spec.enabled,
        trigger=EventTrigger(
            expect={f"prefect.flow-run.{state}" for state in spec.states},
            match=ResourceSpecification({"prefect.resource.id": "prefect.flow-run.*"}),
            match_related=ResourceSpecification(
                {
                    "prefect.resource.role": "tag",
                    "prefect.resource.id": [f"prefect.tag.{tag}" for tag in spec.tags],
                }
            ),
            posture=Posture.Reactive,
            threshold=1,
        ),
        actions=[
            RunDeployment(
                source="selected",
                deployment_id=deployment_id,
                parameters=parameters,
                job_variables=None,
            )
        ],
    )


def _alert_deployment_id() -> Any:
    with get_client(sync_client=True) as client:
        try:
            return client.read_deployment_by_name(ALERT_DEPLOYMENT).id
        except PrefectObjectNotFound:
            raise ObjectNotFound(
                f"no deployment {ALERT_DEPLOYMENT!r}: deploy prefect.yaml before the alerts"
            ) from None


def ensure_alerts(path: Path) -> dict[str, str]:
    """Apply the alerts of ``path`` to the server (idempotent).

    Returns:
        Automation name -> ``created``, ``updated``, ``kept`` or ``deleted``.
    """
    specs = load_alerts(path)
    done: dict[str, str] = {}
    deployment_id = _alert_deployment_id() if specs else None
    with get_client(sync_client=True) as client:
        existing = [a for a in client.read_automations() if a.name.startswith(ALERT_PREFIX)]
        wanted = {ALERT_PREFIX + s.name: alert_automation(s, deployment_id) for s in specs}
        for automation in existing:
            if automation.name not in wanted or automation.name in done:
                client.delete_automation(automation.id)  # gone from the file, or a copy
                done.setdefault(automation.name, "deleted")
                continue
            want = wanted[automation.name]
            core = AutomationCore(**want.model_dump(exclude={"id"}))
            if _definition(automation) == _definition(core) and automation.enabled == want.enabled:
                done[automation.name] = "kept"
            else:
                want.id = automation.id
                want.update()
                done[automation.name] = "updated"
        for name, want in wanted.items():
            if name not in done:
                client.create_automation(AutomationCore(**want.model_dump(exclude={"id"})))
                done[name] = "created"
    return done
