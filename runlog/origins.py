"""What starts a task: a run's origin for the Task Log, a trigger for the Scheduled view.

Pure functions, no I/O. Deployment triggers in ``prefect.yaml`` are automations on the
server; the runs they start are created by that automation (Prefect records it as the
run's ``created_by``). cctasks names its triggers so that they read as what they are
(``docs/events.md``):

- ``on file: <watch>``: a file announced by the sensor (``cctasks.file.arrived``);
- ``after: <deployment>``: a chain, when a run of that deployment completed.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from runlog.text import clean

__all__ = ["FILE_EVENT", "describe_trigger", "started_by"]

#: The sensor's event (flows/file_sensor.py).
FILE_EVENT = "cctasks.file.arrived"
_RUN_STATE_EVENT = "prefect.flow-run."


def started_by(
    auto_scheduled: bool | None,
    creator_type: str | None,
    creator_name: str | None,
    parameters: Mapping[str, Any],
) -> str:
    """The Task Log's "Started by": ``schedule``, ``manual``, ``file <location>``,
    ``chain after <deployment>`` or ``automation <name>``.

    Args:
        auto_scheduled: Prefect's flag for a run its scheduler created.
        creator_type: the run's ``created_by.type`` (``AUTOMATION`` for a trigger).
        creator_name: the run's ``created_by.display_value`` (the automation's name).
        parameters: the run's parameters (a file-started import's ``source`` is the file).
    """
    if auto_scheduled:
        return "schedule"
    if (creator_type or "").upper() != "AUTOMATION":
        return "manual"
    name = creator_name or ""
    if name.startswith("on file") and parameters.get("source"):
        return clean(f"file {parameters['source']}")
    if name.startswith("after:"):
        return clean(f"chain after {name.removeprefix('after:').strip()}")
    return clean(f"automation {name}".strip())


def _values(spec: Any) -> Iterable[Mapping[str, Any]]:
    if isinstance(spec, Mapping):
        yield spec
    elif isinstance(spec, list):
        for item in spec:
            if isinstance(item, Mapping):
                yield item


def _first(value: Any) -> str:
    if isinstance(value, list):
        return ", ".join(str(v) for v in value)
    return str(value)


def describe_trigger(
    expect: Iterable[str], match: Any, match_related: Any, watches: Mapping[str, str]
) -> str:
    """A deployment trigger in a few words, for the Scheduled view's Note.

    Args:
        expect: the events the trigger waits for.
        match: its ``match`` (labels of the event's resource).
        match_related: its ``match_related`` (one specification or a list).
        watches: watch name -> watched location, from the sensor deployments.

    Returns:
        e.g. ``on file /srv/drop/leads_*.csv``, ``after spring-leads-import completed``
        or ``on event partner.pinged``.
    """
    events = sorted(expect)
    if FILE_EVENT in events:
        for spec in _values(match):
            watch = spec.get("cctasks.watch")
            if watch:
                name = _first(watch)
                return clean(f"on file {watches.get(name, name)}")
        return "on file"
    states = [e.removeprefix(_RUN_STATE_EVENT) for e in events if e.startswith(_RUN_STATE_EVENT)]
    if states and len(states) == len(events):
        for spec in _values(match_related):
            related = spec.get("prefect.resource.name")
            if related:
                return clean(f"after {_first(related)} {' or '.join(states).lower()}")
    return clean(f"on event {', '.join(events)}" if events else "on event")
