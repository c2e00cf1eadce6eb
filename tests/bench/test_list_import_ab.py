"""The paired A/B's pure parts: the variants it is given and the ratios it reports."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from bench.list_import_ab import Variant, pair_ratios, report


def test_variants_are_a_name_a_tree_and_an_optional_zone_flag(tmp_path: Path) -> None:
    assert Variant.parse(f"base={tmp_path}") == Variant("base", tmp_path.resolve(), None)
    zoned = Variant.parse(f"z={tmp_path}:zones")
    assert zoned.zones is True
    assert "timezone_precedence" not in zoned.params(1000)
    plain = Variant.parse(f"n={tmp_path}:no-zones")
    assert plain.params(1000)["timezone_precedence"] == []
    assert plain.params(1000)["source"].endswith("/leads_1000.csv")
    for bad in ("base", f"={tmp_path}", f"x={tmp_path}:sometimes"):
        with pytest.raises(argparse.ArgumentTypeError):
            Variant.parse(bad)


def _run(round_: int, series: str, variant: str, seconds: float) -> dict[str, object]:
    return {"round": round_, "series": series, "variant": variant, "seconds": seconds}


RUNS = [
    _run(1, "pg", "base", 10.0),
    _run(1, "pg", "new", 11.0),
    _run(2, "pg", "new", 6.0),
    _run(2, "pg", "base", 5.0),
    _run(3, "pg", "base", 8.0),  # the other variant of round 3 failed: no pair
    _run(1, "sqlite", "base", 4.0),
    _run(1, "sqlite", "new", 2.0),
]


def test_ratios_pair_the_runs_of_one_round_and_series() -> None:
    assert pair_ratios(RUNS, "pg", "seconds", "new", "base") == [1.1, 1.2]
    assert pair_ratios(RUNS, "sqlite", "seconds", "new", "base") == [0.5]
    assert pair_ratios(RUNS, "update", "seconds", "new", "base") == []


def test_the_report_gives_medians_and_the_median_ratio_to_the_first_variant() -> None:
    lines = report(RUNS, ["base", "new"])
    pg = lines[lines.index("== pg") + 1]
    assert "base 8.00" in pg and "new 8.50" in pg
    assert "new/base 1.150 (1.10, 1.20)" in pg
    sqlite = lines[lines.index("== sqlite") + 1]
    assert "new/base 0.500 (0.50)" in sqlite
