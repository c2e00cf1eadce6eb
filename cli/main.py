"""The ``cctasks`` command line (typer + rich).

Commands:
    cctasks up                 the embedded stack (``make up``)
    cctasks scheduled          the Scheduled and In-Progress Tasks view
    cctasks log                the Task Log
    cctasks run TASK           request an immediate run of a deployment
    cctasks preview TASK       dry-run an import and show what it would do
    cctasks pause|resume TASK  hold a task's schedules, or let them run again
    cctasks campaign start|stop NAME
    cctasks campaign hours NAME  show or set a campaign's calling hours
    cctasks db upgrade         migrate the contact-centre database
"""

from __future__ import annotations

import os

import typer
from rich.console import Console

os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("DO_NOT_TRACK", "1")

app = typer.Typer(
    name="cctasks",
    help="Scheduled contact-centre tasks on Prefect: views, ad-hoc runs and the embedded stack.",
    no_args_is_help=True,
    add_completion=False,
)
db_app = typer.Typer(help="The contact-centre database.", no_args_is_help=True)
app.add_typer(db_app, name="db")

err = Console(stderr=True, soft_wrap=True)  # an error stays on one line


def fail(message: str, code: int = 2) -> typer.Exit:
    """Print a one-line error and return the Exit to raise.

    The message is plain text: it may quote what the user typed or a name from the
    server, so rich markup in it (``[/]``) is shown as written, never interpreted, and
    control characters are dropped.
    """
    from rich.text import Text

    from runlog.text import clean

    err.print(Text.assemble(("error:", "bold red"), " ", clean(message)), highlight=False)
    return typer.Exit(code)


@app.callback()
def main(ctx: typer.Context) -> None:
    """Send the API's basic-auth ``user:password`` (``CCTASKS_API_AUTH`` or
    ``CCTASKS_API_AUTH_FILE``) with every call of this command to Prefect."""
    from prefect.settings import PREFECT_API_AUTH_STRING, temporary_settings

    from contact_center.exceptions import CCTasksError
    from contact_center.settings import get_settings

    try:
        auth = get_settings().api_auth
    except CCTasksError as exc:
        raise fail(str(exc)) from None
    if auth is not None:
        # Prefect read its settings when it was imported: override them for this command.
        ctx.with_resource(
            temporary_settings(updates={PREFECT_API_AUTH_STRING: auth.get_secret_value()})
        )


@db_app.command("upgrade")
def db_upgrade(
    database_url: str | None = typer.Option(
        None, "--database-url", help="SQLAlchemy URL; default: the saved block, env or SQLite."
    ),
) -> None:
    """Apply the contact-centre database migrations (idempotent)."""
    from contact_center.exceptions import CCTasksError
    from contact_center.settings import get_settings
    from contact_center.storage.db import create_db_engine, safe_url, upgrade

    url = database_url or get_settings().database_url
    try:
        upgrade(create_db_engine(url))
    except CCTasksError as exc:
        raise fail(str(exc)) from None
    typer.echo(f"database {safe_url(url)} is at the newest schema")


# --- views: log, scheduled, run (tasklog) -------------------------------------------

from cli.commands import (  # noqa: E402
    log_command,
    pause_command,
    resume_command,
    run_command,
    scheduled_command,
)

app.command("log")(log_command)
app.command("scheduled")(scheduled_command)
app.command("run")(run_command)
app.command("pause")(pause_command)
app.command("resume")(resume_command)

from cli.preview import preview_command  # noqa: E402

app.command("preview")(preview_command)

# --- the embedded stack: up (deployments) -------------------------------------------


@app.command("up")
def up(
    port: int = typer.Option(4200, "--port", help="Port of the Prefect server and UI."),
    host: str = typer.Option("127.0.0.1", "--host", help="Address the server listens on."),
    database_url: str | None = typer.Option(
        None,
        "--database-url",
        help="Contact-centre database, e.g. postgresql+psycopg://user:pw@host/db "
        "(default: SQLite under .cctasks/, or the saved block).",
    ),
    prefect_database_url: str | None = typer.Option(
        None,
        "--prefect-database-url",
        help="Prefect's own database, e.g. postgresql+asyncpg://user:pw@host/prefect "
        "(default: SQLite under .cctasks/prefect/).",
    ),
    demo: bool = typer.Option(True, "--demo/--no-demo", help="Seed the demo contact centre."),
    scale: bool = typer.Option(
        False, "--scale", help="Two API servers behind HAProxy, separate services, N workers, "
        "on PostgreSQL and Redis (docs/scale.md)."
    ),
    workers: int = typer.Option(2, "--workers", help="With --scale: process workers."),
    postgres_url: str = typer.Option(
        "postgresql://postgres@127.0.0.1:5432", "--postgres-url",
        help="With --scale: the PostgreSQL server of the databases cctasks_prefect and "
        "cctasks (created when missing), unless --(prefect-)database-url says otherwise.",
    ),
    redis_url: str = typer.Option(
        "redis://127.0.0.1:6379/0", "--redis-url", help="With --scale: the Redis to use."
    ),
) -> None:
    """Run the whole contact centre here: Prefect server, worker, deployments, demo data.

    Ctrl-C stops everything; a second run reuses the state under .cctasks/.
    """
    from contact_center.exceptions import CCTasksError
    from deployments.stack import run_stack
    from deployments.stack_options import StackOptions

    try:
        scale_options = None
        if scale:
            from deployments.scale import ScaleOptions, database_urls

            scale_options = ScaleOptions(workers=workers, redis_url=redis_url)
            prefect_default, centre_default = database_urls(postgres_url)
            prefect_database_url = prefect_database_url or prefect_default
            database_url = database_url or centre_default
        options = StackOptions.create(
            host=host,
            port=port,
            database_url=database_url,
            prefect_database_url=prefect_database_url,
            demo=demo,
            scale=scale_options,
        )
    except CCTasksError as exc:
        raise fail(str(exc)) from None
    raise typer.Exit(run_stack(options))


# --- manual campaign control: campaign start|stop|hours -----------------------------

campaign_app = typer.Typer(
    help="Start or stop an outbound campaign by hand (recorded with source 'manual'); "
    "show or set its calling hours.",
    no_args_is_help=True,
)
app.add_typer(campaign_app, name="campaign")


def _campaign_step(
    name: str, step: str, allow_empty: bool, notify_url: str | None, notify_token_block: str | None
) -> None:
    """Run the campaign-trigger flow in this process, so the task log shows it too."""
    from contact_center.exceptions import CCTasksError
    from flows.campaign_trigger import campaign_trigger

    try:
        outcome = campaign_trigger(
            campaign=name,
            step=step,
            allow_empty=allow_empty,
            notify_url=notify_url,
            notify_token_block=notify_token_block,
            source="manual",
            return_state=True,
        ).result()
    except CCTasksError as exc:
        raise fail(str(exc), code=1) from None
    extra = outcome.extra
    typer.echo(
        f"campaign {name}: {outcome.message} (was {extra['previous_state']}, now {extra['state']})"
    )


_ALLOW_EMPTY = typer.Option(False, "--allow-empty", help="Start even with nothing to dial.")
_NOTIFY_URL = typer.Option(None, "--notify-url", help="Tell the dialler at this webhook.")
_NOTIFY_TOKEN = typer.Option(
    None, "--notify-token-block", help="Secret block with the webhook's bearer token."
)


@campaign_app.command("start")
def campaign_start(
    name: str = typer.Argument(..., help="The campaign's name."),
    allow_empty: bool = _ALLOW_EMPTY,
    notify_url: str | None = _NOTIFY_URL,
    notify_token_block: str | None = _NOTIFY_TOKEN,
) -> None:
    """Start a campaign now; its schedules stay as they are."""
    _campaign_step(name, "start", allow_empty, notify_url, notify_token_block)


@campaign_app.command("stop")
def campaign_stop(
    name: str = typer.Argument(..., help="The campaign's name."),
    notify_url: str | None = _NOTIFY_URL,
    notify_token_block: str | None = _NOTIFY_TOKEN,
) -> None:
    """Stop a campaign now; its schedules stay as they are."""
    _campaign_step(name, "stop", False, notify_url, notify_token_block)


from cli.hours import hours_command  # noqa: E402

campaign_app.command("hours")(hours_command)


if __name__ == "__main__":  # pragma: no cover
    app()
