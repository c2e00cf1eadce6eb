"""PostgreSQL faults: watch the import's backend from a second connection, and terminate it.

``pg_stat_progress_copy`` tells how far a COPY has got; ``pg_stat_activity`` which
statement a backend runs and since when. :func:`terminate` ends a backend only if
it is still in the statement meant, so a fault that came too late shows up as a
failed assertion, never as a test that passes without having hit anything.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

__all__ = ["admin_engine", "copy_past", "merge_running", "terminate"]


def admin_engine(db_url: str) -> sa.Engine:
    """A second connection to the test database, outside any transaction of the flow's."""
    return sa.create_engine(db_url, isolation_level="AUTOCOMMIT", poolclass=sa.pool.NullPool)


def copy_past(admin: sa.Engine, rows: int) -> Any:
    """The (pid, tuples) of a COPY into this database that has taken ``rows`` rows."""
    with admin.connect() as conn:
        return conn.execute(
            sa.text(
                "SELECT pid, tuples_processed FROM pg_stat_progress_copy "
                "WHERE datname = current_database() AND command = 'COPY FROM' "
                "AND tuples_processed >= :rows"
            ),
            {"rows": rows},
        ).first()


def terminate(admin: sa.Engine, pid: int, statement: str) -> bool:
    """Terminate backend ``pid`` if it is still running ``statement`` (a LIKE pattern)."""
    with admin.connect() as conn:
        return bool(
            conn.scalar(
                sa.text(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE pid = :pid AND state = 'active' AND query LIKE :statement"
                ),
                {"pid": pid, "statement": statement},
            )
        )


def merge_running(admin: sa.Engine) -> Any:
    """The pid of the import's MERGE once it has run for 50 ms."""
    with admin.connect() as conn:
        return conn.scalar(
            sa.text(
                "SELECT pid FROM pg_stat_activity "
                "WHERE datname = current_database() AND state = 'active' "
                "AND query LIKE 'MERGE INTO list_records%' "
                "AND clock_timestamp() - query_start > interval '50 milliseconds'"
            )
        )
