"""Benchmark: the list import's bulk path, without SFTP and without Prefect.

Run: ``.venv/bin/python -m bench.bulk_write [--rows 1000000] [--runs 3] [--db postgresql]``

Two measurements on the list benchmark's file (``bench.list_files.generate_list``,
generated once and kept in ``--file``), into a fresh calling list each run:

- ``write``: the file's chunks, parsed beforehand and held in memory, sent through
  ``bulk_writer`` into ``list_records`` as a fresh list's load sends them (the same
  columns and constants): the bulk code alone (COPY text on PostgreSQL, multi-row
  ``INSERT`` statements and their writer thread on SQLite);
- ``pipeline``: ``load_list_records`` fed by the parser running ahead in a thread
  (``prefetch``), as the import runs them: read, parse, load and their overlap.

It prints the median wall and CPU time of ``--runs`` runs of each, and the rows loaded
(which must not depend on the code measured). To compare two trees, run this same
file with each on ``PYTHONPATH``, interleaved::

    PYTHONPATH=/path/to/other/tree .venv/bin/python bench/bulk_write.py --db sqlite
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pyarrow as pa
import sqlalchemy as sa

from bench.list_files import MAPPING


def list_file(path: Path, rows: int) -> Path:
    """The list benchmark's file of ``rows`` rows, generated unless it is there."""
    if not path.exists():
        from bench.list_files import generate_list

        path.parent.mkdir(parents=True, exist_ok=True)
        generate_list(path, rows)
    return path


def parsed_chunks(path: Path) -> Iterator[Any]:
    """The file's chunks, parsed as the import parses them."""
    from contact_center.parsing.files import read_table
    from contact_center.parsing.lists import RecordParser, validate_mapping
    from contact_center.settings import LIST_CHUNK_ROWS

    table = read_table(path, name=path.name, chunk_rows=LIST_CHUNK_ROWS)
    mapping = validate_mapping(MAPPING, table.header, "account", file=path.name)
    parser = RecordParser(mapping, "account", "US", path.name)
    for chunk in table:
        yield parser.parse(chunk)


@contextmanager
def database(kind: str, workdir: Path) -> Iterator[sa.Engine]:
    """A fresh, migrated contact-centre database of ``kind``, gone afterwards."""
    from contact_center.storage.db import create_db_engine, ensure_schema

    if kind == "sqlite":
        path = workdir / f"{uuid.uuid4().hex}.db"
        engine = ensure_schema(create_db_engine(f"sqlite:///{path}"))
        try:
            yield engine
        finally:
            engine.dispose()
            for leftover in workdir.glob(f"{path.name}*"):  # with its WAL files
                leftover.unlink()
        return
    from bench.common import throwaway_postgres

    with throwaway_postgres("cctasks_bulk") as url:
        engine = ensure_schema(create_db_engine(url))
        try:
            yield engine
        finally:
            engine.dispose()


def write(engine: sa.Engine, tables: list[pa.Table]) -> int:
    """Send ``tables`` as a fresh list's load does: one bulk writer, the same constants."""
    from datetime import UTC, datetime

    from contact_center.storage.bulk import bulk_writer, is_postgresql

    columns = tables[0].column_names
    with engine.begin() as conn:
        constants: dict[str, Any] = {"list_id": 1, "import_id": 1}
        if not is_postgresql(conn):
            constants["updated_at"] = datetime.now(UTC)
        with bulk_writer(conn, "list_records", columns, constants=constants) as writer:
            for table in tables:
                writer.add(table)
        return int(writer.rows)


def pipeline(engine: sa.Engine, path: Path) -> int:
    """Parse and load the file as the import does, the parser one chunk ahead."""
    from contact_center.storage.bulk import prefetch
    from contact_center.storage.list_load import load_list_records
    from contact_center.storage.list_options import ImportOptions
    from contact_center.storage.list_results import SourceFile

    name = f"bench {uuid.uuid4().hex[:8]}"
    options = ImportOptions.from_parameters(list_name=name, source=str(path), mapping=MAPPING)
    source = SourceFile(name=path.name, location=str(path), sha256=uuid.uuid4().hex, size=1)
    result = load_list_records(
        engine,
        prefetch(parsed_chunks(path), depth=1),
        options,
        source,
        fields=set(MAPPING.values()),
    )
    return int(result.loaded)


def measure(run: Callable[[sa.Engine], int], runs: int, fresh: Callable[[], Any]) -> str:
    """Medians of ``runs`` calls of ``run``, each on a fresh database (made untimed)."""
    walls, cpus, rows = [], [], set()
    for _ in range(runs):
        with fresh() as engine:
            wall, cpu = time.perf_counter(), time.process_time()
            rows.add(run(engine))
            cpus.append(time.process_time() - cpu)
            walls.append(time.perf_counter() - wall)
    return (
        f"wall {statistics.median(walls):6.2f} s  cpu {statistics.median(cpus):6.2f} s  "
        f"rows {sorted(rows)}  (walls {', '.join(f'{w:.2f}' for w in walls)})"
    )


def load_columns() -> list[str]:
    """The columns a fresh list's load sends: the key, the mapped fields, the custom ones."""
    from contact_center.parsing.record_fields import RECORD_FIELDS

    fields = set(MAPPING.values())
    return ["record_key", *(f for f in RECORD_FIELDS if f in fields), "custom_fields"]


def main() -> None:
    """Parse the options and print both measurements."""
    import contact_center.storage.bulk

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--db", choices=["postgresql", "sqlite"], default="postgresql")
    parser.add_argument("--only", choices=["write", "pipeline"], default=None)
    parser.add_argument("--file", type=Path, default=None, help="the list file (made if absent)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="cctasks-bulk-") as tmp:
        workdir = Path(tmp)
        path = list_file(args.file or workdir / f"list_{args.rows}.csv", args.rows)
        print(f"bulk_write {contact_center.storage.bulk.__file__}: {args.db}, {path.name}")

        def fresh() -> Any:
            return database(args.db, workdir)

        if args.only in (None, "write"):
            columns = load_columns()
            tables = [p.valid.select(columns) for p in parsed_chunks(path)]
            print(f"  write     {measure(lambda e: write(e, tables), args.runs, fresh)}")
            del tables
        if args.only in (None, "pipeline"):
            print(f"  pipeline  {measure(lambda e: pipeline(e, path), args.runs, fresh)}")


if __name__ == "__main__":
    main()
