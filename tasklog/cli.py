"""The ``cctasks`` command line (typer + rich).

Commands:
    cctasks up                 the embedded stack (``make up``)
    cctasks scheduled          the Scheduled and In-Progress Tasks view
    cctasks log                the Task Log
    cctasks run TASK           request an immediate run of a deployment
    cctasks campaign start|stop NAME
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

err = Console(stderr=True)


def fail(message: str, code: int = 2) -> typer.Exit:
    """Print a one-line error and return the Exit to raise."""
    err.print(f"[bold red]error:[/] {message}", highlight=False)
    return typer.Exit(code)


@db_app.command("upgrade")
def db_upgrade(
    database_url: str | None = typer.Option(
        None, "--database-url", help="SQLAlchemy URL; default: the saved block, env or SQLite."
    ),
) -> None:
    """Apply the contact-centre database migrations (idempotent)."""
    from contact_center.db import create_db_engine, safe_url, upgrade
    from contact_center.exceptions import CCTasksError
    from contact_center.settings import get_settings

    url = database_url or get_settings().database_url
    try:
        upgrade(create_db_engine(url))
    except CCTasksError as exc:
        raise fail(str(exc)) from None
    typer.echo(f"database {safe_url(url)} is at the newest schema")


# --- views: log, scheduled, run (tasklog) -------------------------------------------

# --- the embedded stack: up (deployments) -------------------------------------------

# --- manual campaign control: campaign start|stop -----------------------------------


if __name__ == "__main__":  # pragma: no cover
    app()
