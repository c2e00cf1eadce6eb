"""Bootstrap a Prefect server for cctasks: block types, default blocks, work pool, limits, deploy.

Every step is idempotent, so ``cctasks up`` runs them on each start:

- our block types are registered (SFTP server, contact-centre database, prefect-email's
  email server);
- the default blocks are created when missing: the contact-centre database
  ``contact-center`` (the only one the demo uses), and an email server and an SFTP
  server left *inactive*, i.e. holding example values that no deployment refers to,
  ready to be edited in the UI. A block that exists is never overwritten, except the
  database block when ``--database-url`` names a database explicitly;
- the process work pool ``cctasks`` (``WORK_POOL_NAME``) is created with the process
  worker's own job template (so the server does not look one up on the internet),
  whose environment turns on flow-run heartbeats for every run of the pool, whichever
  worker starts it (an existing pool gets the setting added);
- the automations of :mod:`deployments.automations` mark runs that stopped sending
  heartbeats Crashed, and finish the cancels of runs whose process is gone;
- the shared concurrency limits of earlier versions (:data:`RETIRED_LIMITS`) are deleted;
- ``prefect deploy --all`` applies ``prefect.yaml``.

Functions that talk to the server use Prefect's current settings: call them inside
``prefect.settings.temporary_settings(updates={PREFECT_API_URL: ...})`` (see
:mod:`deployments.stack`).
"""

from __future__ import annotations

import copy
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from prefect import get_client
from prefect.blocks.core import Block
from prefect.client.schemas.actions import WorkPoolCreate, WorkPoolUpdate
from prefect.exceptions import ObjectNotFound as PrefectObjectNotFound
from prefect.workers.process import ProcessWorker
from prefect_email import EmailServerCredentials
from pydantic import SecretStr
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

from blocks.database import ContactCenterDatabase
from blocks.sftp import SftpServer
from contact_center.exceptions import CCTasksError, InvalidParameter
from contact_center.settings import (
    DEFAULT_DATABASE_BLOCK,
    DEFAULT_EMAIL_BLOCK,
    DEFAULT_HEARTBEAT_SECONDS,
    WORK_POOL_NAME,
)

__all__ = [
    "BLOCK_TYPES",
    "RETIRED_LIMITS",
    "EXAMPLE_SFTP_BLOCK",
    "HEARTBEAT_VARIABLE",
    "WORK_POOL_CONCURRENCY",
    "BootstrapError",
    "database_block",
    "deploy_all",
    "ensure_default_blocks",
    "ensure_work_pool",
    "pool_job_template",
    "register_block_types",
    "retire_concurrency_limits",
]

#: The block types that cctasks deployments refer to.
BLOCK_TYPES: tuple[type[Block], ...] = (SftpServer, ContactCenterDatabase, EmailServerCredentials)

#: The example SFTP block: a partner's drop, to be pointed at a real server.
EXAMPLE_SFTP_BLOCK = "partner-sftp"

#: Flow runs the local worker takes at once: a laptop has few cores, and a run that
#: waits here is Pending, not lost.
WORK_POOL_CONCURRENCY = 4

#: Shared global concurrency limits that earlier versions created and took around every
#: load and SFTP session. Each acquisition cost a run about 2 s on the default SQLite
#: server (see docs/performance.md) while the work pool's limit already bounds the runs
#: at once, so they are gone, and ``cctasks up`` deletes them where they are left.
RETIRED_LIMITS = ("cctasks-database-loads", "cctasks-sftp-sessions")

DEPLOY_TIMEOUT_SECONDS = 300

#: The Prefect setting that makes a flow run send heartbeats (seconds between two).
HEARTBEAT_VARIABLE = "PREFECT_FLOWS_HEARTBEAT_FREQUENCY"


class BootstrapError(CCTasksError):
    """A bootstrap step failed (deploy, work pool, blocks); the message says which."""


@dataclass(frozen=True)
class BlocksReport:
    """What :func:`ensure_default_blocks` did, block name -> ``created``/``kept``/``updated``."""

    actions: dict[str, str]


def register_block_types() -> None:
    """Register the block types and schemas of :data:`BLOCK_TYPES` (idempotent)."""
    for block_type in BLOCK_TYPES:
        block_type.register_type_and_schema()


def database_block(url: str) -> ContactCenterDatabase:
    """A database block for ``url``, with any password moved into the secret field.

    Raises:
        InvalidParameter: ``url`` is not a SQLAlchemy URL.
    """
    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError) as exc:
        raise InvalidParameter(f"--database-url is not a database URL: {exc}") from None
    password = parsed.password
    # URL.set(password=None) keeps the password; build the URL again without it.
    bare = URL.create(
        parsed.drivername,
        username=parsed.username,
        host=parsed.host,
        port=parsed.port,
        database=parsed.database,
        query=parsed.query,
    ).render_as_string(hide_password=False)
    return ContactCenterDatabase(
        url=bare, password=SecretStr(str(password)) if password is not None else None
    )


def _block_exists(block_type: type[Block], name: str) -> bool:
    try:
        block_type.load(name)
    except (ValueError, PrefectObjectNotFound):
        return False
    return True


def ensure_default_blocks(database_url: str, *, database_explicit: bool) -> BlocksReport:
    """Create the default blocks that are missing.

    Args:
        database_url: the contact-centre database for the ``contact-center`` block.
        database_explicit: the user named the database (``--database-url``): update
            the block to it even when it exists.
    """
    actions: dict[str, str] = {}
    exists = _block_exists(ContactCenterDatabase, DEFAULT_DATABASE_BLOCK)
    if not exists or database_explicit:
        database_block(database_url).save(DEFAULT_DATABASE_BLOCK, overwrite=True)
        actions[DEFAULT_DATABASE_BLOCK] = "updated" if exists else "created"
    else:
        actions[DEFAULT_DATABASE_BLOCK] = "kept"
    examples: list[tuple[str, Block]] = [
        (
            DEFAULT_EMAIL_BLOCK,
            # Inactive: no deployment sends email until a report gets `email_to`.
            EmailServerCredentials(
                smtp_server="smtp.example.com",
                smtp_type="STARTTLS",
                smtp_port=587,
                username="cctasks@example.com",
                password=SecretStr(""),
            ),
        ),
        (
            EXAMPLE_SFTP_BLOCK,
            # Inactive: no deployment reads sftp://partner-sftp/... until you edit it.
            SftpServer(host="sftp.example.com", port=22, username="cctasks"),
        ),
    ]
    for name, block in examples:
        if _block_exists(type(block), name):
            actions[name] = "kept"
        else:
            block.save(name)
            actions[name] = "created"
    return BlocksReport(actions)


def pool_job_template(
    heartbeat_seconds: int, template: dict[str, Any] | None = None
) -> dict[str, Any]:
    """A process pool's job template whose runs send a heartbeat every ``heartbeat_seconds``.

    Args:
        heartbeat_seconds: ``PREFECT_FLOWS_HEARTBEAT_FREQUENCY`` for the runs.
        template: the template to start from (default: the process worker's own); its
            other variables and environment entries are kept.
    """
    result = copy.deepcopy(template or ProcessWorker.get_default_base_job_template())
    env = result["variables"]["properties"]["env"]
    env["default"] = {**(env.get("default") or {}), HEARTBEAT_VARIABLE: str(heartbeat_seconds)}
    return result


def ensure_work_pool(
    name: str = WORK_POOL_NAME, heartbeat_seconds: int = DEFAULT_HEARTBEAT_SECONDS
) -> str:
    """Create the process work pool ``name``, or give an existing one the heartbeat setting.

    Returns:
        ``created``, ``updated`` (the heartbeat setting changed) or ``kept``.
    """
    with get_client(sync_client=True) as client:
        try:
            pool = client.read_work_pool(name)
        except PrefectObjectNotFound:
            client.create_work_pool(
                WorkPoolCreate(
                    name=name,
                    type="process",
                    description="cctasks: flow runs as local processes (created by `cctasks up`).",
                    base_job_template=pool_job_template(heartbeat_seconds),
                    concurrency_limit=WORK_POOL_CONCURRENCY,
                )
            )
            return "created"
        template = pool_job_template(heartbeat_seconds, pool.base_job_template or None)
        if template == pool.base_job_template:
            return "kept"
        client.update_work_pool(name, WorkPoolUpdate(base_job_template=template))
        return "updated"


def retire_concurrency_limits() -> list[str]:
    """Delete the :data:`RETIRED_LIMITS` that an earlier version left; returns those deleted."""
    deleted = []
    with get_client(sync_client=True) as client:
        for name in RETIRED_LIMITS:
            try:
                client.delete_global_concurrency_limit_by_name(name)
            except PrefectObjectNotFound:
                continue
            deleted.append(name)
    return deleted


def deploy_all(project_dir: Path, env: dict[str, str], log_path: Path) -> None:
    """Apply every deployment of ``project_dir/prefect.yaml`` (``prefect deploy --all``).

    Re-deploying updates deployments in place, so this is idempotent. The work pool
    must exist first. ``env`` must not carry ``CCTASKS_PROJECT_DIR``: Prefect fills
    ``{{ $VAR }}`` placeholders of the pull step at deploy time when the variable is
    set, and the pull step must keep its placeholder so that each worker resolves it
    to its own checkout.

    Raises:
        BootstrapError: the deploy failed; the message holds the end of its output.
    """
    deploy_env = {k: v for k, v in env.items() if k != "CCTASKS_PROJECT_DIR"}
    deploy_env["PREFECT_CLI_PROMPT"] = "false"
    command = [sys.executable, "-m", "prefect", "--no-prompt", "deploy", "--all"]
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("ab") as log:
        try:
            result = subprocess.run(
                command,
                cwd=project_dir,
                env=deploy_env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                timeout=DEPLOY_TIMEOUT_SECONDS,
                check=False,
            )
        except subprocess.TimeoutExpired:
            raise BootstrapError(
                f"`prefect deploy --all` did not finish in {DEPLOY_TIMEOUT_SECONDS} s; "
                f"see {log_path}"
            ) from None
    if result.returncode != 0:
        lines = [line for line in log_path.read_text(errors="replace").splitlines() if line]
        tail = "\n".join(lines[-3:])
        raise BootstrapError(
            f"`prefect deploy --all` failed (exit {result.returncode}) in {project_dir}:\n"
            f"{tail}\n(full output: {log_path})"
        )
