"""Settings and constants of cctasks, in one place.

Nothing here reads the environment at import time: call :func:`get_settings`
when a value is needed, so that tests and the CLI can change the environment
first.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

# Names of things that users write into prefect.yaml or save as blocks.
DEFAULT_DATABASE_BLOCK = "contact-center"
WORK_POOL_NAME = "cctasks"
OUTCOME_ARTIFACT_KEY = "cctasks-outcome"
TASK_LOG_ARTIFACT_KEY = "task-log"

# The fetch step's retries: 3 tries in all, with backoff.
FETCH_RETRIES = 2
FETCH_RETRY_DELAYS = [2, 10]
NETWORK_RETRIES = 2
NETWORK_RETRY_DELAYS = [2, 10]

# Bulk paths work in chunks so that memory does not grow with the file.
CHUNK_ROWS = 200_000
# The list import's chunks are smaller: the parser and the COPY overlap better, and
# the peak memory is lower (docs/performance.md has the figures).
LIST_CHUNK_ROWS = 50_000
COPY_BLOCK_BYTES = 1 << 20
PROGRESS_MIN_INTERVAL_SECONDS = 0.5

DEFAULT_COUNTRY = "US"
DEFAULT_EXCLUSION_EXPIRY_DAYS = 90

# Reports: days start at midnight in the centre's zone; email goes through this block.
DEFAULT_REPORT_TIME_ZONE = "America/New_York"
DEFAULT_EMAIL_BLOCK = "cctasks-email"
REPORT_FORMATS = ("csv", "xlsx", "html", "pdf")
# An SMTP server that does not answer for this long fails the try (then it is retried).
EMAIL_TIMEOUT_SECONDS = 60


@dataclass(frozen=True)
class Settings:
    """Runtime settings, read from the environment when asked for.

    Attributes:
        home: the state directory (``CCTASKS_HOME``, default ``./.cctasks``).
        database_url: ``CCTASKS_DATABASE_URL``, else a SQLite file under ``home``.
        database_url_from_env: whether ``database_url`` was set explicitly.
    """

    home: Path
    database_url: str
    database_url_from_env: bool

    @property
    def default_sqlite_url(self) -> str:
        """The embedded default database: ``<home>/contact-center.db``."""
        return f"sqlite:///{self.home / 'contact-center.db'}"


def get_settings() -> Settings:
    """Read the settings from the environment now."""
    home = Path(os.environ.get("CCTASKS_HOME", ".cctasks")).expanduser().absolute()
    env_url = os.environ.get("CCTASKS_DATABASE_URL") or None
    url = env_url or f"sqlite:///{home / 'contact-center.db'}"
    return Settings(home=home, database_url=url, database_url_from_env=env_url is not None)
