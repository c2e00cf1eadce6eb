"""One run per object at a time: the global concurrency limits of flows.common.slots.

Against the session's real Prefect server: two holders of one object's slot never
overlap, two different objects do, and the shared-resource limits are taken.
"""

from __future__ import annotations

import threading
import time
import uuid

import pytest
from prefect import get_client

from flows.common.slots import object_slot, object_slot_name, resource_slot

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


def test_a_resource_slot_is_taken_while_held() -> None:
    limit_name = f"cctasks-test-resource-{uuid.uuid4().hex[:6]}"
    with get_client(sync_client=True) as client:
        client.upsert_global_concurrency_limit_by_name(limit_name, 2)
        with resource_slot(limit_name):
            held = client.read_global_concurrency_limit_by_name(limit_name).active_slots
        after = client.read_global_concurrency_limit_by_name(limit_name).active_slots
    assert (held, after) == (1, 0)
