"""The ``max_removed_ratio`` gate: a ``replace`` may not wipe most of a calling list or an
exclusion list unless ``force``. The load and the flows, on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import pytest
import sqlalchemy as sa
from prefect.client.schemas.objects import State
from prefect.exceptions import ParameterTypeError
from prefect.settings import PREFECT_FLOWS_HEARTBEAT_FREQUENCY, temporary_settings
from support.list_load_support import chunk, keys, load, records
from test_calling_list_import import MAPPING, recorded_outcome, write_csv

from contact_center.exceptions import QualityGateFailed
from contact_center.storage.list_options import ImportOptions
from contact_center.storage.models import Exclusion, ExclusionImport, ExclusionList, ListImport
from flows.calling_list_import import import_calling_list
from flows.exclusion_import import import_exclusions

GATE = (
    r"quality gate max_removed_ratio: file '{file}' would remove 990 of the 1000 {unit} of "
    r"{target} \(99\.0% > 50\.0%\); {target} was not changed \(force: true replaces it anyway\)"
)


@pytest.fixture(autouse=True)
def _fast_flows() -> Iterator[None]:
    """No heartbeat wait per sync flow call."""
    with temporary_settings(updates={PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None}):
        yield


def count(engine: sa.Engine, table: Any) -> int:
    with engine.connect() as conn:
        return int(conn.scalar(sa.select(sa.func.count()).select_from(table)) or 0)


# --- calling lists ----------------------------------------------------------------------


def test_a_replace_may_not_wipe_a_calling_list(engine: sa.Engine) -> None:
    load(engine, [chunk(keys(1000))])
    before = records(engine)
    target = "calling list 'Spring Leads'"
    with pytest.raises(
        QualityGateFailed, match=GATE.format(file="leads.csv", unit="records", target=target)
    ):
        load(engine, [chunk(keys(10))], update_policy="replace")
    assert records(engine) == before  # every field of every record, as it was
    assert count(engine, ListImport) == 1
    # Under the ratio a replace passes: 400 of 1000 go (40% <= 50%).
    kept = load(engine, [chunk(keys(600))], update_policy="replace")
    assert (kept.removed, kept.unchanged, len(records(engine))) == (400, 600, 600)
    # A stricter gate stops that one too; a looser one (or force) lets more go.
    with pytest.raises(QualityGateFailed, match=r"remove 100 of the 600 records .*16\.7% > 10\.0%"):
        load(engine, [chunk(keys(500))], update_policy="replace", max_removed_ratio=0.1)
    assert load(engine, [chunk(keys(500))], update_policy="replace", max_removed_ratio=1).removed
    forced = load(engine, [chunk(keys(10))], update_policy="replace", force=True)
    assert (forced.removed, sorted(records(engine))) == (490, [f"A{i:05d}" for i in range(10)])


def test_the_gate_parameter_is_checked_up_front() -> None:
    base = {"list_name": "L", "source": "x.csv", "update_policy": "replace"}
    assert ImportOptions.from_parameters(**base).max_removed_ratio == 0.5
    assert ImportOptions.from_parameters(**base, max_removed_ratio=0).max_removed_ratio == 0.0
    # The flows' types refuse a bad ratio or force before a run starts.
    for bad in (1.5, -0.1, "half", True):
        with pytest.raises(ParameterTypeError, match="max_removed_ratio: Input should be"):
            import_calling_list.validate_parameters({**base, "max_removed_ratio": bad})
    exclusion = {"exclusion_list": "dnc", "source": "dnc.csv", "update_policy": "replace"}
    with pytest.raises(ParameterTypeError, match="max_removed_ratio: Input should be less"):
        import_exclusions.validate_parameters({**exclusion, "max_removed_ratio": 2})
    with pytest.raises(ParameterTypeError, match="force: Input should be a valid boolean"):
        import_exclusions.validate_parameters({**exclusion, "force": "yes"})


def _rows(count: int) -> list[list[str]]:
    return [[f"K{i:05d}", "Ann", f"212736{i:04d}", "", "", ""] for i in range(count)]


def test_the_list_flow_reports_the_gate_in_its_outcome(
    engine: sa.Engine, sshd: Any, sftp_block: str
) -> None:
    path = write_csv(sshd.home / "gate-replace" / "leads.csv", _rows(1000))
    source = f"sftp://{sftp_block}/gate-replace/leads.csv"

    def run(**parameters: Any) -> State:
        return cast(
            State,
            import_calling_list(
                "Spring Leads", source, mapping=MAPPING, return_state=True, **parameters
            ),
        )

    assert run().is_completed()
    before = records(engine)
    write_csv(path, _rows(10))
    state = run(update_policy="replace")
    target = "calling list 'Spring Leads'"
    assert state.is_failed() and "max_removed_ratio" in (state.message or "")
    outcome = recorded_outcome(state)
    assert outcome.status == "failed" and (outcome.message or "").startswith("QualityGateFailed")
    assert "would remove 990 of the 1000 records" in (outcome.message or "")
    assert target in (outcome.message or "") and outcome.removed == 0
    assert records(engine) == before
    forced = run(update_policy="replace", force=True)
    assert forced.is_completed() and recorded_outcome(forced).removed == 990
    assert len(records(engine)) == 10


# --- exclusion lists ------------------------------------------------------------------


def exclusions(engine: sa.Engine) -> list[tuple[Any, ...]]:
    table = Exclusion.__table__
    with engine.connect() as conn:
        return [tuple(r) for r in conn.execute(sa.select(table).order_by(table.c.key_value))]


def _keys_file(folder: Path, name: str, count: int) -> str:
    folder.mkdir(parents=True, exist_ok=True)
    lines = ["account", *(f"K{i:05d}" for i in range(count))]
    (folder / name).write_text("\n".join(lines) + "\n")
    return str(folder / name)


def test_a_replace_may_not_wipe_an_exclusion_list(engine: sa.Engine, tmp_path: Path) -> None:
    folder = tmp_path / "dnc"
    import_exclusions("dnc", source=_keys_file(folder, "all.csv", 1000))
    before = exclusions(engine)
    short = _keys_file(folder, "short.csv", 10)
    state = cast(
        State, import_exclusions("dnc", source=short, update_policy="replace", return_state=True)
    )
    assert state.is_failed()
    target = "exclusion list 'dnc'"
    message = GATE.format(file="short.csv", unit="keys", target=target)
    with pytest.raises(QualityGateFailed, match=message):
        state.result()
    outcome = recorded_outcome(state)
    assert outcome.status == "failed" and "max_removed_ratio" in (outcome.message or "")
    assert exclusions(engine) == before and count(engine, ExclusionImport) == 1
    # Under the ratio a replace passes; with force a larger one too.
    kept = import_exclusions(
        "dnc", source=_keys_file(folder, "most.csv", 600), update_policy="replace"
    )
    assert (kept.removed, kept.updated, len(exclusions(engine))) == (400, 600, 600)
    forced = import_exclusions("dnc", source=short, update_policy="replace", force=True)
    assert forced.removed == 590 and len(exclusions(engine)) == 10
    assert count(engine, ExclusionList) == 1
