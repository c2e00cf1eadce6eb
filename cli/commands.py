"""The view commands of the ``cctasks`` CLI: ``log``, ``scheduled``, ``run``,
``pause`` and ``resume``.

``cli/main.py`` registers them on the app. Bad input (an unknown column, task,
type or parameter, a bad time, an unreachable server) ends with a one-line error
that says what would be valid, and exit code 2. ``run --watch`` exits 1 when the
run does not complete.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from uuid import UUID

import typer
from rich.console import Console
from rich.live import Live
from rich.table import Table

from cli.watch import outcome_lines, watch_display
from contact_center.exceptions import CCTasksError, InvalidParameter
from runlog.history import DEFAULT_SORT_WINDOW, task_log
from runlog.mapping import parse_horizon, parse_time
from runlog.pausing import PauseChange, pause_task, resume_task
from runlog.planned import scheduled
from runlog.rows import ScheduledRow, TaskLogRow
from runlog.runs import RunStatus, final_outcome, follow_run, request_run
from tasklog.render import FORMATS, render_rich, render_text, write_xlsx
from tasklog.zones import DisplayZone, display_zone

__all__ = [
    "EMBEDDED_API_URL",
    "log_command",
    "pause_command",
    "resume_command",
    "run_command",
    "scheduled_command",
]

# The embedded stack's server (`make up`); used when PREFECT_API_URL is not set, so
# that the CLI never starts a throwaway server of its own.
EMBEDDED_API_URL = "http://127.0.0.1:4200/api"

out = Console(highlight=False, soft_wrap=False)

# Options with mutable or Path defaults, made once (typer reads them at import).
_TYPES = typer.Option(
    [], "--type", help="Type label or flow name (repeatable), e.g. 'Campaign trigger'."
)
_PARAMS = typer.Option([], "--param", "-p", help="Override a parameter: name=value (repeatable).")
_OUTPUT = typer.Option(None, "--output", "-o", help="Write to this file.")
_FORMAT = typer.Option("table", "--format", help="table, csv, json or xlsx.")
_UTC = typer.Option(
    False, "--utc", help="Show times in UTC instead of the centre's zone (CCTASKS_TIME_ZONE)."
)
_ALL = typer.Option(False, "--all", help="Also show non-cctasks flows.")


def _fail(message: str, code: int = 2) -> typer.Exit:
    from cli.main import fail  # the CLI's one error printer

    return fail(message, code)


@contextmanager
def _views() -> Iterator[None]:
    """Point at the embedded server when nothing is configured; map errors to exit 2."""
    from prefect.settings import PREFECT_API_URL, temporary_settings

    updates = {} if PREFECT_API_URL.value() else {PREFECT_API_URL: EMBEDDED_API_URL}
    try:
        with temporary_settings(updates=updates):
            yield
    except CCTasksError as exc:
        raise _fail(str(exc)) from None


def _check_format(fmt: str, output: Path | None) -> str:
    fmt = fmt.lower()
    if fmt not in FORMATS:
        raise InvalidParameter(f"unknown format {fmt!r}; valid formats: {', '.join(FORMATS)}")
    if fmt == "xlsx" and output is None:
        raise InvalidParameter("--format xlsx needs --output FILE.xlsx")
    return fmt


def _emit(
    rows: list[TaskLogRow] | list[ScheduledRow],
    fmt: str,
    output: Path | None,
    scheduled_view: bool,
    zone: DisplayZone,
    title: str,
) -> None:
    if fmt == "xlsx":
        assert output is not None
        write_xlsx(rows, output, scheduled_view, zone)
        typer.echo(f"wrote {len(rows)} rows to {output}")
        return
    if fmt == "table":
        table = render_rich(rows, scheduled_view, zone, title=title)
        if output is None:
            out.print(table)
        else:
            with output.open("w", encoding="utf-8") as handle:
                Console(file=handle, width=200, highlight=False).print(table)
        return
    text = render_text(rows, fmt, scheduled_view, zone)
    if output is None:
        sys.stdout.write(text)
    else:
        output.write_text(text, encoding="utf-8")


def log_command(
    sort: str = typer.Option(
        "start_time",
        "--sort",
        help="Column: start_time, end_time, object_name, task_name, duration, size_kb, "
        "result, error, type, step (headers such as 'Size (KB)' work too).",
    ),
    descending: bool = typer.Option(True, "--desc/--asc", help="Newest (largest) first."),
    types: list[str] = _TYPES,
    result: str | None = typer.Option(None, "--result", help="completed or failed."),
    object_name: str | None = typer.Option(None, "--object", help="Object name (any case)."),
    task: str | None = typer.Option(None, "--task", help="Deployment name or flow/deployment."),
    since: str | None = typer.Option(None, "--since", help="ISO time or span back: 24h, 7d."),
    until: str | None = typer.Option(None, "--until", help="ISO time or span back: 24h, 7d."),
    limit: int = typer.Option(50, "--limit", min=1, help="At most this many rows."),
    window: int = typer.Option(
        DEFAULT_SORT_WINDOW,
        "--window",
        min=1,
        help="Newest matching runs that a sort on a column other than start/end time considers.",
    ),
    fmt: str = _FORMAT,
    output: Path | None = _OUTPUT,
    utc: bool = _UTC,
    include_all: bool = _ALL,
) -> None:
    """The Task Log: finished runs, newest first."""
    with _views():
        fmt = _check_format(fmt, output)
        zone = display_zone(utc)
        now = datetime.now(UTC)
        rows = task_log(
            sort=sort,
            descending=descending,
            types=types or None,
            result=result.lower() if result else None,
            object_name=object_name,
            task=task,
            since=parse_time(since, now, utc, zone.zone) if since else None,
            until=parse_time(until, now, utc, zone.zone) if until else None,
            limit=limit,
            window=window,
            include_all=include_all,
        )
        _emit(rows, fmt, output, False, zone, "Task Log")


def scheduled_command(
    horizon: str = typer.Option("24h", "--horizon", help="How far ahead: 30m, 24h, 7d."),
    watch: bool = typer.Option(False, "--watch", help="Refresh in place until Ctrl-C."),
    interval: float = typer.Option(5.0, "--interval", min=0.1, help="Seconds between refreshes."),
    refreshes: int = typer.Option(0, "--refreshes", hidden=True, help="Stop after N refreshes."),
    fmt: str = _FORMAT,
    output: Path | None = _OUTPUT,
    utc: bool = _UTC,
    include_all: bool = _ALL,
) -> None:
    """Scheduled and In-Progress Tasks: next runs within the horizon, runs in flight or
    waiting, and paused tasks."""
    with _views():
        fmt = _check_format(fmt, output)
        zone = display_zone(utc)
        span = parse_horizon(horizon)
        title = f"Scheduled and In-Progress Tasks (next {horizon})"
        if not watch:
            _emit(scheduled(horizon=span, include_all=include_all), fmt, output, True, zone, title)
            return
        if fmt != "table" or output is not None:
            raise InvalidParameter("--watch shows a table on the terminal; drop --format/--output")

        def render() -> Table:
            return render_rich(scheduled(horizon=span, include_all=include_all), True, zone, title)

        _watch(render, interval, refreshes)


def _watch(render: Callable[[], Table], interval: float, refreshes: int) -> None:
    count = 0
    try:
        with Live(render(), console=out, auto_refresh=False) as live:
            while True:
                count += 1
                if refreshes and count >= refreshes:
                    return
                time.sleep(interval)
                live.update(render(), refresh=True)
    except KeyboardInterrupt:
        return


def run_command(
    task: str = typer.Argument(..., help="Deployment name, or flow/deployment."),
    params: list[str] = _PARAMS,
    watch: bool = typer.Option(False, "--watch", help="Follow state and progress to the end."),
    interval: float = typer.Option(1.0, "--interval", min=0.1, help="Seconds between polls."),
    timeout: float | None = typer.Option(None, "--timeout", help="Stop watching after N s."),
) -> None:
    """Request an immediate run of a task (a deployment)."""
    with _views():
        requested = request_run(task, params)
        typer.echo(f"requested run {requested.run_id} of {requested.task}")
        typer.echo(f"view it at {requested.url}")
        if not watch:
            return
        console = Console(highlight=False)
        last: RunStatus | None = None
        with watch_display(console, Console(stderr=True, highlight=False), requested.name) as shown:
            for status in follow_run(requested.run_id, interval=interval, timeout=timeout):
                shown.show(status)
                if status.reachable:
                    last = status
        if last is None or not last.final:
            raise _fail(f"run {requested.run_id} has not ended after {timeout} s", code=1)
        _summary(requested.run_id, requested.url)
    if not last.completed:
        raise _fail(f"run {last.name} {last.state.lower()}: {last.error}", code=1)
    if last.error:  # skipped: why
        typer.echo(f"run {last.name} {last.state.lower()}: {last.error}")
    else:
        typer.echo(f"run {last.name} completed")


def _summary(run_id: UUID, url: str) -> None:
    """The counts of the run's outcome and its page in the Prefect UI."""
    try:
        outcome = final_outcome(run_id)
    except CCTasksError:
        outcome = None  # the server went away at the very end: the URL still helps
    for line in outcome_lines(outcome) if outcome is not None else []:
        typer.echo(line)
    typer.echo(f"see the run at {url}")


def _paused(change: PauseChange) -> None:
    schedules = f"{change.schedules} schedule{'s' if change.schedules != 1 else ''}"
    if change.paused:
        state = "paused" if change.changed else "was already paused"
        typer.echo(
            f"{change.task} {state}: its {schedules} create no runs until "
            f"`cctasks resume {change.task}`"
        )
    else:
        state = "resumed" if change.changed else "was not paused"
        typer.echo(f"{change.task} {state}: its {schedules} create runs again")


def pause_command(
    task: str = typer.Argument(..., help="Deployment name, or flow/deployment."),
) -> None:
    """Pause a task's schedules (Prefect's deployment pause); `cctasks run` still works."""
    with _views():
        _paused(pause_task(task))


def resume_command(
    task: str = typer.Argument(..., help="Deployment name, or flow/deployment."),
) -> None:
    """Resume a paused task's schedules."""
    with _views():
        _paused(resume_task(task))
