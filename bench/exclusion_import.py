"""Benchmark: 1,000,000 exclusion keys through ``import-exclusions`` vs ``psql \\copy``.

Run: ``.venv/bin/python -m bench.exclusion_import [--keys 1000000] [--runs 5]``

Needs PostgreSQL (``CCTASKS_BENCH_PG_ADMIN_URL``, default
``postgresql://postgres@127.0.0.1:5432/postgres``) and ``psql``. It creates a throwaway
database, writes a CSV of distinct account keys (one column, ``account``), and measures,
alternating the contenders in each round so that drift hits both alike:

- **reference**: ``psql -c "\\copy ..."`` of the file into an empty table of the same
  shape as ``exclusions`` (its columns, surrogate key, unique index and foreign key; the
  list id, ``added_at`` and ``expires_at`` filled by column defaults), the psql process
  start included: the same end state by the shortest road;
- **bare \\copy**: the same file into a one-column table whose primary key is the key
  (the plain-table reference), to show what the table's shape itself costs;
- **import (empty list)**: the whole flow, a real Prefect flow run with a local source:
  fetch (checksum) -> parse -> load into an empty list (the COPY fast path), with the
  ``exclusion_imports`` row and the outcome artifact;
- **re-import (renew)**: the same file again into the full list (``add``: every key is
  renewed through the staging table), for reference.

It prints the median of each and the ratios against the reference's median.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import subprocess
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import sqlalchemy as sa

ADMIN_URL = os.environ.get(
    "CCTASKS_BENCH_PG_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
TARGET_RATIO = 1.5

#: A table of the same shape as ``exclusions``, whose defaults fill what the file lacks.
SAME_SHAPE_DDL = """
CREATE TABLE copy_same_shape (
    id bigserial PRIMARY KEY,
    exclusion_list_id integer NOT NULL DEFAULT {list_id}
        REFERENCES exclusion_lists (id) ON DELETE CASCADE,
    key_value varchar(200) NOT NULL,
    added_at timestamptz NOT NULL DEFAULT now(),
    renewed_at timestamptz,
    expires_at timestamptz DEFAULT now() + interval '90 days',
    UNIQUE (exclusion_list_id, key_value)
)
"""


def write_keys(path: Path, count: int, seed: int = 7) -> int:
    """A CSV of ``count`` distinct 10-digit account numbers; returns its size."""
    rng = random.Random(seed)
    keys = rng.sample(range(1_000_000_000, 9_999_999_999), count)
    with path.open("w", encoding="utf-8", newline="\n") as handle:
        handle.write("account\n")
        handle.write("\n".join(str(k) for k in keys))
        handle.write("\n")
    return path.stat().st_size


def psql_url(url: sa.URL) -> str:
    """A libpq URL for psql (no SQLAlchemy driver suffix)."""
    return url.set(drivername="postgresql").render_as_string(hide_password=False)


def timed(action: Callable[[], object]) -> float:
    start = time.perf_counter()
    action()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--keys", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()

    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("DO_NOT_TRACK", "1")
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")

    admin = sa.create_engine(
        sa.make_url(ADMIN_URL).set(drivername="postgresql+psycopg"), isolation_level="AUTOCOMMIT"
    )
    name = f"cctasks_bench_{uuid.uuid4().hex[:8]}"
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    url = sa.make_url(ADMIN_URL).set(drivername="postgresql+psycopg", database=name)
    try:
        with tempfile.TemporaryDirectory(prefix="cctasks-bench-") as tmp:
            run(Path(tmp), url, args.keys, args.runs)
    finally:
        from contact_center.storage.db import create_db_engine

        create_db_engine(url).dispose()
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def run(tmp: Path, url: sa.URL, keys: int, runs: int) -> None:
    from prefect.settings import PREFECT_FLOWS_HEARTBEAT_FREQUENCY, temporary_settings
    from prefect.testing.utilities import prefect_test_harness

    from contact_center.storage.db import create_db_engine, ensure_schema

    os.environ["CCTASKS_HOME"] = str(tmp / "home")
    os.environ["CCTASKS_LOCAL_FOLDERS"] = str(tmp)  # the source file is generated in tmp
    os.environ["CCTASKS_DATABASE_URL"] = url.render_as_string(hide_password=False)
    engine = ensure_schema(create_db_engine(url))
    source = tmp / "dnc_keys.csv"
    size = write_keys(source, keys)
    print(f"{keys:,} keys, {size / 1e6:.1f} MB; PostgreSQL database {url.database}; {runs} runs")

    with engine.begin() as conn:
        list_id = conn.execute(
            sa.text(
                "INSERT INTO exclusion_lists (name, match_field, case_sensitive, active, "
                "created_at) VALUES ('Reference', 'account', true, true, now()) RETURNING id"
            )
        ).scalar_one()
        conn.execute(sa.text(SAME_SHAPE_DDL.format(list_id=int(list_id))))
        conn.execute(sa.text("CREATE TABLE copy_bare (key_value varchar(200) PRIMARY KEY)"))

    def psql_copy(table: str) -> Callable[[], None]:
        command = [
            "psql",
            "-X",
            "-q",
            "-v",
            "ON_ERROR_STOP=1",
            psql_url(url),
            "-c",
            f"\\copy {table} (key_value) FROM '{source}' WITH (FORMAT csv, HEADER true)",
        ]

        def run_copy() -> None:
            with engine.begin() as conn:
                conn.execute(sa.text(f"TRUNCATE {table}"))
            subprocess.run(command, check=True)

        return run_copy

    reference, bare = psql_copy("copy_same_shape"), psql_copy("copy_bare")

    with (
        prefect_test_harness(server_startup_timeout=120),
        temporary_settings(updates={PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None}),
    ):
        from flows.exclusion_import import import_exclusions

        def empty_lists() -> None:
            with engine.begin() as conn:
                conn.execute(sa.text("TRUNCATE exclusions, exclusion_imports"))

        def flow_import() -> None:
            outcome = import_exclusions("Bench DNC", source=str(source))
            assert outcome.loaded == keys, outcome

        def flow_renew() -> None:
            outcome = import_exclusions("Bench DNC", source=str(source))
            assert outcome.updated == keys, outcome

        import_exclusions("Warm-up", source=str(source))  # imports, first flow run, caches
        times: dict[str, list[float]] = {"reference": [], "bare": [], "import": [], "renew": []}
        for _ in range(runs):
            times["reference"].append(timed(reference))
            times["bare"].append(timed(bare))
            empty_lists()
            times["import"].append(timed(flow_import))
            times["renew"].append(timed(flow_renew))
        with engine.connect() as conn:
            stored = conn.execute(sa.text("SELECT count(*) FROM exclusions")).scalar_one()
        assert stored == keys, stored

    base = statistics.median(times["reference"])
    print(f"{'contender':<32}{'median s':>10}{'ratio':>8}   runs")
    labels = {
        "reference": "psql \\copy, same shape (ref)",
        "bare": "psql \\copy, one-column table",
        "import": "import-exclusions, empty list",
        "renew": "import-exclusions, renew all",
    }
    for key, label in labels.items():
        median = statistics.median(times[key])
        runs_text = " ".join(f"{t:.2f}" for t in times[key])
        print(f"{label:<32}{median:>10.2f}{median / base:>7.2f}x   {runs_text}")
    ratio = statistics.median(times["import"]) / base
    verdict = "meets" if ratio <= TARGET_RATIO else "misses"
    print(f"import vs \\copy: {ratio:.2f}x ({verdict} the target of <= {TARGET_RATIO}x)")
    bare_ratio = statistics.median(times["import"]) / statistics.median(times["bare"])
    print(f"import vs the one-column \\copy: {bare_ratio:.2f}x")


if __name__ == "__main__":
    main()
