"""The dependency rule: the import-linter contracts in pyproject.toml hold.

A module that imports across the rule (a flow importing the views, pure parsing
importing storage, the domain importing Prefect) fails this test, not only `make lint`.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def lint_imports() -> subprocess.CompletedProcess[str]:
    command = shutil.which("lint-imports", path=str(Path(sys.executable).parent))
    if command is None:
        pytest.skip("import-linter is not installed (it is in the dev extra: make install)")
    return subprocess.run(
        [command, "--no-cache"], cwd=ROOT, capture_output=True, text=True, timeout=300
    )


def test_the_contracts_hold() -> None:
    result = lint_imports()
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


def test_a_broken_rule_is_caught(tmp_path: Path) -> None:
    """The contracts do bite: a copy of the project where parsing imports storage fails."""
    for name in ("pyproject.toml", "cli", "deployments", "tasklog", "flows", "runlog", "blocks"):
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(source, tmp_path / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy(source, tmp_path / name)
    shutil.copytree(
        ROOT / "contact_center",
        tmp_path / "contact_center",
        ignore=shutil.ignore_patterns("__pycache__"),
    )
    names = tmp_path / "contact_center" / "parsing" / "names.py"
    names.write_text(names.read_text() + "\nfrom contact_center.storage import models  # noqa\n")
    command = shutil.which("lint-imports", path=str(Path(sys.executable).parent))
    if command is None:
        pytest.skip("import-linter is not installed (it is in the dev extra: make install)")
    result = subprocess.run(
        [command, "--no-cache"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        env={"PYTHONPATH": str(tmp_path), "PATH": "/usr/bin:/bin"},
    )
    assert result.returncode != 0
    assert "Pure parsing touches no database BROKEN" in result.stdout
    assert "contact_center.parsing.names -> contact_center.storage" in result.stdout
