"""Benchmark: the calling-list import vs ``sftp get`` + ``psql \\copy`` and sqlite3 ``.import``.

Run: ``.venv/bin/python -m bench.list_import [--rows 1000000] [--small 100000] [--runs 3]``

With ``--dry-run [--base TREE]`` it measures only the dry run and the encrypted
import against the import (and the import of another tree), see :mod:`bench.dry_run`.

It starts its own sshd (the tests' :mod:`tests.support.sshd_server`), a throwaway PostgreSQL
database and a temporary Prefect server, generates a list file (typical columns,
mixed phone formats, about 5% bad rows: blank keys, repeated keys, no valid phone)
and measures, interleaved run by run, medians of ``--runs``:

- **import**: the flow ``import-calling-list`` (from the sshd into PostgreSQL, a
  fresh list each run) against the reference: OpenSSH ``sftp get`` of the same file
  plus ``psql \\copy`` of it into a table of the same shape (the file's columns as
  text and a ``bigserial`` primary key); at ``--rows`` and at ``--small`` rows;
- **database floor**: ``\\copy`` of the flow's own loaded rows into a table shaped like
  ``list_records`` (its primary and unique keys, the custom fields as JSON text): what
  the database must do for this load whoever sends the rows, to tell our overhead from
  the schema's;
- **peak RSS** of the process running the flow (each flow run is a child process,
  so the figure is that run's own), and its baseline before the flow starts;
- **update path**: the re-import (``force``) of the same file into the loaded list,
  which finds every record unchanged, against the ``\\copy`` alone and sftp + ``\\copy``;
- **SQLite**: the flow into a fresh SQLite file against ``sftp get`` + the sqlite3
  CLI's ``.import`` into a table of the file's columns.

The flow's time is the wall time of the call as a user sees it (Prefect's own
start-up and end of run included); ``in-flow`` is the same less that overhead,
read from the run's start and end.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from bench import common
from bench.list_files import COLUMNS, MAPPING, generate_list

BLOCK_NAME = "bench-sftp"
def _ref_columns_sql() -> str:
    return ", ".join(f'"{c}" text' for c in COLUMNS)


def _quoted_columns() -> str:
    return ", ".join(f'"{c}"' for c in COLUMNS)


_FLOOR_COLUMNS = (
    "list_id, record_key, account, phone1, phone2, first_name, last_name, zip, state, "
    "priority, custom_fields, import_id, updated_at"
)


class References:
    """OpenSSH ``sftp``, ``psql \\copy`` and the sqlite3 CLI on the same file."""

    def __init__(self, sshd: Any, pg_url: sa.URL, workdir: Path) -> None:
        self.sshd = sshd
        self.pg_url = pg_url
        self.workdir = workdir
        self.key, self.known_hosts = common.client_files(sshd, workdir)
        engine = sa.create_engine(pg_url)
        with engine.begin() as conn:
            conn.exec_driver_sql(
                f"CREATE TABLE ref_list (id bigserial PRIMARY KEY, {_ref_columns_sql()})"
            )
        engine.dispose()
        self.floor_files: dict[str, Path] = {}

    def _psql(self, *commands: str) -> float:
        url = self.pg_url.set(drivername="postgresql").render_as_string(hide_password=False)
        started = time.perf_counter()
        for command in commands:
            subprocess.run(
                ["psql", "-q", "-v", "ON_ERROR_STOP=1", url, "-c", command],
                check=True,
                capture_output=True,
            )
        return time.perf_counter() - started

    def floor_copy(self, list_name: str) -> float:
        """``\\copy`` of the flow's own rows into a table shaped like ``list_records``.

        The same rows, already normalised, into the same columns and keys:
        what the database itself must do for the load, whoever sends the rows.
        """
        if list_name not in self.floor_files:
            path = self.workdir / f"floor-{len(self.floor_files)}.csv"
            engine = sa.create_engine(self.pg_url)
            with engine.connect() as conn:
                list_id = int(
                    conn.execute(
                        sa.text("SELECT id FROM calling_lists WHERE name = :n"), {"n": list_name}
                    ).scalar_one()
                )
            engine.dispose()
            # A psql meta-command takes no bound parameters; list_id is an int from the DB.
            export = f"SELECT {_FLOOR_COLUMNS} FROM list_records WHERE list_id = {list_id}"  # noqa: S608
            self._psql(
                "CREATE TABLE IF NOT EXISTS floor_records (LIKE list_records INCLUDING ALL)",
                f"\\copy ({export}) TO '{path}' WITH (FORMAT csv)",
            )
            self.floor_files[list_name] = path
        self._psql("TRUNCATE floor_records")
        return self._psql(
            f"\\copy floor_records ({_FLOOR_COLUMNS}) FROM '{self.floor_files[list_name]}' "
            "WITH (FORMAT csv)"
        )

    def sftp_get(self, remote: str) -> Path:
        target = self.workdir / f"ref-{uuid.uuid4().hex[:6]}.csv"
        common.openssh_sftp(self.sshd, self.key, self.known_hosts, f"get {remote} {target}")
        return target

    def psql_copy(self, local: Path) -> None:
        url = self.pg_url.set(drivername="postgresql").render_as_string(hide_password=False)
        subprocess.run(
            ["psql", "-q", "-v", "ON_ERROR_STOP=1", url, "-c", "TRUNCATE ref_list"],
            check=True,
            capture_output=True,
        )
        started = time.perf_counter()
        subprocess.run(
            [
                "psql",
                "-q",
                "-v",
                "ON_ERROR_STOP=1",
                url,
                "-c",
                f"\\copy ref_list ({_quoted_columns()}) FROM '{local}' "
                "WITH (FORMAT csv, HEADER true)",
            ],
            check=True,
            capture_output=True,
        )
        self.last_copy = time.perf_counter() - started

    def sqlite_import(self, local: Path) -> None:
        db = self.workdir / f"ref-{uuid.uuid4().hex[:6]}.db"
        subprocess.run(
            ["sqlite3", str(db), f"CREATE TABLE ref_list ({_ref_columns_sql()})"],
            check=True,
            capture_output=True,
        )
        started = time.perf_counter()
        subprocess.run(
            ["sqlite3", str(db), f".import --csv --skip 1 {local} ref_list"],
            check=True,
            capture_output=True,
        )
        self.last_import = time.perf_counter() - started
        db.unlink()


# --- the flow, in a child process -----------------------------------------------------------


def run_flow(params: dict[str, Any], env: dict[str, str]) -> dict[str, Any]:
    """Run the flow once in a child process (its own peak RSS); return its figures."""
    return common.run_flow("bench.list_import", params, env)


def _drop_list(url: str, list_name: str) -> None:
    from contact_center.storage.db import create_db_engine, ensure_schema

    engine = ensure_schema(create_db_engine(url))
    with engine.begin() as conn:
        found = {"n": list_name}
        # list_records has no foreign key to cascade from (see models.ListRecord).
        conn.execute(
            sa.text(
                "DELETE FROM list_records WHERE list_id IN "
                "(SELECT id FROM calling_lists WHERE name = :n)"
            ),
            found,
        )
        conn.execute(sa.text("DELETE FROM calling_lists WHERE name = :n"), found)
    engine.dispose()


def measure_import(
    refs: References, rows: int, runs: int, env: dict[str, str], pg_url: str
) -> dict[str, Any]:
    """Interleave the reference and the flow (a fresh list each run); return the figures."""
    names = ("ref", "copy", "flow", "in_flow", "peak", "baseline", "floor")
    figures_by: dict[str, list[float]] = {name: [] for name in names}
    outcome: dict[str, Any] = {}
    list_name = f"Bench {rows}"
    for run in range(runs):
        started = time.perf_counter()
        local = refs.sftp_get(f"leads_{rows}.csv")
        refs.psql_copy(local)
        figures_by["ref"].append(time.perf_counter() - started)
        figures_by["copy"].append(refs.last_copy)
        local.unlink()
        _drop_list(pg_url, list_name)
        figures = run_flow(_flow_params(rows, list_name), env)
        figures_by["flow"].append(figures["seconds"])
        figures_by["in_flow"].append(figures["in_flow"] or figures["seconds"])
        figures_by["peak"].append(figures["peak_mb"])
        figures_by["baseline"].append(figures["baseline_mb"])
        outcome = figures["outcome"]
        figures_by["floor"].append(refs.floor_copy(list_name))
        _report(
            f"  run {run + 1}: reference {figures_by['ref'][-1]:.2f} s "
            f"(\\copy {figures_by['copy'][-1]:.2f} s), flow {figures['seconds']:.2f} s "
            f"(in-flow {figures_by['in_flow'][-1]:.2f} s), peak RSS {figures['peak_mb']:.0f} MB; "
            f"\\copy of the loaded rows into a list_records-shaped table "
            f"{figures_by['floor'][-1]:.2f} s"
        )
    return {**figures_by, "outcome": outcome}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--small", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument(
        "--dry-run", action="store_true", help="Only the dry run and the encrypted import."
    )
    parser.add_argument("--base", type=Path, help="With --dry-run: the tree to A/B against.")
    parser.add_argument(
        "--no-zones",
        action="store_true",
        help="Import without time zones (timezone_precedence: []), to tell what they cost.",
    )
    args = parser.parse_args(argv)
    if args.no_zones:
        _EXTRA_PARAMS["timezone_precedence"] = []
    if args.child:
        from flows.calling_list_import import import_calling_list

        common.child_main(import_calling_list, json.loads(args.child))
        return
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("DO_NOT_TRACK", "1")
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
    for tool in ("sftp", "psql", "sqlite3"):
        if shutil.which(tool) is None:
            sys.exit(f"{tool} is not installed; the reference needs it")
    from prefect.testing.utilities import prefect_test_harness

    from tests.support.sshd_server import running_sshd, sshd_available

    if not sshd_available():
        sys.exit("OpenSSH server not installed (apt-get install -y openssh-server)")
    with tempfile.TemporaryDirectory(prefix="cctasks-bench-") as tmp:
        (Path(tmp) / "sshd").mkdir()
        with (
            running_sshd(Path(tmp) / "sshd") as sshd,
            common.throwaway_postgres() as pg,
            prefect_test_harness(server_startup_timeout=120),
        ):
            results = _run_all(args, Path(tmp), sshd, pg)
    _print_results(args, results)


def _report(line: str) -> None:
    print(line, flush=True)


def _setup(args: argparse.Namespace, tmp: Path, sshd: Any, pg: sa.URL) -> dict[str, str]:
    """Generate the files on the sshd, save the SFTP block; return the flow's environment."""
    from prefect.settings import PREFECT_API_URL

    from blocks.sftp import SftpServer

    _report(f"generating {args.rows:,} and {args.small:,} rows ...")
    bad = generate_list(sshd.home / f"leads_{args.rows}.csv", args.rows)
    generate_list(sshd.home / f"leads_{args.small}.csv", args.small)
    size_mb = (sshd.home / f"leads_{args.rows}.csv").stat().st_size / 1e6
    _report(f"  leads_{args.rows}.csv: {size_mb:.0f} MB; bad rows made: {bad}")
    SftpServer(
        host=sshd.host,
        port=sshd.port,
        username=sshd.username,
        private_key=sshd.private_key,
        known_host_keys=sshd.known_hosts,
    ).save(BLOCK_NAME, overwrite=True)
    env = dict(os.environ)
    env.update(
        PREFECT_API_URL=str(PREFECT_API_URL.value()),
        CCTASKS_DATABASE_URL=pg.render_as_string(hide_password=False),
        CCTASKS_HOME=str(tmp / "home"),
    )
    # As `cctasks up` does: the ZIP -> zone table is built once per installation, not
    # by the import measured (it costs the first import about 7 s and 170 MB).
    from contact_center.parsing.record_zones import warm_zone_tables
    from contact_center.settings import cache_dir

    _report(f"  time-zone tables: {warm_zone_tables(cache_dir(tmp / 'home', env))}")
    return env


#: Parameters that the command line adds to every import (``--no-zones``).
_EXTRA_PARAMS: dict[str, Any] = {}


def _flow_params(rows: int, list_name: str) -> dict[str, Any]:
    return {
        "list_name": list_name,
        "source": f"sftp://{BLOCK_NAME}/leads_{rows}.csv",
        "mapping": MAPPING,
        "update_policy": "update",
        "force": True,
        **_EXTRA_PARAMS,
    }


def _run_all(args: argparse.Namespace, tmp: Path, sshd: Any, pg: sa.URL) -> dict[str, Any]:
    env = _setup(args, tmp, sshd, pg)
    pg_url = env["CCTASKS_DATABASE_URL"]
    if args.dry_run:
        from bench import dry_run

        dry_run.encrypt_for_bench(
            sshd.home / f"leads_{args.rows}.csv", sshd.home / f"leads_{args.rows}.csv.pgp"
        )
        _report(f"\ndry run and encrypted import of {args.rows:,} rows ({args.runs} runs):")
        times = dry_run.measure(
            args.rows,
            args.runs,
            env,
            _flow_params,
            lambda name: _drop_list(pg_url, name),
            args.base,
            _report,
        )
        return {"dry_run": times}
    work = tmp / "work"
    work.mkdir()
    refs = References(sshd, pg, work)
    results: dict[str, Any] = {}
    _report(f"\nimport of {args.rows:,} rows into PostgreSQL ({args.runs} runs):")
    results["full"] = measure_import(refs, args.rows, args.runs, env, pg_url)
    _report(f"\nimport of {args.small:,} rows into PostgreSQL ({args.runs} runs):")
    results["part"] = measure_import(refs, args.small, args.runs, env, pg_url)
    _report(f"\nupdate path: re-import of the loaded {args.rows:,}-row list ({args.runs} runs):")
    results["update"] = measure_update(args.rows, args.runs, env)
    _report(f"\nSQLite: import of {args.rows:,} rows ({args.runs} runs):")
    results["sqlite"] = measure_sqlite(refs, args.rows, args.runs, env, tmp)
    return results


def measure_update(rows: int, runs: int, env: dict[str, str]) -> dict[str, Any]:
    """Re-import the loaded list (every record unchanged)."""
    flow, in_flow, outcome = [], [], {}
    for run in range(runs):
        figures = run_flow(_flow_params(rows, f"Bench {rows}"), env)
        flow.append(figures["seconds"])
        in_flow.append(figures["in_flow"] or figures["seconds"])
        outcome = figures["outcome"]
        _report(f"  run {run + 1}: flow {flow[-1]:.2f} s (in-flow {in_flow[-1]:.2f} s)")
    return {"flow": flow, "in_flow": in_flow, "outcome": outcome}


def measure_sqlite(
    refs: References, rows: int, runs: int, env: dict[str, str], tmp: Path
) -> dict[str, Any]:
    """sftp get + sqlite3 .import against the flow into a fresh SQLite file, interleaved."""
    from contact_center.storage.db import create_db_engine, ensure_schema

    ref, imports, flow, in_flow = [], [], [], []
    for run in range(runs):
        started = time.perf_counter()
        local = refs.sftp_get(f"leads_{rows}.csv")
        refs.sqlite_import(local)
        ref.append(time.perf_counter() - started)
        imports.append(refs.last_import)
        local.unlink()
        db = tmp / f"cc-{run}.db"
        ensure_schema(create_db_engine(f"sqlite:///{db}"))  # the migrations are not the load
        params = _flow_params(rows, "Bench sqlite")
        figures = run_flow(params, dict(env, CCTASKS_DATABASE_URL=f"sqlite:///{db}"))
        flow.append(figures["seconds"])
        in_flow.append(figures["in_flow"] or figures["seconds"])
        _report(
            f"  run {run + 1}: sftp + .import {ref[-1]:.2f} s (.import {imports[-1]:.2f} s), "
            f"flow {flow[-1]:.2f} s (in-flow {in_flow[-1]:.2f} s)"
        )
        db.unlink()
    return {"ref": ref, "import": imports, "flow": flow, "in_flow": in_flow}


def _print_results(args: argparse.Namespace, results: dict[str, Any]) -> None:
    if "dry_run" in results:
        from bench import dry_run

        dry_run.print_results(results["dry_run"], args.rows, _report)
        return
    full, part, upd, lite = results["full"], results["part"], results["update"], results["sqlite"]
    med = statistics.median
    o, u = full["outcome"], upd["outcome"]
    _report("\n=== results (medians) ===")
    _report(
        f"import outcome: {o['rows_read']:,} read, {o['loaded']:,} loaded, "
        f"{o['rejected']:,} rejected {o['rejects_by_reason']}, {o['bytes'] / 1e6:.0f} MB"
    )
    _report(f"reference sftp get + \\copy, {args.rows:,} rows: {common.fmt(full['ref'])}")
    _report(f"  of which \\copy:                      {common.fmt(full['copy'])}")
    _report(f"flow import, {args.rows:,} rows:           {common.fmt(full['flow'])}")
    _report(f"  in-flow (run start to end):          {common.fmt(full['in_flow'])}")
    _report(
        f"  ratio flow / reference: {med(full['flow']) / med(full['ref']):.2f}x "
        f"(in-flow {med(full['in_flow']) / med(full['ref']):.2f}x; target <= 1.6x, aim 1.3x)"
    )
    _report(
        f"database floor: \\copy of the flow's own rows into a table shaped like list_records "
        f"(primary and unique keys): {common.fmt(full['floor'])}; "
        f"= {med(full['floor']) / med(full['copy']):.2f}x the reference's \\copy"
    )
    _report(
        f"  flow / (sftp get + that floor): "
        f"{med(full['flow']) / (med(full['ref']) - med(full['copy']) + med(full['floor'])):.2f}x"
    )
    _report(
        f"peak RSS of the flow process: {med(full['peak']):.0f} MB at {args.rows:,} rows, "
        f"{med(part['peak']):.0f} MB at {args.small:,} rows (before the flow: "
        f"{med(full['baseline']):.0f} MB; target < 1 GB and flat)"
    )
    _report(
        f"ratio at {args.small:,} rows: {med(part['flow']) / med(part['ref']):.2f}x "
        f"(flow {med(part['flow']):.2f} s, reference {med(part['ref']):.2f} s; "
        f"in-flow {med(part['in_flow']) / med(part['ref']):.2f}x)"
    )
    _report(
        f"update path ({u['unchanged']:,} unchanged, {u['updated']} updated, {u['loaded']} "
        f"loaded): {common.fmt(upd['flow'])}"
    )
    _report(
        f"  ratio vs \\copy alone: {med(upd['flow']) / med(full['copy']):.2f}x "
        f"(in-flow {med(upd['in_flow']) / med(full['copy']):.2f}x; target <= 3x); "
        f"vs sftp + \\copy: {med(upd['flow']) / med(full['ref']):.2f}x"
    )
    _report(f"SQLite: sftp get + .import {common.fmt(lite['ref'])}")
    _report(f"  .import alone {common.fmt(lite['import'])}")
    _report(
        f"  flow {common.fmt(lite['flow'])}; ratio {med(lite['flow']) / med(lite['ref']):.2f}x "
        f"(in-flow {med(lite['in_flow']) / med(lite['ref']):.2f}x; target <= 1.3x)"
    )


if __name__ == "__main__":
    main()
