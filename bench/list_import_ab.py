"""Benchmark: a paired A/B of the list import between trees (or parameter variants).

Run: ``.venv/bin/python -m bench.list_import_ab --rounds 4 base=/path/to/old new=. [newz=.:zones]``

Each variant is a tree (``name=path``), optionally with ``:zones`` or ``:no-zones`` to
set ``timezone_precedence`` (a tree without that parameter takes neither). All variants
share one sshd, one Prefect server and the 1M-row file; each has its own PostgreSQL
database, migrated by its own tree. Every round runs, for each series, each variant
once, one after the other (the order reversed every other round), each flow run in a
child process started in its tree:

- ``pg``: a fresh 1M-row import into PostgreSQL (the variant's tables emptied before);
- ``update``: the same file again into that list (the update path, all unchanged);
- ``sqlite``: a fresh 1M-row import into a new SQLite file.

Runs next to each other meet the same state of the machine, so the ratio of two
variants' runs in a round is steadier than either's seconds; the report gives, per
series and figure (wall seconds, the run's own time, the child's CPU, peak RSS), the
medians and the median of the rounds' ratios. ``--out`` keeps every run as a JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Iterable
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from bench import common

#: The series of a round (``--series`` picks some); ``update`` re-imports what ``pg`` loaded.
SERIES = ("pg", "update", "sqlite")
FIGURES = ("seconds", "in_flow", "cpu", "peak_mb")
LIST_NAME = "AB list"


@dataclass(frozen=True)
class Variant:
    """A tree to run, and whether its imports assign time zones (None: leave it)."""

    name: str
    tree: Path
    zones: bool | None = None

    @classmethod
    def parse(cls, text: str) -> Variant:
        """``name=path[:zones|:no-zones]``."""
        name, sep, rest = text.partition("=")
        if not sep or not name:
            raise argparse.ArgumentTypeError(f"{text!r}: expected name=path[:zones|:no-zones]")
        path, _, flag = rest.partition(":")
        if flag not in ("", "zones", "no-zones"):
            raise argparse.ArgumentTypeError(f"{text!r}: the flag is zones or no-zones")
        zones = None if not flag else flag == "zones"
        return cls(name, Path(path).resolve(), zones)

    def params(self, rows: int) -> dict[str, Any]:
        from bench.list_files import MAPPING
        from bench.list_import import BLOCK_NAME

        params: dict[str, Any] = {
            "list_name": LIST_NAME,
            "source": f"sftp://{BLOCK_NAME}/leads_{rows}.csv",
            "mapping": MAPPING,
            "update_policy": "update",
            "force": True,
        }
        if self.zones is False:
            params["timezone_precedence"] = []
        return params


def pair_ratios(
    runs: Iterable[dict[str, Any]], series: str, figure: str, top: str, bottom: str
) -> list[float]:
    """``top``'s figure over ``bottom``'s, for each round where both ran ``series``."""
    by_round: dict[int, dict[str, float]] = {}
    for run in runs:
        if run["series"] == series and run.get(figure) is not None:
            by_round.setdefault(run["round"], {})[run["variant"]] = float(run[figure])
    return [
        pair[top] / pair[bottom]
        for _, pair in sorted(by_round.items())
        if top in pair and bottom in pair and pair[bottom] > 0
    ]


def report(runs: list[dict[str, Any]], names: list[str]) -> list[str]:
    """The medians per variant, and each variant's median ratio to the first."""
    lines = []
    for series in SERIES:
        lines.append(f"== {series}")
        for figure in FIGURES:
            medians = []
            for name in names:
                values = [
                    float(r[figure])
                    for r in runs
                    if r["series"] == series and r["variant"] == name and r.get(figure) is not None
                ]
                if values:
                    medians.append(f"{name} {statistics.median(values):.2f}")
            ratios = []
            for name in names[1:]:
                pairs = pair_ratios(runs, series, figure, name, names[0])
                if pairs:
                    shown = ", ".join(f"{p:.2f}" for p in pairs)
                    ratios.append(f"{name}/{names[0]} {statistics.median(pairs):.3f} ({shown})")
            lines.append(f"  {figure:8s} {'  '.join(medians)}   {'   '.join(ratios)}")
    return lines


def _migrate(tree: Path, url: str) -> None:
    """Migrate ``url`` with ``tree``'s own code (its package layout may be older)."""
    module = (
        "contact_center.storage.db"
        if (tree / "contact_center" / "storage" / "db.py").exists()
        else "contact_center.db"
    )
    code = (
        f"from {module} import create_db_engine, ensure_schema; "
        f"ensure_schema(create_db_engine({url!r}))"
    )
    subprocess.run(
        [sys.executable, "-c", code],
        cwd=tree,
        env=dict(os.environ, PYTHONPATH=str(tree)),
        check=True,
    )


def _drop_list(url: str) -> None:
    """Empty the variant's own database of lists (plain SQL: the tree's schema stays).

    ``TRUNCATE``, not ``DELETE``: a million dead rows would bring autovacuum into the
    next timed run.
    """
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.execute(sa.text("TRUNCATE list_records, list_imports, calling_lists CASCADE"))
    engine.dispose()


def _run(variant: Variant, rows: int, env: dict[str, str], url: str) -> dict[str, Any]:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    figures = common.run_flow(
        "bench.list_import",
        variant.params(rows),
        dict(env, CCTASKS_DATABASE_URL=url, PYTHONPATH=str(variant.tree)),
        cwd=variant.tree,
    )
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    figures["cpu"] = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return figures


def _rounds(
    variants: list[Variant],
    args: argparse.Namespace,
    tmp: Path,
    env: dict[str, str],
    urls: dict[str, str],
) -> list[dict[str, Any]]:
    runs: list[dict[str, Any]] = []
    out = args.out.open("a") if args.out else None
    for number in range(1, args.rounds + 1):
        order = variants if number % 2 else list(reversed(variants))
        for series in args.series:
            for variant in order:
                url = urls[variant.name]
                if series == "pg":
                    _drop_list(url)
                elif series == "sqlite":
                    db = tmp / f"{variant.name}-{number}.db"
                    url = f"sqlite:///{db}"
                    _migrate(variant.tree, url)
                figures = _run(variant, args.rows, env, url)
                run = {
                    "round": number,
                    "series": series,
                    "variant": variant.name,
                    **{f: figures.get(f) for f in FIGURES},
                    "loaded": figures["outcome"].get("loaded"),
                }
                runs.append(run)
                print(json.dumps(run), flush=True)
                if out is not None:
                    print(json.dumps(run), file=out, flush=True)
                if series == "sqlite":
                    for leftover in tmp.glob(f"{db.name}*"):
                        leftover.unlink()
    return runs


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument(
        "variants", nargs="+", type=Variant.parse, help="name=path[:zones|:no-zones]"
    )
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--out", type=Path, help="append each run as a JSON line")
    parser.add_argument(
        "--series", nargs="+", choices=SERIES, default=list(SERIES), help="the series to run"
    )
    args = parser.parse_args()
    if len({v.name for v in args.variants}) < len(args.variants):
        parser.error("the variants' names must differ")
    for name, value in (("PREFECT_SERVER_ANALYTICS_ENABLED", "false"), ("DO_NOT_TRACK", "1")):
        os.environ.setdefault(name, value)
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
    from prefect.testing.utilities import prefect_test_harness

    from bench.list_import import _setup
    from tests.support.sshd_server import running_sshd

    with tempfile.TemporaryDirectory(prefix="cctasks-ab-") as folder, ExitStack() as stack:
        tmp = Path(folder)
        (tmp / "sshd").mkdir()
        sshd = stack.enter_context(running_sshd(tmp / "sshd"))
        shared = stack.enter_context(common.throwaway_postgres("cctasks_ab"))
        urls = {
            v.name: stack.enter_context(common.throwaway_postgres("cctasks_ab")).render_as_string(
                hide_password=False
            )
            for v in args.variants
        }
        stack.enter_context(prefect_test_harness(server_startup_timeout=120))
        setup = argparse.Namespace(rows=args.rows, small=1000, runs=1, dry_run=False)
        env = _setup(setup, tmp, sshd, shared)
        for variant in args.variants:
            _migrate(variant.tree, urls[variant.name])
        runs = _rounds(args.variants, args, tmp, env, urls)
    print("\n".join(report(runs, [v.name for v in args.variants])))


if __name__ == "__main__":
    main()
