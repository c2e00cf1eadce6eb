"""Settings and constants of cctasks, in one place.

Nothing here reads the environment at import time: call :func:`get_settings`
when a value is needed, so that tests and the CLI can change the environment
first.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from pydantic import SecretStr

# Names of things that users write into prefect.yaml or save as blocks.
DEFAULT_DATABASE_BLOCK = "contact-center"
WORK_POOL_NAME = "cctasks"
OUTCOME_ARTIFACT_KEY = "cctasks-outcome"
#: The key of the artifact a dry run records its preview under.
PREVIEW_ARTIFACT_KEY = "cctasks-preview"
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

# Every CCTasksError message is cut to this many characters (ending with "…"), so that a
# file's oversized header cannot become an oversized stored error.
MAX_ERROR_MESSAGE_CHARS = 500

DEFAULT_COUNTRY = "US"
DEFAULT_EXCLUSION_EXPIRY_DAYS = 90

# The sweep of leftover work folders (``<home>/work/<flow-run-id>``) at each flow's start
# asks the Prefect API for those runs' states; a folder of a run the API does not know
# (deleted from the history) is removed once it has not changed for this long.
WORK_SWEEP_UNKNOWN_RUN_SECONDS = 24 * 3600

# Reports: days start at midnight in the centre's zone; email goes through this block.
DEFAULT_REPORT_TIME_ZONE = "America/New_York"
DEFAULT_EMAIL_BLOCK = "cctasks-email"
REPORT_FORMATS = ("csv", "xlsx", "html", "pdf")
# An SMTP server that does not answer for this long fails the try (then it is retried).
EMAIL_TIMEOUT_SECONDS = 60

# Flow-run heartbeats: every run of the cctasks work pool tells the server it is alive
# this often (``CCTASKS_HEARTBEAT_SECONDS``; Prefect sends them at most every 30 s). The
# server marks a run Crashed once it has been silent for HEARTBEAT_WINDOW_BEATS of them.
DEFAULT_HEARTBEAT_SECONDS = 60
MIN_HEARTBEAT_SECONDS = 30
HEARTBEAT_WINDOW_BEATS = 3

# One run per object at a time, across deployments, workers and `cctasks campaign`: a
# run holds the Prefect global concurrency limit "cctasks-<kind>-<object>" (1 slot)
# while it changes the object. The slot is a lease the run renews every 3/4 of this;
# when the run's process dies, the server frees the slot once the lease has expired.
OBJECT_SLOT_PREFIX = "cctasks"
OBJECT_LEASE_SECONDS = 60
# A run that finds its object's slot taken publishes a progress artifact whose
# description starts with this ("waits for list Spring Leads"); the Scheduled view shows
# it as waiting until the run's newest progress artifact says otherwise.
OBJECT_WAIT_PREFIX = "waits for "
# Run history: Prefect's database-vacuum service deletes flow runs (with their logs,
# task runs and artifacts) that ended longer ago than this (``CCTASKS_HISTORY_DAYS``).
DEFAULT_HISTORY_DAYS = 90


@dataclass(frozen=True)
class ReadLimits:
    """Limits on reading one list or exclusion file, checked while it streams.

    Each is an environment variable (see :data:`READ_LIMIT_VARIABLES`); a file that
    crosses one fails with an error naming the file, the limit and the variable.

    Attributes:
        max_xlsx_bytes: the decompressed size of a workbook: its parts' sizes, as the
            ZIP directory states them and as they decompress (2 GiB).
        max_xlsx_strings: the texts in a workbook's shared-strings table, which
            openpyxl holds in memory at about 150 bytes each (4 Mi: four columns of
            distinct texts in the largest sheet Excel makes, about 650 MB).
        max_rows: the data rows of a file (10 million).
        max_field_chars: the characters of one value, a field or a cell (1 Mi). Text
            files are read in blocks of this many bytes (at least 1 MiB), and a row
            must fit in one.
        max_columns: the columns of a header (16,384: the widest sheet Excel makes).
        max_read_seconds: how long one read of a file may take, from opening it to
            its last row; a consumer that is slow to take the rows counts too (30
            minutes).
    """

    max_xlsx_bytes: int = 2 << 30
    max_xlsx_strings: int = 4 << 20
    max_rows: int = 10_000_000
    max_field_chars: int = 1 << 20
    max_columns: int = 16_384
    max_read_seconds: int = 30 * 60


#: The environment variable that sets each read limit.
READ_LIMIT_VARIABLES = {
    "max_xlsx_bytes": "CCTASKS_MAX_XLSX_BYTES",
    "max_xlsx_strings": "CCTASKS_MAX_XLSX_STRINGS",
    "max_rows": "CCTASKS_MAX_ROWS",
    "max_field_chars": "CCTASKS_MAX_FIELD_CHARS",
    "max_columns": "CCTASKS_MAX_COLUMNS",
    "max_read_seconds": "CCTASKS_MAX_READ_SECONDS",
}


def get_read_limits() -> ReadLimits:
    """Read the limits on reading a file from the environment now.

    Raises:
        InvalidParameter: a variable is set to something other than a positive integer.
    """
    from contact_center.exceptions import InvalidParameter  # it imports this module

    values = {}
    for field, variable in READ_LIMIT_VARIABLES.items():
        text = os.environ.get(variable, "").strip().replace("_", "")
        if not text:
            continue
        if not (text.isascii() and text.isdigit()) or int(text) < 1:
            raise InvalidParameter(
                f"{variable} must be a positive whole number, not {os.environ[variable]!r}"
            )
        values[field] = int(text)
    return ReadLimits(**values)


@dataclass(frozen=True)
class Settings:
    """Runtime settings, read from the environment when asked for.

    Attributes:
        home: the state directory (``CCTASKS_HOME``, default ``./.cctasks``).
        database_url: ``CCTASKS_DATABASE_URL``, else a SQLite file under ``home``.
        database_url_from_env: whether ``database_url`` was set explicitly.
        local_folders: the local folders that local sources, archive folders and
            destinations must resolve inside (``CCTASKS_LOCAL_FOLDERS``, folders
            separated by ``os.pathsep``; default ``<home>/drop`` and ``<home>/outbox``),
            absolute.
        time_zone: the contact centre's IANA time zone for the views
            (``CCTASKS_TIME_ZONE``, e.g. ``America/New_York``); ``None``: the
            machine's local zone.
        read_limits: the limits on reading a file (:class:`ReadLimits`).
        heartbeat_seconds: ``CCTASKS_HEARTBEAT_SECONDS``: seconds between two heartbeats
            of a flow run started by the cctasks work pool.
        history_days: ``CCTASKS_HISTORY_DAYS``: days a finished run stays in the history.
        api_auth: ``user:password`` for Prefect's API basic auth, from ``CCTASKS_API_AUTH``
            or the file named by ``CCTASKS_API_AUTH_FILE``; ``None``: no auth.
        cache_dir: where tables derived from the libraries are kept between runs
            (``CCTASKS_CACHE_DIR``, default ``<home>/cache``), absolute.
    """

    home: Path
    database_url: str
    database_url_from_env: bool
    local_folders: tuple[Path, ...] = ()
    time_zone: str | None = None
    read_limits: ReadLimits = ReadLimits()
    heartbeat_seconds: int = DEFAULT_HEARTBEAT_SECONDS
    history_days: int = DEFAULT_HISTORY_DAYS
    api_auth: SecretStr | None = None
    cache_dir: Path = Path(".cctasks/cache").absolute()

    @property
    def default_sqlite_url(self) -> str:
        """The embedded default database: ``<home>/contact-center.db``."""
        return f"sqlite:///{self.home / 'contact-center.db'}"

    @property
    def work_root(self) -> Path:
        """Where each run keeps its work files: ``<home>/work/<flow-run-id>``."""
        return self.home / "work"


def _heartbeat_seconds(text: str | None) -> int:
    from contact_center.exceptions import InvalidParameter  # it imports this module

    if not text:
        return DEFAULT_HEARTBEAT_SECONDS
    try:
        seconds = int(text)
    except ValueError:
        raise InvalidParameter(
            f"CCTASKS_HEARTBEAT_SECONDS={text!r} is not a whole number of seconds"
        ) from None
    if seconds < MIN_HEARTBEAT_SECONDS:
        raise InvalidParameter(
            f"CCTASKS_HEARTBEAT_SECONDS={seconds}: Prefect sends flow-run heartbeats at most "
            f"every {MIN_HEARTBEAT_SECONDS} s; give {MIN_HEARTBEAT_SECONDS} or more"
        )
    return seconds


def _history_days(text: str | None) -> int:
    from contact_center.exceptions import InvalidParameter  # it imports this module

    if not text:
        return DEFAULT_HISTORY_DAYS
    if not text.isdigit() or int(text) < 1:
        raise InvalidParameter(f"CCTASKS_HISTORY_DAYS={text!r} is not a whole number of days >= 1")
    return int(text)


def _api_auth(text: str | None, file: str | None) -> SecretStr | None:
    """The API's ``user:password``; an error names the variable, never the value."""
    from contact_center.exceptions import InvalidParameter  # it imports this module

    source = "CCTASKS_API_AUTH"
    if not text and file:
        source = f"the file CCTASKS_API_AUTH_FILE={file}"
        try:
            text = Path(file).expanduser().read_text().strip()
        except OSError as exc:
            raise InvalidParameter(f"{source} cannot be read: {exc.strerror}") from None
    if not text:
        return None
    user, colon, password = text.partition(":")
    if not (user and colon and password) or any(c.isspace() for c in text):
        raise InvalidParameter(
            f"{source} must hold user:password (no spaces), as Prefect's basic auth expects"
        )
    return SecretStr(text)


def cache_dir(home: Path, environ: Mapping[str, str]) -> Path:
    """``CCTASKS_CACHE_DIR`` in ``environ``, else ``<home>/cache``; absolute."""
    chosen = environ.get("CCTASKS_CACHE_DIR", "").strip()
    return Path(chosen).expanduser().absolute() if chosen else home / "cache"


def get_settings() -> Settings:
    """Read the settings from the environment now.

    Raises:
        InvalidParameter: ``CCTASKS_HEARTBEAT_SECONDS`` is not a number of seconds that
            Prefect accepts (30 or more), ``CCTASKS_HISTORY_DAYS`` not a number of days,
            or ``CCTASKS_API_AUTH`` (or its file) not ``user:password``.
    """
    home = Path(os.environ.get("CCTASKS_HOME", ".cctasks")).expanduser().absolute()
    env_url = os.environ.get("CCTASKS_DATABASE_URL") or None
    url = env_url or f"sqlite:///{home / 'contact-center.db'}"
    listed = [f.strip() for f in os.environ.get("CCTASKS_LOCAL_FOLDERS", "").split(os.pathsep)]
    # abspath, not Path.absolute: it also folds "..", so a folder is compared as it is.
    folders = tuple(Path(os.path.abspath(Path(f).expanduser())) for f in listed if f)
    return Settings(
        home=home,
        database_url=url,
        database_url_from_env=env_url is not None,
        local_folders=folders or (home / "drop", home / "outbox"),
        time_zone=os.environ.get("CCTASKS_TIME_ZONE", "").strip() or None,
        read_limits=get_read_limits(),
        heartbeat_seconds=_heartbeat_seconds(os.environ.get("CCTASKS_HEARTBEAT_SECONDS")),
        history_days=_history_days(os.environ.get("CCTASKS_HISTORY_DAYS")),
        api_auth=_api_auth(
            os.environ.get("CCTASKS_API_AUTH"), os.environ.get("CCTASKS_API_AUTH_FILE")
        ),
        cache_dir=cache_dir(home, os.environ),
    )
