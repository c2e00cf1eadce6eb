"""One run per object at a time: the global concurrency limits of flows.common.slots.

Against the session's real Prefect server: two holders of one object's slot never
overlap, two different objects do, the shared-resource limits are taken, and a run
that waits for its list's slot shows as waiting in the Scheduled view, then completes.
"""

from __future__ import annotations

import threading
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from prefect import flow, get_client
from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

from flows.calling_list_import import import_calling_list
from flows.common.slots import object_slot, object_slot_name
from runlog.planned import scheduled
from runlog.rows import ScheduledRow

HOLD_SECONDS = 1.5


def _hold(kind: str, name: str, spans: list[tuple[float, float]]) -> None:
    with object_slot(kind, name):  # type: ignore[arg-type]
        began = time.monotonic()
        time.sleep(HOLD_SECONDS)
        spans.append((began, time.monotonic()))


def _run_two(first: str, second: str) -> list[tuple[float, float]]:
    spans: list[tuple[float, float]] = []
    threads = [
        threading.Thread(target=_hold, args=("list", name, spans)) for name in (first, second)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert len(spans) == 2, "a holder never got its slot"
    return sorted(spans)


def test_slot_names_are_valid_prefect_names_and_keep_objects_apart() -> None:
    a = object_slot_name("list", "Spring Leads")
    assert a.startswith("cctasks-list-spring-leads-")
    assert a == object_slot_name("list", "Spring Leads")
    assert a != object_slot_name("list", "spring-leads")
    assert a != object_slot_name("exclusions", "Spring Leads")
    odd = object_slot_name("campaign", "a/b %&<> ü")
    assert not set("/%&<>") & set(odd)


def test_one_object_is_held_by_one_run_at_a_time() -> None:
    name = f"Slot list {uuid.uuid4().hex[:6]}"
    first, second = _run_two(name, name)
    assert second[0] >= first[1], f"the two holders overlapped: {first} {second}"
    with get_client(sync_client=True) as client:
        limit = client.read_global_concurrency_limit_by_name(object_slot_name("list", name))
    assert limit.limit == 1
    assert limit.active_slots == 0  # both released


def test_two_objects_are_held_at_once() -> None:
    tag = uuid.uuid4().hex[:6]
    # Each holder waits inside its slot for the other: only if both are in at once
    # does the barrier open (a busy machine may start them seconds apart).
    both_in = threading.Barrier(2, timeout=60)
    met: list[str] = []

    def hold(name: str) -> None:
        with object_slot("list", name):
            both_in.wait()
            met.append(name)

    threads = [threading.Thread(target=hold, args=(f"list {x} {tag}",)) for x in "AB"]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert sorted(met) == [f"list A {tag}", f"list B {tag}"]


def test_a_failing_holder_releases_its_slot() -> None:
    name = f"Failing {uuid.uuid4().hex[:6]}"
    with pytest.raises(RuntimeError, match="half-way"), object_slot("list", name):
        raise RuntimeError("half-way")
    with get_client(sync_client=True) as client:
        limit = client.read_global_concurrency_limit_by_name(object_slot_name("list", name))
    assert limit.active_slots == 0


def test_cctasks_up_deletes_the_retired_shared_limits() -> None:
    from deployments.bootstrap import RETIRED_LIMITS, retire_concurrency_limits

    with get_client(sync_client=True) as client:
        for name in RETIRED_LIMITS:
            client.upsert_global_concurrency_limit_by_name(name, 2)
    assert retire_concurrency_limits() == list(RETIRED_LIMITS)
    assert retire_concurrency_limits() == []  # none left the second time
    with get_client(sync_client=True) as client:
        names = {limit.name for limit in client.read_global_concurrency_limits(limit=200)}
    assert not names & set(RETIRED_LIMITS)


def _rows_of(name: str) -> list[ScheduledRow]:
    return [r for r in scheduled(include_all=True) if r.object_name == name]


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_a_run_waiting_for_its_list_shows_waiting_then_completes(
    engine: sa.Engine, tmp_path: Path
) -> None:
    name = f"Wait list {uuid.uuid4().hex[:6]}"
    source = tmp_path / "wait.csv"
    source.write_text("account,phone1\nW1,2127365000\nW2,2127365001\n")
    holding, release = threading.Event(), threading.Event()

    # The first run: a flow that holds the list's slot, as another task's import would.
    @flow(name="hold-the-list")
    def hold_the_list() -> None:
        with object_slot("list", name):
            holding.set()
            release.wait(120)

    states: dict[str, Any] = {}
    holder = threading.Thread(target=hold_the_list)
    holder.start()
    try:
        assert holding.wait(60), "the holder never took the slot"
        importer = threading.Thread(target=lambda: states.update(
            second=import_calling_list(
                list_name=name, source=str(source),
                mapping={"account": "account", "phone1": "phone1"}, return_state=True,
            )
        ))
        importer.start()
        deadline = time.monotonic() + 90
        while True:
            rows = [r for r in _rows_of(name) if r.flow_name == "import-calling-list"]
            if rows and rows[0].state == "waiting":
                break
            assert time.monotonic() < deadline, f"the second run never showed waiting: {rows}"
            time.sleep(0.5)
        assert rows[0].note == f"waits for list {name}"
        waiting_id = rows[0].run_id
        # The holder's own row is in progress, not waiting.
        held = [r for r in scheduled(include_all=True) if r.flow_name == "hold-the-list"]
        assert [r.state for r in held] == ["in progress"]
    finally:
        release.set()
        holder.join(timeout=120)
    importer.join(timeout=120)
    assert states["second"].is_completed(), states["second"]
    assert states["second"].result().loaded == 2
    assert waiting_id == states["second"].state_details.flow_run_id
    # Its "waits for" artifact now says it took the slot: nothing shows it waiting.
    with get_client(sync_client=True) as client:
        progress = [
            a for a in client.read_artifacts(artifact_filter=ArtifactFilter(
                flow_run_id=ArtifactFilterFlowRunId(any_=[waiting_id])))
            if a.type == "progress"
        ]
    descriptions = [a.description or "" for a in progress]
    assert any(d.startswith(f"took the slot of list {name} after ") for d in descriptions)
    assert not any(d.startswith("waits for") for d in descriptions)
    assert _rows_of(name) == []
