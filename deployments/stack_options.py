"""What ``cctasks up`` was asked for, and the environment of every child of its stack.

:class:`StackOptions` holds the options of one stack (:mod:`deployments.stack`, and the
``--scale`` profile of :mod:`deployments.scale`); :func:`stack_environment` turns them into
the environment of the server, the deploy, the worker and the flow runs, with Prefect's
analytics off (``PREFECT_SERVER_ANALYTICS_ENABLED=false``, ``DO_NOT_TRACK=1``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import SecretStr

from contact_center.exceptions import InvalidParameter
from contact_center.settings import DEFAULT_HEARTBEAT_SECONDS, DEFAULT_HISTORY_DAYS, get_settings
from contact_center.storage.db import safe_url

if TYPE_CHECKING:
    from deployments.scale import ScaleOptions

__all__ = [
    "DEFAULT_HOST",
    "DEFAULT_PORT",
    "WORKER_NAME",
    "StackOptions",
    "stack_environment",
]

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 4200
WORKER_NAME = "cctasks-local"
WORKER_QUERY_SECONDS = 2
# Deployment concurrency leases on disk, under PREFECT_HOME, instead of in the server's
# memory: a restarted server still knows which run holds which slot.
LEASE_STORAGE = "prefect.server.concurrency.lease_storage.filesystem"

# Variables of the caller's environment that would point a child at another server,
# profile or state folder; the stack sets its own.
_REPLACED_VARIABLES = (
    "PREFECT_API_URL",
    "PREFECT_API_KEY",
    "PREFECT_API_AUTH_STRING",
    "PREFECT_SERVER_API_AUTH_STRING",
    "PREFECT_UI_API_URL",
    "PREFECT_UI_URL",
    "PREFECT_HOME",
    "PREFECT_PROFILE",
    "PREFECT_PROFILES_PATH",
    "PREFECT_SERVER_API_HOST",
    "PREFECT_SERVER_API_PORT",
    "PREFECT_SERVER_ANALYTICS_ENABLED",
    "DO_NOT_TRACK",
    "PREFECT_WORKER_QUERY_SECONDS",
    "CCTASKS_HOME",
    "CCTASKS_PROJECT_DIR",
)


def _default_project_dir() -> Path:
    # The checkout that holds prefect.yaml; the package is installed in editable mode.
    return Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class StackOptions:
    """What ``cctasks up`` was asked for.

    Attributes:
        home: the state folder (``CCTASKS_HOME``), absolute.
        project_dir: the checkout holding ``prefect.yaml`` and the flows.
        host: the address the server listens on.
        port: its port.
        database_url: the contact-centre database given with ``--database-url``.
        prefect_database_url: Prefect's own database (``--prefect-database-url``).
        demo: seed the demo contact centre.
        heartbeat_seconds: seconds between two heartbeats of a flow run
            (``CCTASKS_HEARTBEAT_SECONDS``).
        history_days: days a finished run stays in Prefect's history
            (``CCTASKS_HISTORY_DAYS``, default 90).
        scale: the ``--scale`` profile (:mod:`deployments.scale`), else one server.
        api_auth: ``user:password`` that turns on Prefect's API basic auth
            (``CCTASKS_API_AUTH`` or ``CCTASKS_API_AUTH_FILE``), else none.
        api_auth_file: the file it was read from, for the env file.
    """

    home: Path
    project_dir: Path
    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    database_url: str | None = None
    prefect_database_url: str | None = None
    demo: bool = True
    heartbeat_seconds: int = DEFAULT_HEARTBEAT_SECONDS
    history_days: int = DEFAULT_HISTORY_DAYS
    scale: ScaleOptions | None = None
    api_auth: SecretStr | None = None
    api_auth_file: Path | None = None

    @classmethod
    def create(
        cls,
        *,
        host: str = DEFAULT_HOST,
        port: int = DEFAULT_PORT,
        database_url: str | None = None,
        prefect_database_url: str | None = None,
        demo: bool = True,
        project_dir: Path | None = None,
        scale: ScaleOptions | None = None,
    ) -> StackOptions:
        """Options with the state folder and the heartbeat read from the settings.

        Raises:
            InvalidParameter: a port outside 1-65535, a Prefect database URL that is
                not async (``sqlite+aiosqlite`` or ``postgresql+asyncpg``), no
                ``prefect.yaml`` in the project folder, or a heartbeat under 30 s.
        """
        if not 0 < port < 65536:
            raise InvalidParameter(f"--port {port} is not a TCP port (1-65535)")
        if prefect_database_url and not prefect_database_url.startswith(
            ("sqlite+aiosqlite://", "postgresql+asyncpg://")
        ):
            raise InvalidParameter(
                f"--prefect-database-url {safe_url(prefect_database_url)!r}: Prefect needs "
                "an async driver, postgresql+asyncpg://... (or sqlite+aiosqlite://...)"
            )
        project = (project_dir or _default_project_dir()).resolve()
        if not (project / "prefect.yaml").is_file():
            raise InvalidParameter(
                f"no prefect.yaml in {project}; run cctasks up from the checkout"
            )
        settings = get_settings()
        return cls(
            host=host,
            port=port,
            home=settings.home,
            project_dir=project,
            database_url=database_url,
            prefect_database_url=prefect_database_url,
            demo=demo,
            heartbeat_seconds=settings.heartbeat_seconds,
            history_days=settings.history_days,
            scale=scale,
            api_auth=settings.api_auth,
            api_auth_file=_auth_file(settings.api_auth),
        )

    @property
    def client_host(self) -> str:
        """The address clients and browsers on this machine use to reach the server."""
        if self.host in ("0.0.0.0", "", "::"):
            return "127.0.0.1"
        return f"[{self.host}]" if ":" in self.host else self.host

    @property
    def ui_url(self) -> str:
        """The Prefect UI."""
        return f"http://{self.client_host}:{self.port}"

    @property
    def api_url(self) -> str:
        """The Prefect API."""
        return f"{self.ui_url}/api"

    @property
    def prefect_home(self) -> Path:
        """Prefect's state folder, inside ours."""
        return self.home / "prefect"

    @property
    def logs(self) -> Path:
        """Where the server's, worker's and deploy's output goes."""
        return self.home / "logs"

    @property
    def contact_center_url(self) -> str:
        """The contact-centre database: ``--database-url``, else the settings' URL."""
        return self.database_url or get_settings().database_url


def _auth_file(api_auth: SecretStr | None) -> Path | None:
    file = os.environ.get("CCTASKS_API_AUTH_FILE")
    if api_auth is None or os.environ.get("CCTASKS_API_AUTH") or not file:
        return None
    return Path(file).expanduser().absolute()


def stack_environment(options: StackOptions, base: dict[str, str] | None = None) -> dict[str, str]:
    """The environment of every child of the stack (server, deploy, worker and flow runs).

    Args:
        options: the stack's options.
        base: the environment to start from (default: this process's).
    """
    env = {
        key: value
        for key, value in (os.environ if base is None else base).items()
        if key not in _REPLACED_VARIABLES
    }
    env.update(
        {
            "PREFECT_HOME": str(options.prefect_home),
            "PREFECT_API_URL": options.api_url,
            # The UI takes its API address from here, not from `server start --port`.
            "PREFECT_UI_API_URL": options.api_url,
            "PREFECT_SERVER_API_HOST": options.host,
            "PREFECT_SERVER_API_PORT": str(options.port),
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
            "DO_NOT_TRACK": "1",
            "PREFECT_WORKER_QUERY_SECONDS": str(WORKER_QUERY_SECONDS),
            "CCTASKS_HOME": str(options.home),
            # The pull step of prefect.yaml resolves this at run time (see deploy_all).
            "CCTASKS_PROJECT_DIR": str(options.project_dir),
        }
    )
    # Kept when the caller chose one (prefect-redis's, say).
    env.setdefault("PREFECT_SERVER_CONCURRENCY_LEASE_STORAGE", LEASE_STORAGE)
    # Bounded history: Prefect's own vacuum service deletes old runs, logs and artifacts.
    env.setdefault("PREFECT_SERVER_SERVICES_DB_VACUUM_ENABLED", "events,flow_runs")
    env.setdefault(
        "PREFECT_SERVER_SERVICES_DB_VACUUM_RETENTION_PERIOD", str(options.history_days * 86400)
    )
    if options.api_auth is not None:
        # The servers ask for it, every client (CLI, workers, flow runs) sends it; only
        # through the environment, never on a command line that `ps` shows.
        secret = options.api_auth.get_secret_value()
        env["PREFECT_SERVER_API_AUTH_STRING"] = secret
        env["PREFECT_API_AUTH_STRING"] = secret
    if options.database_url:
        env["CCTASKS_DATABASE_URL"] = options.database_url
    if options.prefect_database_url:
        env["PREFECT_API_DATABASE_CONNECTION_URL"] = options.prefect_database_url
    return env
