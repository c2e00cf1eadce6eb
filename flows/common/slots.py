"""One run per object at a time, and shared resources, through Prefect global concurrency limits.

A deployment's own ``concurrency_limit`` keeps two runs of *that deployment* apart; an
ad-hoc import and a scheduled import of one list come from two deployments, an
exclusion reset and an exclusion import too, and ``cctasks campaign start`` from no
deployment at all. So each flow also holds a global concurrency limit named after the
object it changes (:func:`object_slot`), one slot, for the part of the run that changes
it. The server keeps the slots, so the rule holds across deployments, workers and
machines; a second run waits in its flow, and the task log shows when it got the slot.

A run that finds the slot taken says so in a progress artifact, "waits for list Spring
Leads", which ``cctasks scheduled`` shows as State ``waiting``; once the run holds the
slot it rewrites that artifact ("took the slot of ... after 12.3 s") and the run shows
in progress again. Two runs that reach for a free slot at the same instant are the
exception: the loser waits without saying so (the check is one read before waiting).

Slots are leases (Prefect 3): the holding process renews its lease in a thread; when the
process dies, the server's repossessor frees the slot once the lease has expired
(:data:`~contact_center.settings.OBJECT_LEASE_SECONDS`), whether or not the run was
marked Crashed yet. Where the leases live decides what a server restart keeps:
``cctasks up`` keeps them on disk, ``cctasks up --scale`` in Redis.
"""

from __future__ import annotations

import hashlib
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Literal, cast
from uuid import UUID

from prefect import get_client
from prefect.artifacts import create_progress_artifact, update_progress_artifact
from prefect.client.schemas.actions import GlobalConcurrencyLimitCreate
from prefect.client.schemas.objects import ConcurrencyLeaseHolder
from prefect.concurrency.sync import concurrency
from prefect.context import FlowRunContext
from prefect.exceptions import ObjectAlreadyExists, ObjectNotFound
from prefect.logging import get_logger

from contact_center.settings import (
    OBJECT_LEASE_SECONDS,
    OBJECT_SLOT_PREFIX,
    OBJECT_WAIT_PREFIX,
)

__all__ = ["ObjectKind", "object_slot", "object_slot_name"]

ObjectKind = Literal["list", "exclusions", "campaign"]

_NOT_A_SLUG = re.compile(r"[^a-z0-9]+")
_SLUG_CHARS = 40
# Logged past this: taking a free slot is a round trip or two.
_WAIT_WORTH_SAYING_SECONDS = 1.0
# How the waiting note names each kind of object.
_KIND_WORDS: dict[str, str] = {
    "list": "list",
    "exclusions": "exclusion list",
    "campaign": "campaign",
}


def object_slot_name(kind: ObjectKind, name: str) -> str:
    """The global concurrency limit of one object, e.g. ``cctasks-list-spring-leads-1a2b3c4d``.

    The readable part is a slug (Prefect refuses ``/``, ``%``, ``&``, ``<`` and ``>`` in
    names); the hash of the exact name keeps ``Spring Leads`` and ``spring-leads`` apart.
    """
    slug = _NOT_A_SLUG.sub("-", name.lower()).strip("-")[:_SLUG_CHARS].rstrip("-") or "x"
    digest = hashlib.sha256(name.encode()).hexdigest()[:8]
    return f"{OBJECT_SLOT_PREFIX}-{kind}-{slug}-{digest}"


def _ensure_limit(name: str) -> bool:
    """Create the one-slot limit ``name`` unless it exists (two runs may race: both win).

    Returns:
        Whether its slot was taken when read (a new limit is free).
    """
    with get_client(sync_client=True) as client:
        try:
            found = client.read_global_concurrency_limit_by_name(name)
            return found.active_slots >= found.limit
        except ObjectNotFound:
            pass
        try:
            client.create_global_concurrency_limit(GlobalConcurrencyLimitCreate(name=name, limit=1))
        except ObjectAlreadyExists:
            pass
        return False


def _holder() -> ConcurrencyLeaseHolder | None:
    context = FlowRunContext.get()
    if context is None or context.flow_run is None:
        return None
    return ConcurrencyLeaseHolder(type="flow_run", id=context.flow_run.id)


def _object_words(kind: ObjectKind, name: str) -> str:
    return f"{_KIND_WORDS[kind]} {name}"


def _say_waiting(kind: ObjectKind, name: str) -> UUID | None:
    """Publish the run's "waits for" progress artifact; None outside a flow run.

    Only what the Scheduled view shows depends on it: a failure is logged, not raised.
    """
    if FlowRunContext.get() is None:
        return None
    try:
        return cast(
            UUID,
            create_progress_artifact(
                progress=0.0, description=f"{OBJECT_WAIT_PREFIX}{_object_words(kind, name)}"
            ),
        )
    except Exception as exc:
        get_logger("cctasks.slots").warning("could not say that the run waits: %s", exc)
        return None


def _say_holding(artifact: UUID, kind: ObjectKind, name: str, waited: float) -> None:
    """Rewrite the "waits for" artifact once the slot is held: the run is in progress."""
    try:
        update_progress_artifact(
            artifact,
            0.0,
            description=f"took the slot of {_object_words(kind, name)} after {waited:.1f} s",
        )
    except Exception as exc:
        get_logger("cctasks.slots").warning("could not say that the run holds its slot: %s", exc)


@contextmanager
def object_slot(kind: ObjectKind, name: str) -> Iterator[str]:
    """Hold the one slot of object ``name`` of ``kind``, waiting while another run has it.

    A run that finds the slot taken shows as waiting for the object meanwhile (see the
    module).

    Yields:
        The limit's name.
    """
    limit = object_slot_name(kind, name)
    waiting = _say_waiting(kind, name) if _ensure_limit(limit) else None
    began = time.monotonic()
    with concurrency(
        limit,
        occupy=1,
        strict=True,
        lease_duration=OBJECT_LEASE_SECONDS,
        holder=_holder(),
        # A renewal that fails for a moment (an API server restarting) must not stop a
        # load half-way; the lease outlives a few failed renewals.
        raise_on_lease_renewal_failure=False,
    ):
        waited = time.monotonic() - began
        if waiting is not None:
            _say_holding(waiting, kind, name, waited)
        if waited > _WAIT_WORTH_SAYING_SECONDS:
            # Another run held it, or the API was slow to answer: both are worth seeing.
            get_logger("cctasks.slots").info(
                "took the slot of %s %r after %.1f s", kind, name, waited
            )
        yield limit
