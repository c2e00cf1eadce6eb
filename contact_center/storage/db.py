"""Engines and migrations of the contact-centre database.

SQLite is the embedded default and PostgreSQL the production choice; both run
the same Alembic migrations. :func:`ensure_schema` migrates a database once per
process, so that a flow can call it on every run for free.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from sqlalchemy.engine import URL, Connection, Engine, make_url

from contact_center.exceptions import DatabaseError

__all__ = [
    "create_db_engine",
    "ensure_schema",
    "mapped_database_errors",
    "safe_url",
    "sqlite_timestamp",
    "transaction",
    "upgrade",
]

MIGRATIONS_DIR = Path(__file__).parent / "migrations"

_engines: dict[str, Engine] = {}
_migrated: set[str] = set()
_lock = threading.Lock()


def safe_url(url: str | URL) -> str:
    """The URL as text with any password hidden, for messages and logs."""
    return make_url(url).render_as_string(hide_password=True)


def _on_sqlite_connect(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    # WAL lets readers (views, reports) run beside a long load; FKs are off by default.
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


def create_db_engine(url: str | URL) -> Engine:
    """Return a (cached) engine for ``url``.

    SQLite files get their folder created, WAL mode and foreign keys.
    ``postgresql://`` URLs use psycopg 3.

    Raises:
        DatabaseError: the URL cannot be parsed or names an unsupported database.
    """
    try:
        parsed = make_url(url)
    except sa.exc.ArgumentError as exc:
        raise DatabaseError(f"not a database URL: {url!r}") from exc
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    if parsed.get_backend_name() not in ("sqlite", "postgresql"):
        raise DatabaseError(
            f"unsupported database {parsed.get_backend_name()!r} in {safe_url(parsed)}; "
            "use sqlite:/// or postgresql+psycopg://"
        )
    key = parsed.render_as_string(hide_password=False)
    with _lock:
        engine = _engines.get(key)
        if engine is None:
            engine = _new_engine(parsed)
            _engines[key] = engine
    return engine


def _new_engine(url: URL) -> Engine:
    if url.get_backend_name() == "sqlite":
        if url.database and url.database != ":memory:":
            Path(url.database).expanduser().parent.mkdir(parents=True, exist_ok=True)
        engine = sa.create_engine(url, connect_args={"timeout": 30})
        sa.event.listen(engine, "connect", _on_sqlite_connect)
        return engine
    return sa.create_engine(url, pool_pre_ping=True)


# The advisory lock that serialises migrations of one PostgreSQL database (any fixed
# 64-bit number; this is "cctasks" in ASCII).
_MIGRATION_LOCK = 0x6363746173_6B73


def _alembic_config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    return config


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Apply the migrations to ``revision`` (default: the newest).

    Raises:
        DatabaseError: the database cannot be reached or a migration failed.
    """
    config = _alembic_config()
    try:
        with engine.begin() as connection:
            if connection.dialect.name == "postgresql":
                # Runs starting at once on a fresh database (several workers) would each
                # create the tables and collide; the lock lets one migrate, and the
                # others then find the schema current. It ends with the transaction.
                connection.execute(
                    sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": _MIGRATION_LOCK}
                )
            config.attributes["connection"] = connection
            command.upgrade(config, revision)
    except sa.exc.SQLAlchemyError as exc:
        raise DatabaseError(
            f"cannot migrate {safe_url(engine.url)}: {type(exc).__name__}: {exc.orig or exc}"
            if isinstance(exc, sa.exc.DBAPIError)
            else f"cannot migrate {safe_url(engine.url)}: {exc}"
        ) from exc


def ensure_schema(engine: Engine) -> Engine:
    """Migrate ``engine``'s database to the newest schema, once per process."""
    key = engine.url.render_as_string(hide_password=False)
    if key not in _migrated:
        upgrade(engine)
        _migrated.add(key)
    return engine


def sqlite_timestamp(value: Any) -> str | None:
    """Format an aware datetime the way the models store it on SQLite (UTC, naive).

    Bulk loads that bypass SQLAlchemy's types use this to stay comparable.
    """
    if value is None:
        return None

    if value.tzinfo is not None:
        value = value.astimezone(UTC).replace(tzinfo=None)
    return str(value.strftime("%Y-%m-%d %H:%M:%S.%f"))


@contextmanager
def mapped_database_errors(what: str) -> Iterator[None]:
    """Map SQLAlchemy errors raised in the block to ``DatabaseError`` naming ``what``."""
    try:
        yield
    except sa.exc.DBAPIError as exc:
        raise DatabaseError(f"{what} failed: {type(exc.orig).__name__}: {exc.orig}") from exc
    except sa.exc.SQLAlchemyError as exc:
        raise DatabaseError(f"{what} failed: {exc}") from exc


@contextmanager
def transaction(bind: Connection | Engine) -> Iterator[Connection]:
    """A connection in a transaction: a new one for an engine, the caller's otherwise.

    With a connection already in a transaction, the caller commits; otherwise the
    block's work is committed at its end, or rolled back if it raises.
    """
    if isinstance(bind, Engine):
        with bind.begin() as conn:
            yield conn
    elif bind.in_transaction():
        yield bind
    else:
        with bind.begin():
            yield bind
