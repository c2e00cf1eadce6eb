"""The calling-list load's gates and all or nothing, on SQLite and PostgreSQL: a gate
that refuses, a parse error in a later chunk, a database failure midway and a killed
process all leave the list as it was (and the next import goes through).

The chunks are made by hand in the parser's shape, as in ``test_list_load.py``.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from support.list_load_support import Parsed, chunk, keys, load, records

from contact_center.exceptions import DatabaseError, InvalidFile, QualityGateFailed
from contact_center.storage.models import CallingList, ListImport

# --- gates and all or nothing --------------------------------------------------------------


def test_replace_with_an_empty_file_never_wipes_the_list(engine: sa.Engine) -> None:
    load(engine, [chunk(keys(3))])
    before = records(engine)
    with pytest.raises(QualityGateFailed, match=r"min_rows.*0 row\(s\) to load.*min_rows=1"):
        load(engine, [chunk([])], update_policy="replace")
    with pytest.raises(QualityGateFailed, match="min_rows"):
        load(engine, [chunk([], rejects=[(2, "missing_key")])], update_policy="replace")
    assert records(engine) == before
    with engine.connect() as conn:
        assert conn.scalar(sa.select(sa.func.count()).select_from(ListImport)) == 1
    # An explicit min_rows=0 and force (past max_removed_ratio) empty it on purpose.
    result = load(engine, [chunk([])], update_policy="replace", min_rows=0, force=True)
    assert result.removed == 3 and records(engine) == {}


def test_max_reject_ratio_gate_changes_nothing(engine: sa.Engine) -> None:
    rejects = [(i, "no_valid_phone") for i in range(10, 13)] + [(13, "missing_key")]
    data = [chunk(keys(16)), chunk([], rejects=rejects)]
    with pytest.raises(
        QualityGateFailed,
        match=r"max_reject_ratio: file 'leads.csv' has 4 of 20 rows rejected \(20.0% > 10.0%; "
        r"no_valid_phone 3, missing_key 1\).*'Spring Leads' was not changed",
    ):
        load(engine, data, max_reject_ratio=0.1)
    with engine.connect() as conn:
        assert conn.scalar(sa.select(sa.func.count()).select_from(CallingList)) == 0
    assert load(engine, data, max_reject_ratio=0.2).loaded == 16


@pytest.mark.parametrize("existing", [False, True], ids=["new-list", "existing-list"])
def test_a_parse_error_in_a_later_chunk_rolls_everything_back(
    engine: sa.Engine, existing: bool
) -> None:
    if existing:
        load(engine, [chunk(keys(3))])
    before = records(engine)

    def chunks() -> Iterator[Parsed]:
        yield chunk(keys(1000, prefix="X"))
        raise InvalidFile("unterminated quote", file="leads.csv", row=1500)

    with pytest.raises(InvalidFile, match="file 'leads.csv', row 1500: unterminated quote"):
        load(engine, chunks(), update_policy="replace")
    assert records(engine) == before
    with engine.connect() as conn:
        assert conn.scalar(sa.select(sa.func.count()).select_from(CallingList)) == int(existing)
        assert conn.scalar(sa.select(sa.func.count()).select_from(ListImport)) == int(existing)


def _fail_on_key(engine: sa.Engine, key: str) -> None:
    """A trigger that makes the database refuse one record: a real error midway."""
    with engine.begin() as conn:
        if engine.dialect.name == "sqlite":
            conn.exec_driver_sql(
                "CREATE TRIGGER boom BEFORE INSERT ON list_records "
                f"WHEN NEW.record_key = '{key}' BEGIN SELECT RAISE(ABORT, 'injected failure'); END"
            )
        else:
            conn.exec_driver_sql(
                "CREATE OR REPLACE FUNCTION boom() RETURNS trigger AS $$ BEGIN "
                f"IF NEW.record_key = '{key}' THEN RAISE EXCEPTION 'injected failure'; END IF; "
                "RETURN NEW; END $$ LANGUAGE plpgsql"
            )
            conn.exec_driver_sql(
                "CREATE TRIGGER boom BEFORE INSERT ON list_records "
                "FOR EACH ROW EXECUTE FUNCTION boom()"
            )


def _drop_trigger(engine: sa.Engine) -> None:
    with engine.begin() as conn:
        if engine.dialect.name == "sqlite":
            conn.exec_driver_sql("DROP TRIGGER IF EXISTS boom")
        else:
            conn.exec_driver_sql("DROP TRIGGER IF EXISTS boom ON list_records")


@pytest.mark.parametrize("existing", [False, True], ids=["straight-path", "staged-path"])
def test_a_database_failure_midway_leaves_the_list_unchanged(
    engine: sa.Engine, existing: bool
) -> None:
    if existing:
        load(engine, [chunk(keys(3))])
    before = records(engine)
    _fail_on_key(engine, "X01500")
    try:
        data = [chunk(keys(1000, prefix="X")), chunk(keys(1000, start=1000, prefix="X"))]
        with pytest.raises(
            DatabaseError,
            match=r"loading file 'leads.csv' of calling list 'Spring Leads' in "
            r"(sqlite|postgresql)\S+ failed: \w+: injected failure",
        ):
            load(engine, data)
    finally:
        _drop_trigger(engine)
    assert records(engine) == before
    assert load(engine, data).loaded == 2000  # and nothing was left locked or half-done



# --- a killed process --------------------------------------------------------------------

_KILLED_LOAD = """
import sys, time
from pathlib import Path
import pandas as pd
from contact_center.storage.db import create_db_engine
from contact_center.storage.list_load import load_list_records
from contact_center.storage.list_options import ImportOptions
from contact_center.storage.list_results import SourceFile
from contact_center.parsing.record_fields import RECORD_FIELDS

url, marker = sys.argv[1], Path(sys.argv[2])

class Parsed:
    def __init__(self, start):
        keys = [f"K{i:06d}" for i in range(start, start + 5000)]
        frame = {"row": list(range(start + 2, start + 5002)), "record_key": keys}
        frame.update({f: None for f in RECORD_FIELDS})
        frame.update(account=keys, phone1=["+12127365000"] * 5000, custom_fields=None)
        self.valid = pd.DataFrame(frame).astype({"record_key": "string", "account": "string"})
        self.rejects = pd.DataFrame({"row": [], "reason": []})

def chunks():
    yield Parsed(0)
    yield Parsed(5000)
    marker.write_text("two chunks are in")
    time.sleep(120)
    yield Parsed(10000)

options = ImportOptions.from_parameters(
    list_name="Spring Leads", source="x.csv", update_policy="replace"
)
source = SourceFile("x.csv", "x.csv", "f" * 64, 1)
load_list_records(create_db_engine(url), chunks(), options, source)
"""


def test_a_killed_process_leaves_the_list_unchanged(
    engine: sa.Engine, db_url: str, tmp_path: Path
) -> None:
    load(engine, [chunk(keys(3))])
    before = records(engine)
    marker = tmp_path / "marker"
    script = tmp_path / "killed_load.py"
    script.write_text(_KILLED_LOAD)
    child = subprocess.Popen(
        [sys.executable, str(script), db_url, str(marker)],
        cwd=Path(__file__).parents[2],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 120
        while not marker.exists():
            assert child.poll() is None, child.communicate()[1].decode()
            assert time.monotonic() < deadline, "the load never got to its third chunk"
            time.sleep(0.1)
    finally:
        child.kill()
        child.communicate(timeout=30)  # also closes its pipes (no ResourceWarning)
    assert child.returncode == -signal.SIGKILL
    assert records(engine) == before
    with engine.connect() as conn:
        assert conn.scalar(sa.select(sa.func.count()).select_from(ListImport)) == 1
    # Nothing stays locked or half-written: the next import goes through.
    assert load(engine, [chunk(keys(4))]).loaded == 1
