"""Benchmark: ``export-campaign-results`` of 1,000,000 attempts vs ``psql \\copy`` + ``sftp put``.

Run: ``.venv/bin/python -m bench.results_export [--attempts 1000000] [--records 200000] [--runs 3]``

It starts its own sshd (:mod:`tests.support.sshd_server`), a throwaway PostgreSQL database
and a temporary Prefect server; seeds a campaign with one calling list of
``--records`` records (three custom fields each) and ``--attempts`` results from
:func:`deployments.demo.attempts.generate_call_attempts`; then measures, interleaved
run by run, medians of ``--runs``:

- **reference**: ``psql -c "\\copy (<the flow's own export query>) TO file"`` then
  OpenSSH ``sftp put`` of the file to the sshd; the query is the one the flow sends
  (same joins, neutralisation, time formatting and order, parameters bound), so the
  ratio is the price of the flow itself: Prefect, the survey queries, streaming
  through Python, paramiko and the temporary-name-then-rename delivery;
- **plain reference**: the same with a bare query (the same rows and joins, columns
  as stored, no neutralisation or formatting), to show what the SQL-side work costs;
- **flow**: a real flow run of ``export-campaign-results`` (``detailed``, an
  explicit window holding every attempt) from PostgreSQL to the sshd, in a child
  process whose peak RSS is reported (it must stay flat: the rows are streamed).

Then the same for the ``simple`` format (a row per record). The flow's time is the
wall time of the call (Prefect's start and end of run included); ``in-flow`` is the
run's own start-to-end.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from pydantic import SecretStr

from bench.common import child_main, client_files, fmt, openssh_sftp, run_flow, throwaway_postgres

BLOCK_NAME = "bench-sftp"
CAMPAIGN = "Bench Campaign"
LIST_NAME = "Bench Leads"
REMOTE_FOLDER = "exports"
_SEGMENTS = ["new", "lapsed", "winback", "vip", "=SUM(A1)", "-"]
_PLANS = ["gold", "silver", "bronze", ""]
_FIRST = ["Ann", "José", "Zoë", "Mike", "Priya", "Chen", "Olga", "Sam"]
_LAST = ["Smith", "Muñoz", "O'Brien", "Nguyen", "Kowalski", "Okafor", "Dubois, Jr."]


def _report(line: str) -> None:
    print(line, flush=True)


# --- data -------------------------------------------------------------------------------------


def seed(url: str, records: int, attempts: int) -> tuple[datetime, datetime]:
    """A campaign, a list of ``records`` records and ``attempts`` results; return the window."""
    from contact_center.storage.bulk import bulk_insert
    from contact_center.storage.campaigns import ensure_campaign, link_list
    from contact_center.storage.db import create_db_engine, ensure_schema
    from contact_center.storage.models import CallingList
    from deployments.demo.attempts import generate_call_attempts

    engine = ensure_schema(create_db_engine(url))
    ensure_campaign(engine, CAMPAIGN, time_zone="America/New_York")
    link_list(engine, CAMPAIGN, LIST_NAME)
    rng = random.Random(2026)
    columns = [
        "list_id",
        "record_key",
        "account",
        "phone1",
        "phone2",
        "first_name",
        "last_name",
        "zip",
        "state",
        "custom_fields",
    ]
    with engine.begin() as conn:
        list_id = conn.execute(
            sa.select(CallingList.id).where(CallingList.name == LIST_NAME)
        ).scalar_one()
        rows = (
            (
                list_id,
                f"AC{i:08d}",
                f"AC{i:08d}",
                f"+1212{rng.randrange(2000000, 9999999)}",
                f"+1646{rng.randrange(2000000, 9999999)}" if i % 3 == 0 else None,
                rng.choice(_FIRST),
                rng.choice(_LAST),
                f"{rng.randrange(501, 99950):05d}",
                "NY",
                json.dumps(
                    {
                        "segment": rng.choice(_SEGMENTS),
                        "plan": rng.choice(_PLANS),
                        "source": f"web-{i % 17}",
                    }
                ),
            )
            for i in range(records)
        )
        bulk_insert(conn, "list_records", columns, rows)
    end = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(hours=1)
    start = end - timedelta(days=14)
    generate_call_attempts(engine, CAMPAIGN, count=attempts, seed=7, start=start, end=end)
    with engine.begin() as conn:
        conn.exec_driver_sql("ANALYZE")
    return start, end


def export_sql(url: str, format: str, start: datetime, end: datetime, plain: bool) -> str:
    """The flow's export query with its parameters bound, as psql will run it."""
    import psycopg

    from contact_center.storage.campaigns import get_campaign
    from contact_center.storage.db import create_db_engine
    from contact_center.storage.results_query import custom_keys, export_query

    engine = create_db_engine(url)
    with engine.connect() as conn:
        campaign_id = get_campaign(conn, CAMPAIGN).id
        keys = custom_keys(conn, campaign_id=campaign_id, start=start, end=end)
        if plain:
            query = _plain_query(format, campaign_id, start, end, keys)
        else:
            query = export_query(
                "postgresql",
                format=format,
                campaign_id=campaign_id,
                start=start,
                end=end,
                custom_keys=keys,
            )
        compiled = query.compile(dialect=conn.dialect, compile_kwargs={"render_postcompile": True})
        dbapi = conn.connection.driver_connection
        assert isinstance(dbapi, psycopg.Connection)
        text = psycopg.ClientCursor(dbapi).mogrify(str(compiled), compiled.params)
    return " ".join(text.split("\n"))


def _plain_query(
    format: str, campaign_id: int, start: datetime, end: datetime, keys: list[str]
) -> sa.Select[Any]:
    """The export's rows and joins with the columns as stored (no SQL-side formatting)."""
    from contact_center.parsing.record_fields import RECORD_FIELDS
    from contact_center.storage.models import CallAttempt, CallingList, ListRecord

    a, r, lists = CallAttempt.__table__, ListRecord.__table__, CallingList.__table__
    window = sa.and_(
        a.c.campaign_id == campaign_id, a.c.recorded_at >= start, a.c.recorded_at < end
    )
    # Custom fields are stored as JSON text (schema 0003); look inside as json.
    extra = [sa.cast(r.c.custom_fields, sa.JSON())[k].as_string() for k in keys]
    joined = a.outerjoin(lists, lists.c.id == a.c.list_id).outerjoin(
        r, sa.and_(r.c.list_id == a.c.list_id, r.c.record_key == a.c.record_key)
    )
    fields = [lists.c.name, a.c.record_key, *(r.c[f] for f in RECORD_FIELDS)]
    if format == "detailed":
        return (
            sa.select(
                *fields, *(c for c in a.c if c.name not in ("campaign_id", "list_id")), *extra
            )
            .select_from(joined)
            .where(window)
            .order_by(a.c.recorded_at, a.c.id)
        )
    return (
        sa.select(*fields, sa.func.count(), sa.func.max(a.c.attempted_at), *extra)
        .select_from(joined)
        .where(window)
        .group_by(
            lists.c.name,
            a.c.list_id,
            a.c.record_key,
            *(r.c[f] for f in RECORD_FIELDS),
            *extra,
        )
        .order_by(a.c.list_id, a.c.record_key)
    )


# --- the references -----------------------------------------------------------------------------


class Reference:
    """``psql \\copy (query) TO file`` and OpenSSH ``sftp put``."""

    def __init__(self, sshd: Any, url: str, workdir: Path) -> None:
        self.sshd = sshd
        self.url = (
            sa.make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
        )
        self.workdir = workdir
        self.key, self.known_hosts = client_files(sshd, workdir)
        self.last_copy = 0.0
        self.last_size = 0

    def run(self, sql: str) -> float:
        """Copy out and upload; return the seconds taken (psql and sftp start-up included)."""
        local = self.workdir / f"ref-{uuid.uuid4().hex[:6]}.csv"
        started = time.perf_counter()
        subprocess.run(
            [
                "psql",
                "-q",
                "-v",
                "ON_ERROR_STOP=1",
                self.url,
                "-c",
                f"\\copy ({sql}) TO '{local}' WITH (FORMAT csv, HEADER true)",
            ],
            check=True,
            capture_output=True,
        )
        self.last_copy = time.perf_counter() - started
        openssh_sftp(
            self.sshd, self.key, self.known_hosts, f"put {local} {REMOTE_FOLDER}/reference.csv"
        )
        seconds = time.perf_counter() - started
        self.last_size = local.stat().st_size
        local.unlink()
        (self.sshd.home / REMOTE_FOLDER / "reference.csv").unlink()
        return seconds


# --- measuring ----------------------------------------------------------------------------------


def measure(
    ref: Reference,
    env: dict[str, str],
    format: str,
    window: tuple[datetime, datetime],
    runs: int,
    url: str,
) -> dict[str, Any]:
    """Interleave the two references and the flow ``runs`` times; return every figure."""
    start, end = window
    sql = export_sql(url, format, start, end, plain=False)
    plain = export_sql(url, format, start, end, plain=True)
    params = {
        "campaign": CAMPAIGN,
        "destination": f"sftp://{BLOCK_NAME}/{REMOTE_FOLDER}",
        "format": format,
        "since": f"{start.isoformat()}/{end.isoformat()}",
        # Each run is an export of its own: a name of its own (a delivery never
        # replaces another export's file).
        "file_name": "{campaign}_{format}_{export_id}.csv",
    }
    names = ("ref", "copy", "plain", "flow", "in_flow", "peak", "baseline")
    figures: dict[str, Any] = {name: [] for name in names}
    for run in range(runs):
        figures["ref"].append(ref.run(sql))
        figures["copy"].append(ref.last_copy)
        figures["ref_bytes"] = ref.last_size
        figures["plain"].append(ref.run(plain))
        result = run_flow("bench.results_export", params, env)
        result["in_flow"] = result["in_flow"] or result["seconds"]
        figures["in_flow"].append(result["in_flow"])
        figures["peak"].append(result["peak_mb"])
        figures["baseline"].append(result["baseline_mb"])
        figures["flow"].append(result["seconds"])
        figures["outcome"] = result["outcome"]
        for delivered in result["outcome"]["files"]:
            (ref.sshd.home / REMOTE_FOLDER / delivered.rsplit("/", 1)[-1]).unlink()
        _report(
            f"  run {run + 1}: reference {figures['ref'][-1]:.2f} s (\\copy "
            f"{figures['copy'][-1]:.2f} s), plain {figures['plain'][-1]:.2f} s, flow "
            f"{result['seconds']:.2f} s (in-flow {result['in_flow']:.2f} s), peak RSS "
            f"{result['peak_mb']:.0f} MB"
        )
    return figures


def _print(name: str, figures: dict[str, Any]) -> None:
    med = statistics.median
    outcome = figures["outcome"]
    _report(f"\n=== {name} (medians) ===")
    _report(
        f"rows {outcome['rows_read']:,}; file {outcome['bytes'] / 1e6:.0f} MB "
        f"(reference file {figures['ref_bytes'] / 1e6:.0f} MB)"
    )
    _report(f"reference \\copy (export query) + sftp put: {fmt(figures['ref'])}")
    _report(f"  of which \\copy:                          {fmt(figures['copy'])}")
    _report(f"plain reference (bare query) + sftp put:   {fmt(figures['plain'])}")
    _report(f"flow export-campaign-results:              {fmt(figures['flow'])}")
    _report(f"  in-flow (run start to end):              {fmt(figures['in_flow'])}")
    _report(
        f"  ratio flow / reference: {med(figures['flow']) / med(figures['ref']):.2f}x "
        f"(in-flow {med(figures['in_flow']) / med(figures['ref']):.2f}x; target <= 1.5x); "
        f"vs plain: {med(figures['flow']) / med(figures['plain']):.2f}x"
    )
    _report(
        f"  peak RSS of the flow process: {med(figures['peak']):.0f} MB "
        f"(before the flow: {med(figures['baseline']):.0f} MB)"
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--attempts", type=int, default=1_000_000)
    parser.add_argument("--records", type=int, default=200_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--formats", default="detailed,simple")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        from flows.results_export import export_campaign_results

        child_main(export_campaign_results, json.loads(args.child))
        return
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("DO_NOT_TRACK", "1")
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
    for tool in ("sftp", "psql"):
        if shutil.which(tool) is None:
            sys.exit(f"{tool} is not installed; the reference needs it")
    from prefect.settings import PREFECT_API_URL
    from prefect.testing.utilities import prefect_test_harness

    from blocks.sftp import SftpServer
    from tests.support.sshd_server import running_sshd, sshd_available

    if not sshd_available():
        sys.exit("OpenSSH server not installed (apt-get install -y openssh-server)")
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="cctasks-bench-") as tmp:
        root = Path(tmp)
        (root / "sshd").mkdir()
        (root / "work").mkdir()
        with (
            running_sshd(root / "sshd") as sshd,
            throwaway_postgres() as pg,
            prefect_test_harness(server_startup_timeout=120),
        ):
            url = pg.render_as_string(hide_password=False)
            _report(f"seeding {args.records:,} records and {args.attempts:,} attempts ...")
            started = time.perf_counter()
            window = seed(url, args.records, args.attempts)
            _report(f"  seeded in {time.perf_counter() - started:.1f} s")
            (sshd.home / REMOTE_FOLDER).mkdir()
            SftpServer(
                host=sshd.host,
                port=sshd.port,
                username=sshd.username,
                private_key=SecretStr(sshd.private_key),
                known_host_keys=sshd.known_hosts,
            ).save(BLOCK_NAME, overwrite=True)
            env = dict(
                os.environ,
                PREFECT_API_URL=str(PREFECT_API_URL.value()),
                CCTASKS_DATABASE_URL=url,
                CCTASKS_HOME=str(root / "home"),
            )
            ref = Reference(sshd, url, root / "work")
            for format in args.formats.split(","):
                _report(f"\n{format} export of {args.attempts:,} attempts ({args.runs} runs):")
                results[format] = measure(ref, env, format, window, args.runs, url)
    for format, figures in results.items():
        _print(f"{format}, {args.attempts:,} attempts, PostgreSQL -> sshd", figures)


if __name__ == "__main__":
    main()
