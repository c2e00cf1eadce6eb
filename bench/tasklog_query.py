"""Benchmark: the Task Log query on a 20,000-run history, against Prefect's own read.

Run: ``.venv/bin/python -m bench.tasklog_query [--runs-in-history 20000] [--repeat 5]``

It starts a Prefect test server (SQLite, as ``make up``) and writes the history into
it: 20,000 finished runs spread over 60 days with durations up to 90 minutes, of the
five cctasks flows plus a foreign flow, ending completed, failed, crashed or
cancelled, each cctasks run with its outcome artifact. (Prefect's API stamps start
and end times with the time of the request, so the history is written through
Prefect's own server model layer, the code behind that API, not by executing flows.)
It then prints medians of ``--repeat`` timings, each against the reference measured in
the same run:

- reference: one ``read_flow_runs`` of the 100 newest finished cctasks runs (Prefect's
  own server-side filter, sort and limit; no flow names, deployments or sizes);
- ``task_log(limit=100)``: the target, at most 1 s;
- ``task_log`` sorted by end time oldest-first, by duration (client-side, window of
  1000), filtered by object, and ``scheduled()``;
- for contrast, reading the whole history page by page (what the views never do).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import statistics
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("DO_NOT_TRACK", "1")
os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")

from prefect import Flow  # noqa: E402
from prefect.client.orchestration import get_client  # noqa: E402
from prefect.client.schemas.filters import (  # noqa: E402
    FlowFilter,
    FlowFilterName,
    FlowRunFilter,
    FlowRunFilterState,
    FlowRunFilterStateType,
)
from prefect.client.schemas.objects import StateType  # noqa: E402
from prefect.client.schemas.sorting import FlowRunSort  # noqa: E402
from prefect.server import models, schemas  # noqa: E402
from prefect.server.database import provide_database_interface  # noqa: E402
from prefect.testing.utilities import prefect_test_harness  # noqa: E402
from sqlalchemy.exc import OperationalError  # noqa: E402

from contact_center.settings import OUTCOME_ARTIFACT_KEY  # noqa: E402
from runlog import FLOW_TYPES, scheduled, task_log  # noqa: E402

BATCH = 200
FINISHED = [StateType.COMPLETED, StateType.FAILED, StateType.CRASHED, StateType.CANCELLED]


def _noop() -> None:
    """The body of the benchmark's stand-in flows (never executed)."""


FLOWS = {name: Flow(fn=_noop, name=name) for name in [*FLOW_TYPES, "some-other-flow"]}


def _final_state(roll: float, timestamp: datetime) -> schemas.states.State:
    if roll < 0.85:
        return schemas.states.Completed(timestamp=timestamp)
    if roll < 0.95:
        return schemas.states.Failed(
            timestamp=timestamp,
            message="Flow run encountered an exception: InvalidFile: file 'x.csv', row 7: bad",
        )
    if roll < 0.98:
        return schemas.states.Crashed(timestamp=timestamp, message="exit code 137")
    return schemas.states.Cancelled(timestamp=timestamp, message="Cancelled by admin")


async def _make_history(total: int, flow_ids: dict[str, UUID], seed: int = 7) -> None:
    """``total`` finished runs over the last 60 days, with their outcome artifacts.

    Written through Prefect's server model layer (the code behind its API), in
    transactions of 200, because the API stamps start and end times with the time of
    the request and this history must span weeks with real durations.
    """
    rng = random.Random(seed)
    db = provide_database_interface()
    for first in range(0, total, BATCH):
        for attempt in range(30):
            try:
                await _write_batch(db, rng, flow_ids, first, min(first + BATCH, total), total)
                break
            except OperationalError as exc:
                # The server's own services write to the same SQLite file now and then.
                if "locked" not in str(exc) or attempt == 29:
                    raise
                await asyncio.sleep(0.5)
        if (first + BATCH) % 5000 == 0:
            print(f"  {first + BATCH} runs written", flush=True)


async def _write_batch(
    db: Any, rng: random.Random, flow_ids: dict[str, UUID], first: int, stop: int, total: int
) -> None:
    names = list(FLOWS)
    now = datetime.now(UTC)
    span = timedelta(days=60)
    async with db.session_context(begin_transaction=True) as session:
        for index in range(first, stop):
            flow_name = names[index % len(names)]
            ftype = FLOW_TYPES.get(flow_name)
            obj = f"Object {index % 250}"
            params: dict[str, Any] = {ftype.object_param: obj} if ftype else {"x": index}
            if flow_name == "campaign-trigger":
                params["step"] = rng.choice(["start", "stop"])
            step = params.get("step") or (ftype.default_step if ftype else "run")
            start = now - span + span * (index / total)
            end = start + timedelta(seconds=rng.uniform(2, 5400))
            run = await models.flow_runs.create_flow_run(  # type: ignore[attr-defined]
                session=session,
                flow_run=schemas.core.FlowRun(
                    flow_id=flow_ids[flow_name],
                    name=f"{obj} · {step}",
                    parameters=params,
                    state=schemas.states.Running(timestamp=start),
                ),
            )
            await models.flow_runs.set_flow_run_state(
                session=session,
                flow_run_id=run.id,
                state=_final_state(rng.random(), end),
                force=True,
            )
            if ftype:
                await models.artifacts.create_artifact(
                    session=session,
                    artifact=schemas.core.Artifact(
                        key=OUTCOME_ARTIFACT_KEY,
                        type="table",
                        data=f'[{{"bytes": {rng.randint(0, 50_000_000)}}}]',
                        flow_run_id=run.id,
                    ),
                )


def _create_flows() -> dict[str, UUID]:
    with get_client(sync_client=True) as client:
        return {name: client.create_flow(flow) for name, flow in FLOWS.items()}


def _reference() -> None:
    with get_client(sync_client=True) as client:
        client.read_flow_runs(
            flow_filter=FlowFilter(name=FlowFilterName(any_=list(FLOW_TYPES))),
            flow_run_filter=FlowRunFilter(
                state=FlowRunFilterState(type=FlowRunFilterStateType(any_=FINISHED))
            ),
            sort=FlowRunSort.START_TIME_DESC,
            limit=100,
        )


def _whole_history() -> None:
    with get_client(sync_client=True) as client:
        offset = 0
        while True:
            page = client.read_flow_runs(limit=200, offset=offset)
            offset += len(page)
            if len(page) < 200:
                return


def _median(fn: Callable[[], object], repeat: int) -> float:
    fn()  # warm caches and connections
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    """Create the history, then print the medians and ratios."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs-in-history", type=int, default=20_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    with prefect_test_harness(server_startup_timeout=120):
        print(f"writing a history of {args.runs_in_history} finished runs ...")
        started = time.perf_counter()
        asyncio.run(_make_history(args.runs_in_history, _create_flows()))
        print(f"  done in {time.perf_counter() - started:.0f} s")
        cases: list[tuple[str, Callable[[], object], int]] = [
            ("reference: read_flow_runs(limit=100), raw", _reference, args.repeat),
            ("task_log(limit=100)  [target <= 1 s]", lambda: task_log(limit=100), args.repeat),
            (
                "task_log(limit=100, sort end_time asc)",
                lambda: task_log(limit=100, sort="end_time", descending=False),
                args.repeat,
            ),
            (
                "task_log(limit=100, sort duration)",
                lambda: task_log(limit=100, sort="duration"),
                args.repeat,
            ),
            (
                "task_log(limit=100, object filter)",
                lambda: task_log(limit=100, object_name="Object 7"),
                args.repeat,
            ),
            ("scheduled()", scheduled, args.repeat),
            ("contrast: read the whole history", _whole_history, 3),
        ]
        results = [(name, _median(fn, repeat), repeat) for name, fn, repeat in cases]
    reference = results[0][1]
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"\nmedians on a history of {args.runs_in_history} runs (same server, same run)")
    print(f"machine: {os.cpu_count()} cores, load average {load} (1, 5, 15 min)")
    print(f"{'query':<44} {'median':>9} {'vs reference':>13}")
    for name, median, repeat in results:
        print(f"{name:<44} {median * 1000:>7.0f} ms {median / reference:>12.1f}x  (n={repeat})")
    target = results[1][1]
    print(
        f"\ntarget: 100 newest rows in <= 1 s: {'met' if target <= 1.0 else 'NOT met'}"
        f" ({target:.3f} s)"
    )


if __name__ == "__main__":
    main()
