"""One run per object at a time, and shared resources, through Prefect global concurrency limits.

A deployment's own ``concurrency_limit`` keeps two runs of *that deployment* apart; an
ad-hoc import and a scheduled import of one list come from two deployments, an
exclusion reset and an exclusion import too, and ``cctasks campaign start`` from no
deployment at all. So each flow also holds a global concurrency limit named after the
object it changes (:func:`object_slot`), one slot, for the part of the run that changes
it. The server keeps the slots, so the rule holds across deployments, workers and
machines; a second run waits in its flow, and the task log shows when it got the slot.

Slots are leases (Prefect 3): the holding process renews its lease in a thread; when the
process dies, the server's repossessor frees the slot once the lease has expired
(:data:`~contact_center.settings.OBJECT_LEASE_SECONDS`), whether or not the run was
marked Crashed yet. Where the leases live decides what a server restart keeps:
``cctasks up`` keeps them on disk, ``cctasks up --scale`` in Redis.

:func:`resource_slot` takes one of the shared-resource limits that bootstrap creates
(``cctasks-database-loads``, ``cctasks-sftp-sessions``); on a server without them, it
takes nothing.
"""

from __future__ import annotations

import hashlib
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Literal

from prefect import get_client
from prefect.client.schemas.actions import GlobalConcurrencyLimitCreate
from prefect.client.schemas.objects import ConcurrencyLeaseHolder
from prefect.concurrency.sync import concurrency
from prefect.context import FlowRunContext
from prefect.exceptions import ObjectAlreadyExists, ObjectNotFound
from prefect.logging import get_logger

from contact_center.settings import OBJECT_LEASE_SECONDS, OBJECT_SLOT_PREFIX

__all__ = ["ObjectKind", "object_slot", "object_slot_name", "resource_slot"]

ObjectKind = Literal["list", "exclusions", "campaign"]

_NOT_A_SLUG = re.compile(r"[^a-z0-9]+")
_SLUG_CHARS = 40
# Logged past this: taking a free slot is a round trip or two.
_WAIT_WORTH_SAYING_SECONDS = 1.0


def object_slot_name(kind: ObjectKind, name: str) -> str:
    """The global concurrency limit of one object, e.g. ``cctasks-list-spring-leads-1a2b3c4d``.

    The readable part is a slug (Prefect refuses ``/``, ``%``, ``&``, ``<`` and ``>`` in
    names); the hash of the exact name keeps ``Spring Leads`` and ``spring-leads`` apart.
    """
    slug = _NOT_A_SLUG.sub("-", name.lower()).strip("-")[:_SLUG_CHARS].rstrip("-") or "x"
    digest = hashlib.sha256(name.encode()).hexdigest()[:8]
    return f"{OBJECT_SLOT_PREFIX}-{kind}-{slug}-{digest}"


def _ensure_limit(name: str) -> None:
    """Create the one-slot limit ``name`` unless it exists (two runs may race: both win)."""
    with get_client(sync_client=True) as client:
        try:
            client.read_global_concurrency_limit_by_name(name)
            return
        except ObjectNotFound:
            pass
        try:
            client.create_global_concurrency_limit(GlobalConcurrencyLimitCreate(name=name, limit=1))
        except ObjectAlreadyExists:
            pass


def _holder() -> ConcurrencyLeaseHolder | None:
    context = FlowRunContext.get()
    if context is None or context.flow_run is None:
        return None
    return ConcurrencyLeaseHolder(type="flow_run", id=context.flow_run.id)


@contextmanager
def object_slot(kind: ObjectKind, name: str) -> Iterator[str]:
    """Hold the one slot of object ``name`` of ``kind``, waiting while another run has it.

    Yields:
        The limit's name.
    """
    limit = object_slot_name(kind, name)
    _ensure_limit(limit)
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
        if waited > _WAIT_WORTH_SAYING_SECONDS:
            # Another run held it, or the API was slow to answer: both are worth seeing.
            get_logger("cctasks.slots").info(
                "took the slot of %s %r after %.1f s", kind, name, waited
            )
        yield limit


@contextmanager
def resource_slot(limit: str) -> Iterator[None]:
    """Hold one slot of the shared-resource limit ``limit``.

    Where the server has no such limit (one that ``cctasks up`` did not bootstrap),
    Prefect logs a warning in the run's log and the run goes on unlimited.
    """
    with concurrency(
        limit,
        occupy=1,
        strict=False,
        lease_duration=OBJECT_LEASE_SECONDS,
        holder=_holder(),
        raise_on_lease_renewal_failure=False,
    ):
        yield
