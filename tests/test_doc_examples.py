"""The task examples in the README and the manual are valid tasks: each YAML deployment's
entrypoint loads, and its parameters, with each schedule's own, pass the flow's typed
parameters as Prefect checks them when a run is created."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from prefect.flows import load_flow_from_entrypoint

PROJECT = Path(__file__).resolve().parents[1]
PAGES = [PROJECT / "README.md", *sorted((PROJECT / "docs").glob("*.md"))]
FENCE = re.compile(r"```ya?ml\n(.*?)```", re.DOTALL)


def _examples() -> list[Any]:
    """The entrypoint and parameters of every whole deployment shown in YAML, once per
    schedule or trigger."""
    found = []
    for page in PAGES:
        for block in FENCE.findall(page.read_text(encoding="utf-8")):
            if "..." in block:
                continue  # an excerpt of a task, which elides the rest
            try:
                loaded = yaml.safe_load(block)
            except yaml.YAMLError:
                continue  # a fragment (`...`), not a whole document
            items = loaded.get("deployments", []) if isinstance(loaded, dict) else loaded
            for item in items if isinstance(items, list) else []:
                if isinstance(item, dict) and "entrypoint" in item:
                    base = item.get("parameters") or {}
                    # each schedule's and each trigger's parameters go on top of them
                    variants = [
                        s.get("parameters") or {}
                        for key in ("schedules", "triggers")
                        for s in (item.get(key) if isinstance(item.get(key), list) else [])
                        if isinstance(s, dict)
                    ]
                    for extra in variants or [{}]:
                        found.append(pytest.param(
                            item["entrypoint"], {**base, **extra},
                            id=f"{page.name}:{item.get('name')}:{sorted(extra.items())}",
                        ))
    return found


EXAMPLES = _examples()


def test_the_readme_shows_every_task_type() -> None:
    entrypoints = {p.values[0] for p in EXAMPLES if p.id.startswith("README.md:")}
    assert len(entrypoints) == 5, entrypoints


@pytest.mark.parametrize(("entrypoint", "parameters"), EXAMPLES)
def test_the_example_is_a_valid_task(entrypoint: str, parameters: dict[str, Any]) -> None:
    flow = load_flow_from_entrypoint(str(PROJECT / entrypoint))
    flow.validate_parameters(parameters)  # raises ParameterTypeError on a bad name or value
