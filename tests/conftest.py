"""Shared fixtures: a real Prefect server, a real OpenSSH sshd, SQLite and PostgreSQL.

- ``prefect_server`` (session, autouse): one ``prefect_test_harness``; ``CCTASKS_HOME``
  is a folder of the session's temporary root, and the local folders
  (``CCTASKS_LOCAL_FOLDERS``) are that whole root.
- ``sshd`` (session): an OpenSSH server on a free loopback port, serving SFTP from a
  temporary home folder; skipped with a reason where ``/usr/sbin/sshd`` is missing
  (CI installs it, so there it runs).
- ``sftp_block``: an ``SftpServer`` block saved for that sshd (key login, host key known).
- ``db_url`` (parametrised ``sqlite`` / ``postgresql``): a migrated, empty database, also
  exported as ``CCTASKS_DATABASE_URL`` so that flows use it. PostgreSQL gets one fresh
  database per test session, emptied before each test. Under CI it must not skip.
"""

from __future__ import annotations

import os
import shutil
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("DO_NOT_TRACK", "1")
os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")

import sqlalchemy as sa  # noqa: E402
from support.sshd_server import Sshd, running_sshd, sshd_available  # noqa: E402, F401

PG_ADMIN_URL = os.environ.get(
    "CCTASKS_TEST_PG_ADMIN_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)
SSHD = shutil.which("sshd") or "/usr/sbin/sshd"


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# --- Prefect -------------------------------------------------------------------------


@pytest.fixture(scope="session", autouse=True)
def prefect_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """One real Prefect server (temporary SQLite) for the whole session."""
    from prefect.testing.utilities import prefect_test_harness

    os.environ["CCTASKS_HOME"] = str(tmp_path_factory.mktemp("cctasks-home"))
    # One cache for the session, so that the stacks' fresh homes don't each build the
    # ZIP -> zone table again (seconds of CPU each).
    os.environ["CCTASKS_CACHE_DIR"] = str(tmp_path_factory.mktemp("cctasks-cache"))
    # Local locations must resolve inside the local folders: the tests' files live in
    # their tmp_path folders, all under the session's temporary root.
    os.environ["CCTASKS_LOCAL_FOLDERS"] = str(tmp_path_factory.getbasetemp())
    with prefect_test_harness(server_startup_timeout=120):
        yield


# --- SFTP ------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def sshd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sshd]:
    """A real OpenSSH sshd on loopback, its SFTP start folder a temporary ``home``."""
    if not sshd_available():
        pytest.skip("OpenSSH server not installed (apt-get install -y openssh-server)")
    # The start-up lives in sshd_server.py so that the benchmarks start the same server.
    with running_sshd(tmp_path_factory.mktemp("sshd")) as server:
        yield server


@pytest.fixture
def sftp_block(sshd: Sshd) -> str:
    """Save an ``SftpServer`` block for the test sshd; return its name."""
    from blocks.sftp import SftpServer

    name = "test-sftp"
    SftpServer(
        host=sshd.host,
        port=sshd.port,
        username=sshd.username,
        private_key=sshd.private_key,
        known_host_keys=sshd.known_hosts,
    ).save(name, overwrite=True)
    return name


# --- databases ---------------------------------------------------------------------------


def _pg_available() -> bool:
    try:
        engine = sa.create_engine(PG_ADMIN_URL)
        with engine.connect():
            pass
        engine.dispose()
        return True
    except sa.exc.OperationalError:
        return False


@pytest.fixture(scope="session")
def pg_session_url() -> Iterator[str]:
    """A fresh, migrated PostgreSQL database for this test session."""
    if not _pg_available():
        if os.environ.get("CI"):
            pytest.fail(f"PostgreSQL is not reachable at {PG_ADMIN_URL} under CI")
        pytest.skip(f"PostgreSQL is not reachable at {PG_ADMIN_URL}")
    from contact_center.storage.db import create_db_engine, ensure_schema

    name = f"cctasks_test_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    url = sa.make_url(PG_ADMIN_URL).set(database=name).render_as_string(hide_password=False)
    ensure_schema(create_db_engine(url))
    try:
        yield url
    finally:
        create_db_engine(url).dispose()
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def _empty_tables(url: str) -> None:
    from contact_center.storage.db import create_db_engine
    from contact_center.storage.models import Base

    engine = create_db_engine(url)
    names = ", ".join(f'"{t.name}"' for t in Base.metadata.sorted_tables)
    with engine.begin() as conn:
        conn.execute(sa.text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> str:
    """An empty, migrated contact-centre database; flows in the test use it."""
    from contact_center.storage.db import create_db_engine, ensure_schema

    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'contact-center.db'}"
        ensure_schema(create_db_engine(url))
    else:
        url = request.getfixturevalue("pg_session_url")
        _empty_tables(url)
    monkeypatch.setenv("CCTASKS_DATABASE_URL", url)
    return url


@pytest.fixture
def engine(db_url: str) -> sa.Engine:
    """The engine of ``db_url``."""
    from contact_center.storage.db import create_db_engine

    return create_db_engine(db_url)
