"""Load and failure test of ``cctasks up --scale`` (issue 16): loopback only, bounded.

    python -m bench.scale_load                  # 10 minutes, 2 workers
    python -m bench.scale_load --minutes 3      # a short try

It starts its own PostgreSQL cluster (initdb in a temporary folder, a free port) and
its own Redis, so that restarting PostgreSQL disturbs nobody else, then the real scale
profile on them (``cctasks up --scale --no-demo``: two API servers behind HAProxy, the
services process, N workers). On that stack:

- 40 calling-list import deployments on one-minute schedules (spread over the minute),
  on 10 lists, so four deployments share each list and per-object slots matter; each
  imports a small generated file of its own from a local drop folder (``replace``,
  ``force``: every run loads);
- a burst of ad-hoc runs every 90 s;
- faults, logged with their times: ``kill -9`` of one API server (30 % into the window),
  of one worker and its flow-run processes, as when its machine dies (50 %), and a
  restart of PostgreSQL (70 %). The stack's supervisor starts a killed part again, as an
  operator would.

After the window, the runs scheduled within it are given time to end, then the report
(printed, and written as JSON next to the logs): runs scheduled, completed,
failed/crashed, lost, duplicated, lateness p50/p95/max, overlapping loads on one list
(from the task runs' times and from the database's import rows), throughput, and
whether every list holds exactly its last completed import's rows.

Everything it starts is stopped and its folder removed, on Ctrl-C too.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import tempfile
import time
from collections import Counter
from contextlib import ExitStack
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import UUID

import sqlalchemy as sa

from bench.scale_metrics import (
    RunRecord,
    Span,
    backlog,
    duplicated,
    expected_slots,
    lateness_seconds,
    lost,
    overlaps,
    percentile,
)
from bench.scale_parts import (
    Postgres,
    kill_api_server,
    kill_worker,
    log,
    redis_server,
    scale_stack,
)

TEMPLATE_DEPLOYMENT = "spring-leads-import"
LISTS = 10
INTERVAL = timedelta(minutes=1)
BURST_EVERY_SECONDS = 90
BURST_RUNS = 6
TERMINAL = {"COMPLETED", "FAILED", "CRASHED", "CANCELLED"}


def write_files(drop: Path, deployments: int) -> list[tuple[Path, int]]:
    drop.mkdir(parents=True, exist_ok=True)
    files = []
    for i in range(deployments):
        rows = 300 + 20 * i
        path = drop / f"bench_{i:02d}.csv"
        lines = ["account,phone1,first_name,last_name,zip"]
        lines += [f"B{i:02d}{n:06d},212{3_000_000 + n:07d},Ann,Lee,10001" for n in range(rows)]
        path.write_text("\n".join(lines) + "\n")
        files.append((path, rows))
    return files


def create_deployments(client: Any, files: list[tuple[Path, int]], anchor: datetime) -> dict[
    str, tuple[UUID, str, datetime]
]:
    """40 imports cloned from the stack's own list-import deployment; name -> (id, list, anchor)."""
    from prefect.client.schemas.actions import DeploymentScheduleCreate
    from prefect.client.schemas.objects import ConcurrencyOptions
    from prefect.client.schemas.schedules import IntervalSchedule

    template = client.read_deployment_by_name(f"import-calling-list/{TEMPLATE_DEPLOYMENT}")
    made = {}
    step = INTERVAL / len(files)
    for i, (path, _) in enumerate(files):
        list_name = f"Bench list {i % LISTS}"
        start = anchor + i * step
        deployment_id = client.create_deployment(
            flow_id=template.flow_id, name=f"bench-{i:02d}",
            schedules=[DeploymentScheduleCreate(
                schedule=IntervalSchedule(interval=INTERVAL, anchor_date=start), active=True)],
            # As every task of prefect.yaml: one run at a time, the next one queued.
            concurrency_limit=1,
            concurrency_options=ConcurrencyOptions(collision_strategy="ENQUEUE"),
            parameters={
                "list_name": list_name, "source": str(path),
                "mapping": {"account": "account", "phone1": "phone1", "first_name": "first_name",
                            "last_name": "last_name", "zip": "zip"},
                "update_policy": "replace", "force": True, "after_import": "keep",
            },
            work_pool_name=template.work_pool_name, work_queue_name=template.work_queue_name,
            path=template.path, entrypoint=template.entrypoint, pull_steps=template.pull_steps,
            parameter_openapi_schema=template.parameter_openapi_schema,
            job_variables=template.job_variables, tags=["bench"],
        )
        made[f"bench-{i:02d}"] = (deployment_id, list_name, start)
    return made


def read_runs(client: Any, deployment_ids: list[UUID]) -> list[Any]:
    from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterId

    runs: list[Any] = []
    while True:
        page = client.read_flow_runs(
            deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=deployment_ids)),
            limit=200, offset=len(runs),
        )
        runs.extend(page)
        if len(page) < 200:
            return runs


def load_spans(client: Any, runs: list[Any], list_of: dict[UUID, str]) -> list[Span]:
    """The load_list task runs' spans: the part of a run that changes its list."""
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    spans = []
    now = datetime.now(UTC)
    ends = {r.id: r.end_time for r in runs}
    ids = [r.id for r in runs if r.start_time is not None]
    for at in range(0, len(ids), 100):
        chunk = ids[at : at + 100]
        offset = 0
        while True:
            page = client.read_task_runs(
                flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=chunk)),
                limit=200, offset=offset,
            )
            for task in page:
                if task.name.startswith("load_list") and task.start_time is not None:
                    end = task.end_time or ends.get(task.flow_run_id) or now
                    spans.append(Span(list_of[task.flow_run_id], task.start_time, end,
                                      str(task.flow_run_id)))
            offset += len(page)
            if len(page) < 200:
                break
    return spans


def database_checks(url: str) -> tuple[list[Span], dict[str, tuple[int, int]]]:
    """Import rows' spans, and per list (records, last completed import's valid rows)."""
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(sa.text(
                "SELECT l.name, i.started_at, i.finished_at, i.status, i.flow_run_id, "
                "i.rows_read - i.rejected - i.excluded AS valid "
                "FROM list_imports i JOIN calling_lists l ON l.id = i.list_id "
                "WHERE l.name LIKE 'Bench list %' ORDER BY i.finished_at")).all()
            counts = dict(conn.execute(sa.text(
                "SELECT l.name, count(r.id) FROM calling_lists l LEFT JOIN list_records r "
                "ON r.list_id = l.id WHERE l.name LIKE 'Bench list %' GROUP BY l.name")).all())
    finally:
        engine.dispose()
    spans = [Span(r.name, r.started_at, r.finished_at, r.flow_run_id)
             for r in rows if r.finished_at is not None]
    last: dict[str, int] = {}
    for r in rows:
        if r.status == "completed":
            last[r.name] = r.valid
    return spans, {name: (counts.get(name, 0), last.get(name, -1)) for name in counts}


def _s(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f} s"


def run(args: argparse.Namespace, root: Path) -> dict[str, Any]:
    from prefect import get_client
    from prefect.settings import PREFECT_API_URL, temporary_settings

    home = root / "home"
    pg = Postgres(root)
    pg.start()
    faults: list[dict[str, str]] = []
    with ExitStack() as stack:
        stack.callback(pg.stop)
        redis_url = stack.enter_context(redis_server(root))
        api_url, up_output = stack.enter_context(scale_stack(home, pg, redis_url, args.workers))
        stack.enter_context(temporary_settings(updates={PREFECT_API_URL: api_url}))
        client = stack.enter_context(get_client(sync_client=True))
        files = write_files(home / "drop" / "lists", args.deployments)
        anchor = (datetime.now(UTC) + timedelta(seconds=30)).replace(microsecond=0)
        made = create_deployments(client, files, anchor)
        ids = [d for d, _, _ in made.values()]
        list_of_deployment = {d: name for d, name, _ in made.values()}
        window_start = anchor
        window_end = window_start + timedelta(minutes=args.minutes)
        log(f"{len(made)} deployments on {LISTS} lists; window {window_start:%H:%M:%S} to "
            f"{window_end:%H:%M:%S} UTC")
        plan = [
            (0.3, "api", lambda: kill_api_server(home)),
            (0.5, "worker", lambda: kill_worker(home)),
            (0.7, "postgres", lambda: (pg.restart(), "PostgreSQL restarted (pg_ctl -m fast)")[1]),
        ]
        if args.no_faults:
            plan = []
        rng = random.Random(16)
        adhoc = 0
        next_burst = window_start + timedelta(seconds=BURST_EVERY_SECONDS / 2)
        names = sorted(made)
        while (now := datetime.now(UTC)) < window_end:
            elapsed = (now - window_start) / (window_end - window_start)
            while plan and elapsed >= plan[0][0]:
                _, kind, act = plan.pop(0)
                at = datetime.now(UTC)
                what = act()
                faults.append({"at": at.isoformat(timespec="seconds"), "fault": kind,
                               "what": what})
                log(f"FAULT {what}")
            if now >= next_burst:
                for name in rng.sample(names, BURST_RUNS):
                    try:
                        client.create_flow_run_from_deployment(made[name][0], tags=["adhoc"])
                        adhoc += 1
                    except Exception as exc:  # the API may be restarting: counted, not fatal
                        log(f"ad-hoc run of {name} not created: {exc}")
                log(f"burst of {BURST_RUNS} ad-hoc runs ({adhoc} in all)")
                next_burst += timedelta(seconds=BURST_EVERY_SECONDS)
            time.sleep(1)

        log("window over; waiting for the runs it scheduled to end")
        drain_deadline = time.monotonic() + args.drain_minutes * 60
        while True:
            try:
                runs = read_runs(client, ids)
            except Exception as exc:
                log(f"reading runs failed ({exc}); again")
                time.sleep(5)
                continue
            # An interval schedule also owes the slot before its anchor when the
            # deployment was made earlier: only the window's slots count.
            ours = [r for r in runs if r.expected_start_time < window_end
                    and (not r.auto_scheduled or r.expected_start_time >= window_start)]
            open_runs = [r for r in ours if r.state is None or r.state.type.value not in TERMINAL]
            if not open_runs or time.monotonic() > drain_deadline:
                break
            log(f"{len(open_runs)} runs of the window not ended yet: "
                f"{dict(Counter(r.state.name for r in open_runs if r.state))}")
            time.sleep(10)
        drained = datetime.now(UTC)
        for deployment_id in ids:
            client.pause_deployment(deployment_id)
        spans_tasks = load_spans(client, ours,
                                 {r.id: list_of_deployment[r.deployment_id] for r in ours})
        db_spans, lists = database_checks(
            f"{pg.url.replace('postgresql', 'postgresql+psycopg')}/cctasks")
        held = {
            limit.name: limit.active_slots
            for limit in client.read_global_concurrency_limits(limit=200)
            if limit.name.startswith("cctasks-list-bench-list") and limit.active_slots
        }
        running_at_end = sum(1 for r in ours if r.state and r.state.type.value == "RUNNING")
        restarted = [line for line in up_output.read_text(errors="replace").splitlines()
                     if "starting it again" in line]

    name_of = {d: n for n, (d, _, _) in made.items()}
    records = [
        RunRecord(name_of[r.deployment_id], r.expected_start_time, r.auto_scheduled,
                  r.state.type.value if r.state else "SCHEDULED", r.start_time, r.end_time)
        for r in ours
    ]
    owed = {n: expected_slots(a, INTERVAL, window_start, window_end)
            for n, (_, _, a) in made.items()}
    states = Counter(r.state for r in records)
    late = lateness_seconds(records)
    late_adhoc = lateness_seconds(records, auto=False)
    lost_slots = lost(owed, records)
    completed_in_window = [r for r in records if r.state == "COMPLETED"]
    minutes = (drained - window_start).total_seconds() / 60
    report = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "minutes": args.minutes, "workers": args.workers, "deployments": len(made),
        "list_count": LISTS, "cpus": os.cpu_count(),
        "scheduled_slots": sum(len(v) for v in owed.values()),
        "scheduled_runs": sum(1 for r in records if r.auto),
        "adhoc_runs": sum(1 for r in records if not r.auto),
        "states": dict(states),
        "completed": states.get("COMPLETED", 0),
        "failed": states.get("FAILED", 0), "crashed": states.get("CRASHED", 0),
        "cancelled": states.get("CANCELLED", 0),
        "not_ended": sum(n for s, n in states.items() if s not in TERMINAL),
        "lost": len(lost_slots), "backlog": backlog(records),
        "lost_slots": [f"{d} {t:%H:%M:%S}" for d, t in lost_slots][:50],
        "duplicated": duplicated(records),
        "lateness_p50": percentile(late, 50), "lateness_p95": percentile(late, 95),
        "lateness_max": max(late) if late else None,
        "adhoc_lateness_p50": percentile(late_adhoc, 50),
        "adhoc_lateness_max": max(late_adhoc) if late_adhoc else None,
        "overlaps_task_runs": len(overlaps(spans_tasks)),
        "overlaps_import_rows": len(overlaps(db_spans)),
        "loads_checked": len(spans_tasks), "import_rows_checked": len(db_spans),
        "throughput_per_minute": round(len(completed_in_window) / minutes, 1),
        "drain_minutes_after_window": round((drained - window_end).total_seconds() / 60, 1),
        "lists_whole": all(count == last for count, last in lists.values()),
        "lists": {n: {"records": c, "last_import_rows": last} for n, (c, last) in lists.items()},
        "faults": faults, "restarted_by_stack": restarted,
        "object_slots_held_at_end": held, "running_at_end": running_at_end,
    }
    return report


def print_report(report: dict[str, Any]) -> None:
    print()
    print(f"Load and failure test: {report['deployments']} deployments, {report['workers']} "
          f"workers, {report['minutes']} min, {report['cpus']} CPUs")
    for fault in report["faults"]:
        print(f"  fault at {fault['at']}: {fault['what']}")
    for line in report["restarted_by_stack"]:
        print(f"  stack: {line.strip()}")
    print(f"  scheduled slots {report['scheduled_slots']}, scheduled runs "
          f"{report['scheduled_runs']}, ad-hoc runs {report['adhoc_runs']}")
    print(f"  completed {report['completed']}, failed {report['failed']}, crashed "
          f"{report['crashed']}, cancelled {report['cancelled']}, not ended "
          f"{report['not_ended']}")
    print(f"  lost {report['lost']}, duplicated {report['duplicated']}, not started by the end "
          f"(backlog) {report['backlog']}")
    print(f"  lateness p50 {_s(report['lateness_p50'])}, p95 {_s(report['lateness_p95'])}, "
          f"max {_s(report['lateness_max'])} (ad-hoc p50 {_s(report['adhoc_lateness_p50'])})")
    print(f"  overlapping loads on one list: {report['overlaps_task_runs']} (task runs, "
          f"{report['loads_checked']} loads), {report['overlaps_import_rows']} (import rows, "
          f"{report['import_rows_checked']})")
    print(f"  throughput {report['throughput_per_minute']} completed runs/min; drained "
          f"{report['drain_minutes_after_window']} min after the window")
    print(f"  every list holds its last completed import's rows: {report['lists_whole']}")
    print(f"  list slots held at the end: {sum(report['object_slots_held_at_end'].values())} "
          f"(runs still running then: {report['running_at_end']})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=10.0, help="the window (default 10)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--deployments", type=int, default=40)
    parser.add_argument("--drain-minutes", type=float, default=5.0,
                        help="how long the window's runs may take to end afterwards (default 5)")
    parser.add_argument("--no-faults", action="store_true", help="load only")
    parser.add_argument("--json", type=Path, help="also write the report here")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    args = parser.parse_args()
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("DO_NOT_TRACK", "1")
    root = Path(tempfile.mkdtemp(prefix="cctasks-scale-load-"))
    os.environ["PREFECT_HOME"] = str(root / "bench-prefect")
    # SIGTERM ends the test like Ctrl-C: every part is stopped on the way out.
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    try:
        report = run(args, root)
        print_report(report)
        if args.json:
            args.json.write_text(json.dumps(report, indent=2, default=str) + "\n")
    finally:
        if args.keep:
            log(f"kept {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
