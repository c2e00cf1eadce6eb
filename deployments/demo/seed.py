"""Seeding the demo contact centre: campaigns, lists, the DNC list, results and first runs.

Every step checks first what is there, so a restart adds nothing:

1. :func:`seed_campaigns`: the campaigns, their calling lists and the DNC list
   (domain helpers of :mod:`contact_center.storage.campaigns`; existing rows are kept).
2. The demo files go into the drop folders (:mod:`deployments.demo.files`).
3. :func:`run_once`: the import deployments run once, ad hoc, through the worker,
   exactly as a user's run would (so the task log shows completed runs at once). A
   deployment that has completed a run before is not run again.
4. :func:`seed_results`: campaign results (call attempts) over the last days for the
   campaigns that have none, so that the export and the reports have data.
5. :func:`run_once` again for the export, a report and a campaign start.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import sqlalchemy as sa
from prefect import get_client
from prefect.client.orchestration import SyncPrefectClient
from prefect.client.schemas.filters import (
    DeploymentFilter,
    DeploymentFilterId,
    FlowRunFilter,
    FlowRunFilterState,
    FlowRunFilterStateType,
)
from prefect.client.schemas.objects import StateType
from prefect.exceptions import ObjectNotFound as PrefectObjectNotFound
from sqlalchemy.engine import Engine

from contact_center.exceptions import ObjectNotFound
from contact_center.storage.campaigns import ensure_campaign, link_exclusion_list, link_list
from contact_center.storage.models import CallAttempt, Campaign
from deployments.demo.attempts import generate_call_attempts
from deployments.demo.centre import CAMPAIGNS, RESULTS_DAYS, RESULTS_PER_CAMPAIGN

__all__ = [
    "FIRST_RUNS",
    "LATER_RUNS",
    "DemoRun",
    "RunReport",
    "run_once",
    "seed_campaigns",
    "seed_results",
]

SEED_TAG = "demo-seed"
RUN_TIMEOUT_SECONDS = 300.0
_FINAL = {StateType.COMPLETED, StateType.FAILED, StateType.CRASHED, StateType.CANCELLED}


@dataclass(frozen=True)
class DemoRun:
    """An ad-hoc run of a deployment of ``prefect.yaml``.

    Attributes:
        deployment: ``<flow name>/<deployment name>``.
        parameters: overrides of the deployment's parameters.
    """

    deployment: str
    parameters: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class RunReport:
    """How a demo run ended (or that it was not needed)."""

    deployment: str
    state: str
    message: str = ""
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        """Whether the run completed, or had completed before.

        A skipped import counts: the file sensor may have imported the demo file a
        moment before (same checksum), so the list is loaded either way.
        """
        return self.state in ("Completed", "Skipped", "done before")


#: The first start fills the lists: the DNC list first, so that the list imports scrub it.
FIRST_RUNS: tuple[tuple[DemoRun, ...], ...] = (
    (DemoRun("import-exclusions/company-dnc"),),
    (
        DemoRun("import-calling-list/spring-leads-import"),
        DemoRun("import-calling-list/retention-q2-import"),
    ),
)

#: Once there are results: one run of each remaining type.
LATER_RUNS: tuple[DemoRun, ...] = (
    DemoRun("campaign-trigger/spring-sales-hours", {"step": "start"}),
    DemoRun("export-campaign-results/spring-sales-results"),
    DemoRun("run-report/daily-campaign-summary"),
)


def seed_campaigns(engine: Engine) -> None:
    """Create the demo campaigns and link their lists and DNC lists (idempotent)."""
    for campaign in CAMPAIGNS:
        ensure_campaign(engine, campaign.name, time_zone=campaign.time_zone)
        for list_name in campaign.lists:
            link_list(engine, campaign.name, list_name)
        for exclusion_list in campaign.exclusion_lists:
            link_exclusion_list(engine, campaign.name, exclusion_list)


def _attempt_count(engine: Engine, campaign: str) -> int:
    attempts, campaigns = CallAttempt.__table__, Campaign.__table__
    query = (
        sa.select(sa.func.count())
        .select_from(attempts.join(campaigns, attempts.c.campaign_id == campaigns.c.id))
        .where(campaigns.c.name == campaign)
    )
    with engine.connect() as conn:
        return int(conn.execute(query).scalar_one())


def seed_results(engine: Engine, now: datetime | None = None) -> dict[str, int]:
    """Write call attempts over the last days for each demo campaign that has none.

    Returns:
        Campaign -> attempts written now (0 for a campaign that had results).

    Raises:
        CampaignStateError: a campaign's lists hold no records (the imports failed).
    """
    end = (now or datetime.now(UTC)).replace(microsecond=0)
    written: dict[str, int] = {}
    for seed, campaign in enumerate(CAMPAIGNS, start=1):
        if _attempt_count(engine, campaign.name):
            written[campaign.name] = 0
            continue
        written[campaign.name] = generate_call_attempts(
            engine,
            campaign.name,
            count=RESULTS_PER_CAMPAIGN,
            seed=seed,
            start=end - timedelta(days=RESULTS_DAYS),
            end=end,
        )
    return written


def _completed_before(client: SyncPrefectClient, deployment_id: UUID) -> bool:
    runs = client.read_flow_runs(
        deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=[deployment_id])),
        flow_run_filter=FlowRunFilter(
            state=FlowRunFilterState(type=FlowRunFilterStateType(any_=[StateType.COMPLETED]))
        ),
        limit=1,
    )
    return bool(runs)


def run_once(
    runs: Sequence[DemoRun],
    *,
    timeout: float = RUN_TIMEOUT_SECONDS,
    on_done: Callable[[RunReport], None] | None = None,
) -> list[RunReport]:
    """Run each deployment ad hoc unless it completed a run before; wait for them all.

    The runs go through the work pool like any other, so a worker must be polling.

    Args:
        runs: the deployments to run (at once).
        timeout: seconds to wait for all of them to end.
        on_done: called with each report as its run ends.

    Returns:
        One report per run, in the order of ``runs``.
    """
    reports: dict[str, RunReport] = {}
    waiting: dict[UUID, tuple[str, float]] = {}
    with get_client(sync_client=True) as client:
        for run in runs:
            try:
                deployment = client.read_deployment_by_name(run.deployment)
            except PrefectObjectNotFound:
                raise ObjectNotFound(
                    f"the demo deployment {run.deployment!r} is not deployed; "
                    "is it in prefect.yaml?"
                ) from None
            if _completed_before(client, deployment.id):
                reports[run.deployment] = RunReport(run.deployment, "done before")
                if on_done:
                    on_done(reports[run.deployment])
                continue
            flow_run = client.create_flow_run_from_deployment(
                deployment.id, parameters=run.parameters, tags=[SEED_TAG]
            )
            waiting[flow_run.id] = (run.deployment, time.monotonic())
        deadline = time.monotonic() + timeout
        while waiting and time.monotonic() < deadline:
            time.sleep(1.0)
            for run_id, (name, started) in list(waiting.items()):
                state = client.read_flow_run(run_id).state
                if state is None or state.type not in _FINAL:
                    continue
                del waiting[run_id]
                reports[name] = RunReport(
                    name, state.name or state.type.value, state.message or "",
                    time.monotonic() - started,
                )
                if on_done:
                    on_done(reports[name])
        for name, _started in waiting.values():
            reports[name] = RunReport(name, "Timed out", f"not finished after {timeout:.0f} s")
            if on_done:
                on_done(reports[name])
    return [reports[run.deployment] for run in runs]
