"""Two first imports of a new list at once (PostgreSQL, where they really run together):
the second waits for the first and then proceeds, instead of a raw UniqueViolation."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from support.list_load_support import Parsed, chunk, keys, load, records
from test_exclusions import T0, keys_frame

from contact_center.storage.exclusion_load import ensure_exclusion_list, load_exclusion_keys
from contact_center.storage.models import CallingList, Exclusion, ExclusionList, ListImport

pytestmark = pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)

LIST = "Brand New List"


def wait_until_a_backend_waits_for_a_lock(engine: sa.Engine, timeout: float = 20.0) -> None:
    """Return once another session of this database is blocked on a lock."""
    query = sa.text(
        "SELECT count(*) FROM pg_stat_activity "
        "WHERE datname = current_database() AND wait_event_type = 'Lock'"
    )
    deadline = time.monotonic() + timeout
    with engine.connect() as conn:
        while time.monotonic() < deadline:
            if conn.execute(query).scalar_one():
                return
            conn.rollback()
            time.sleep(0.05)
    raise AssertionError("the second import never waited for the first one's lock")


def race(
    engine: sa.Engine, first: Callable[[Callable[[], None]], Any], second: Callable[[], Any]
) -> tuple[Any, Any]:
    """Run ``first`` until it calls ``hold()`` (its new list's row written, not committed),
    start ``second``, see it block on that row, then let ``first`` commit; return both
    results (raising their errors)."""
    inside, release = threading.Event(), threading.Event()

    def hold() -> None:
        inside.set()
        assert release.wait(30), "the test never let the first import finish"

    with ThreadPoolExecutor(max_workers=2) as pool:
        one: Future[Any] = pool.submit(first, hold)
        assert inside.wait(30), "the first import never got its list"
        two: Future[Any] = pool.submit(second)
        try:
            wait_until_a_backend_waits_for_a_lock(engine)
            assert not two.done()
        finally:
            release.set()
        return one.result(timeout=60), two.result(timeout=60)


def test_two_first_imports_of_a_new_calling_list(engine: sa.Engine) -> None:
    def first(hold: Callable[[], None]) -> Any:
        def chunks() -> Iterator[Parsed]:
            hold()  # the list row is written, not committed
            yield chunk(keys(100))

        return load(engine, chunks(), list_name=LIST)

    def second() -> Any:
        return load(engine, [chunk(keys(100, start=50))], list_name=LIST)

    one, two = race(engine, first, second)
    assert (one.created_list, one.loaded) == (True, 100)
    # The second waited, then found the first one's list and records.
    assert (two.created_list, two.loaded, two.unchanged, two.list_id) == (
        False,
        50,
        50,
        one.list_id,
    )
    assert sorted(records(engine, LIST)) == [f"A{i:05d}" for i in range(150)]
    with engine.connect() as conn:
        assert conn.scalar(sa.select(sa.func.count()).select_from(CallingList)) == 1
        statuses = conn.scalars(sa.select(ListImport.status)).all()
    assert statuses == ["completed", "completed"]


def test_two_first_imports_of_a_new_exclusion_list(engine: sa.Engine) -> None:
    def apply(keys: list[str], hold: Callable[[], None] | None = None) -> tuple[int, Any]:
        with engine.begin() as conn:
            info = ensure_exclusion_list(
                conn, "New DNC", match_field="account", case_sensitive=True, update_policy="add"
            )
            frame = keys_frame(keys, T0 + timedelta(days=30))
            counts = load_exclusion_keys(conn, info.id, frame, update_policy="add", now=T0)
            if hold is not None:
                hold()  # the list and its keys are written, not committed
        return info.id, counts

    one, two = race(engine, lambda hold: apply(["a", "b", "c"], hold), lambda: apply(["c", "d"]))
    assert one[0] == two[0]
    assert (one[1].added, two[1].added, two[1].renewed) == (3, 1, 1)
    with engine.connect() as conn:
        stored = conn.scalars(sa.select(Exclusion.key_value).order_by(Exclusion.key_value)).all()
        lists = conn.scalar(sa.select(sa.func.count()).select_from(ExclusionList))
    assert (stored, lists) == (["a", "b", "c", "d"], 1)
