"""What a run's outcome artifacts tell the views: bytes, attempts, the first error.

Every attempt of a run records one ``cctasks-outcome`` table artifact (see
``flows/common/outcome.py``): a run retried by Prefect as a whole has several. The
newest tells the run's bytes and the tries of its retrying step; for a flow
retried as a whole, the oldest failed one tells why its first attempt failed.
The views read these for the rows they show only, with one query per page.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from prefect.client.schemas.objects import Artifact

from contact_center.outcome import Outcome

__all__ = ["RunFacts", "outcome_of", "run_facts"]


@dataclass(frozen=True)
class RunFacts:
    """What a run's outcome artifacts say.

    Attributes:
        outcome: the newest outcome (the run's last attempt).
        bytes: its bytes (the Size column), if it recorded them.
        attempts: the tries it counted (0 when it did not say).
        first_error: why the first try failed, when a try was retried.
    """

    outcome: Outcome | None
    bytes: int | None
    attempts: int
    first_error: str | None


def outcome_of(data: Any) -> Outcome | None:
    """The outcome in a table artifact's data (a JSON list of one row), if readable."""
    try:
        rows = json.loads(data) if isinstance(data, str) else data
        row = rows[0] if isinstance(rows, list) else rows
        return Outcome.from_row(row) if isinstance(row, dict) else None
    except (ValueError, TypeError, KeyError, IndexError):
        return None


def _bytes_of(data: Any) -> int | None:
    try:
        rows = json.loads(data) if isinstance(data, str) else data
        value = rows[0]["bytes"] if isinstance(rows, list) else rows["bytes"]
        return int(value)
    except (ValueError, TypeError, KeyError, IndexError):
        return None


def run_facts(artifacts: Iterable[Artifact]) -> dict[UUID, RunFacts]:
    """Each run's facts, from its outcome artifacts given newest first."""
    by_run: dict[UUID, list[Artifact]] = {}
    for artifact in artifacts:
        if artifact.flow_run_id is not None:
            by_run.setdefault(artifact.flow_run_id, []).append(artifact)
    facts: dict[UUID, RunFacts] = {}
    for run_id, found in by_run.items():
        newest = outcome_of(found[0].data)
        first_error = newest.first_error if newest else None
        if first_error is None and len(found) > 1:
            # A flow retried as a whole: its oldest failed attempt says why.
            for artifact in reversed(found[1:]):
                earlier = outcome_of(artifact.data)
                if earlier is not None and earlier.status == "failed" and earlier.message:
                    first_error = earlier.message
                    break
        facts[run_id] = RunFacts(
            outcome=newest,
            bytes=_bytes_of(found[0].data),
            attempts=max(newest.attempts if newest else 0, len(found)),
            first_error=first_error,
        )
    return facts
