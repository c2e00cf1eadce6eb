"""Reading Prefect's run history: flows, deployments, runs and artifacts through one client.

The Task Log (:mod:`runlog.history`), the Scheduled view (:mod:`runlog.planned`,
:mod:`runlog.triggered`) and ``cctasks run --watch`` (:mod:`runlog.runs`) share this
machinery. A query is a :class:`Query` (the filters common to all its branches) and one or
more branches (:class:`Branch`, one server-side read each); the server filters and sorts, and
only a branch's ``keep`` check runs here.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from prefect.client.orchestration import SyncPrefectClient
from prefect.client.schemas.filters import (
    ArtifactFilter,
    ArtifactFilterFlowRunId,
    ArtifactFilterKey,
    ArtifactFilterType,
    DeploymentFilter,
    DeploymentFilterId,
    DeploymentFilterName,
    FlowFilter,
    FlowFilterId,
    FlowFilterName,
    FlowRunFilter,
    FlowRunFilterDeploymentId,
    FlowRunFilterExpectedStartTime,
    FlowRunFilterName,
    FlowRunFilterParentTaskRunId,
    FlowRunFilterStartTime,
    FlowRunFilterState,
    FlowRunFilterStateType,
)
from prefect.client.schemas.objects import Artifact, FlowRun, StateType
from prefect.client.schemas.responses import DeploymentResponse
from prefect.client.schemas.sorting import ArtifactSort, FlowRunSort

from contact_center.settings import OUTCOME_ARTIFACT_KEY
from runlog.client import PAGE_SIZE
from runlog.mapping import (
    FLOW_TYPES,
    SKIPPED,
    error_of,
    flow_type,
    result_of,
    run_duration,
    size_kb,
)
from runlog.origins import started_by
from runlog.outcomes import RunFacts, run_facts
from runlog.rows import TaskLogRow
from runlog.text import clean

__all__ = ["Branch", "History", "Query", "as_text", "plain_utc"]

# A scan that filters client-side (object name) stops after this many runs.
MAX_SCAN_RUNS = 20_000


@dataclass
class Branch:
    """One server-side query; a view's rows are the union of its branches."""

    deployment_ids: list[UUID] | None = None
    names: list[str] | None = None
    name_like: str | None = None
    without_deployment: bool = False
    keep: Callable[[FlowRun], bool] | None = None


@dataclass
class Query:
    """The filters common to every branch."""

    flow_names: list[str] | None
    state_types: list[StateType]
    since: datetime | None = None
    until: datetime | None = None
    expected_before: datetime | None = None
    branches: list[Branch] = field(default_factory=lambda: [Branch()])


def _start_key(run: FlowRun) -> datetime:
    # Prefect's own start-time sort key: coalesce(start_time, expected_start_time).
    return run.start_time or run.expected_start_time or datetime.min.replace(tzinfo=UTC)


def _end_key(run: FlowRun) -> datetime:
    return run.end_time or datetime.min.replace(tzinfo=UTC)


class History:
    """Reads runs, flows, deployments and artifacts through one client."""

    def __init__(self, client: SyncPrefectClient) -> None:
        self.client = client
        self.flow_names: dict[UUID, str] = {}
        self.deployments: dict[UUID, DeploymentResponse] = {}
        self._ours_loaded = False

    # --- flows and deployments ----------------------------------------------------

    def load_our_flows(self) -> None:
        """Learn the ids of the five cctasks flows (one small read)."""
        if self._ours_loaded:
            return
        flows = self.client.read_flows(
            flow_filter=FlowFilter(name=FlowFilterName(any_=list(FLOW_TYPES))), limit=PAGE_SIZE
        )
        self.flow_names.update({f.id: f.name for f in flows})
        self._ours_loaded = True

    def learn_flows(self, runs: Iterable[FlowRun]) -> None:
        """Read the names of the runs' flows not seen yet (``--all`` shows other flows)."""
        self.learn_flow_ids(r.flow_id for r in runs)

    def learn_flow_ids(self, flow_ids: Iterable[UUID]) -> None:
        """Read the names of flows not seen yet."""
        missing = list(set(flow_ids) - set(self.flow_names))
        for chunk in _chunks(missing, PAGE_SIZE):
            flows = self.client.read_flows(
                flow_filter=FlowFilter(id=FlowFilterId(any_=chunk)), limit=PAGE_SIZE
            )
            self.flow_names.update({f.id: f.name for f in flows})

    def learn_deployments(self, runs: Iterable[FlowRun]) -> None:
        """Read the deployments of ``runs`` not seen yet."""
        wanted = {r.deployment_id for r in runs if r.deployment_id is not None}
        missing = list(wanted - set(self.deployments))
        for chunk in _chunks(missing, PAGE_SIZE):
            found = self.client.read_deployments(
                deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=chunk)),
                limit=PAGE_SIZE,
            )
            self.deployments.update({d.id: d for d in found})

    def our_deployments(self, flow_names: list[str]) -> list[DeploymentResponse]:
        """Every deployment of the given flows (a few dozen in a contact centre)."""
        found: list[DeploymentResponse] = []
        while True:
            page = self.client.read_deployments(
                flow_filter=FlowFilter(name=FlowFilterName(any_=flow_names)),
                limit=PAGE_SIZE,
                offset=len(found),
            )
            found.extend(page)
            if len(page) < PAGE_SIZE:
                break
        self.deployments.update({d.id: d for d in found})
        return found

    def find_deployments(self, task: str, flow_names: list[str] | None) -> list[DeploymentResponse]:
        """Deployments named ``task`` (``name`` or ``flow/name``) among ``flow_names``."""
        flow_part, _, dep_part = task.rpartition("/")
        flows = [flow_part] if flow_part else flow_names
        found = self.client.read_deployments(
            flow_filter=FlowFilter(name=FlowFilterName(any_=flows)) if flows else None,
            deployment_filter=DeploymentFilter(name=DeploymentFilterName(any_=[dep_part])),
            limit=PAGE_SIZE,
        )
        self.deployments.update({d.id: d for d in found})
        return found

    def deployment_names(self, flow_names: list[str] | None) -> list[str]:
        """``flow/deployment`` of every deployment, for error messages."""
        deps = self.our_deployments(flow_names or list(FLOW_TYPES))
        self.load_our_flows()
        return sorted(f"{self.flow_names.get(d.flow_id, '?')}/{d.name}" for d in deps)

    # --- runs ---------------------------------------------------------------------

    def _filters(self, query: Query, branch: Branch) -> tuple[FlowFilter | None, FlowRunFilter]:
        run_filter: dict[str, Any] = {
            "state": FlowRunFilterState(type=FlowRunFilterStateType(any_=query.state_types)),
            # A subflow is a step of a task, not a task.
            "parent_task_run_id": FlowRunFilterParentTaskRunId(is_null_=True),
        }
        if query.since or query.until:
            bounds = {"after_": query.since, "before_": query.until}
            run_filter["start_time"] = FlowRunFilterStartTime.model_validate(
                {k: v for k, v in bounds.items() if v is not None}
            )
        if query.expected_before:
            run_filter["expected_start_time"] = FlowRunFilterExpectedStartTime.model_validate(
                {"before_": query.expected_before}
            )
        if branch.deployment_ids is not None:
            run_filter["deployment_id"] = FlowRunFilterDeploymentId(any_=branch.deployment_ids)
        elif branch.without_deployment:
            run_filter["deployment_id"] = FlowRunFilterDeploymentId(is_null_=True)
        if branch.names is not None:
            run_filter["name"] = FlowRunFilterName(any_=branch.names)
        elif branch.name_like is not None:
            run_filter["name"] = FlowRunFilterName(like_=branch.name_like)
        flow_filter = (
            FlowFilter(name=FlowFilterName(any_=query.flow_names)) if query.flow_names else None
        )
        return flow_filter, FlowRunFilter(**run_filter)

    def pages(self, query: Query, branch: Branch, sort: FlowRunSort) -> Iterator[list[FlowRun]]:
        """Pages of runs in ``sort`` order, the branch's client-side check applied."""
        flow_filter, run_filter = self._filters(query, branch)
        offset = 0
        while offset < MAX_SCAN_RUNS:
            page = self.client.read_flow_runs(
                flow_filter=flow_filter,
                flow_run_filter=run_filter,
                sort=sort,
                limit=PAGE_SIZE,
                offset=offset,
            )
            offset += len(page)
            yield [r for r in page if branch.keep is None or branch.keep(r)]
            if len(page) < PAGE_SIZE:
                return

    def _first(self, query: Query, branch: Branch, sort: FlowRunSort, want: int) -> list[FlowRun]:
        if branch.keep is None and want <= PAGE_SIZE:
            # The common case: one read of exactly the rows needed.
            flow_filter, run_filter = self._filters(query, branch)
            return self.client.read_flow_runs(
                flow_filter=flow_filter, flow_run_filter=run_filter, sort=sort, limit=want
            )
        found: list[FlowRun] = []
        for page in self.pages(query, branch, sort):
            found.extend(page)
            if len(found) >= want:
                break
        return found[:want]

    def _oldest_ended(self, query: Query, branch: Branch, want: int) -> list[FlowRun]:
        # Prefect cannot sort by end time ascending. A run ends after it starts, so scan
        # by start time oldest-first and stop once the next run starts after the
        # want-th earliest end seen: no later run can end before it.
        found: list[FlowRun] = []
        for page in self.pages(query, branch, FlowRunSort.START_TIME_ASC):
            found.extend(page)
            if page and len(found) >= want:
                kth = sorted(_end_key(r) for r in found)[want - 1]
                if _start_key(page[-1]) >= kth:
                    break
        return sorted(found, key=_end_key)[:want]

    def runs(self, query: Query, order: str, want: int) -> list[FlowRun]:
        """The first ``want`` runs of every branch, merged in ``order``.

        ``order`` is one of start_desc, start_asc, end_desc, end_asc.
        """
        merged: dict[UUID, FlowRun] = {}
        for branch in query.branches:
            if order == "end_asc":
                runs = self._oldest_ended(query, branch, want)
            else:
                sort = {
                    "start_desc": FlowRunSort.START_TIME_DESC,
                    "start_asc": FlowRunSort.START_TIME_ASC,
                    "end_desc": FlowRunSort.END_TIME_DESC,
                }[order]
                runs = self._first(query, branch, sort, want)
            merged.update({r.id: r for r in runs})
        key = _end_key if order.startswith("end") else _start_key
        return sorted(merged.values(), key=key, reverse=order.endswith("desc"))[:want]

    # --- artifacts ----------------------------------------------------------------

    def _artifacts(self, run_ids: list[UUID], artifact_filter: ArtifactFilter) -> list[Artifact]:
        found: list[Artifact] = []
        for chunk in _chunks(run_ids, 100):
            run_filter = artifact_filter.model_copy(
                update={"flow_run_id": ArtifactFilterFlowRunId(any_=chunk)}
            )
            offset = 0
            while True:
                page = self.client.read_artifacts(
                    artifact_filter=run_filter,
                    sort=ArtifactSort.UPDATED_DESC,
                    limit=PAGE_SIZE,
                    offset=offset,
                )
                found.extend(page)
                offset += len(page)
                if len(page) < PAGE_SIZE:
                    break
        return found

    def outcome_facts(self, run_ids: list[UUID]) -> dict[UUID, RunFacts]:
        """Bytes, attempts and first error from each run's outcome artifacts."""
        if not run_ids:
            return {}
        return run_facts(
            self._artifacts(
                run_ids, ArtifactFilter(key=ArtifactFilterKey(any_=[OUTCOME_ARTIFACT_KEY]))
            )
        )

    def progress_artifacts(self, run_ids: list[UUID]) -> dict[UUID, Artifact]:
        """Each run's newest progress artifact (its percent and description)."""
        artifacts = self._artifacts(
            run_ids, ArtifactFilter(type=ArtifactFilterType(any_=["progress"]))
        )
        result: dict[UUID, Artifact] = {}
        for artifact in artifacts:
            if artifact.flow_run_id is not None and artifact.flow_run_id not in result:
                result[artifact.flow_run_id] = artifact
        return result

    def progress(self, run_ids: list[UUID]) -> dict[UUID, float]:
        """Each run's newest progress artifact, in percent."""
        return {
            run_id: float(artifact.data)
            for run_id, artifact in self.progress_artifacts(run_ids).items()
            if isinstance(artifact.data, int | float)
        }

    # --- rows -----------------------------------------------------------------------

    def describe(
        self, flow_id: UUID, deployment_id: UUID | None, run_params: dict[str, Any], name: str
    ) -> tuple[str, str, str, str, str]:
        """(flow name, type label, object, task name, step), without control characters.

        ``name`` is the task name when there is no deployment (the flow-run name).
        """
        flow_name = self.flow_names.get(flow_id, "")
        deployment = self.deployments.get(deployment_id) if deployment_id else None
        params = {**(deployment.parameters if deployment else {}), **run_params}
        ftype = flow_type(flow_name)
        object_name = as_text(params.get(ftype.object_param)) if ftype else ""
        step = as_text(params.get("step")) or (ftype.default_step if ftype else "")
        task_name = deployment.name if deployment else name
        label = ftype.label if ftype else flow_name
        return clean(flow_name), clean(label), clean(object_name), clean(task_name), clean(step)

    def _describe(self, run: FlowRun) -> tuple[str, str, str, str, str]:
        return self.describe(run.flow_id, run.deployment_id, run.parameters or {}, run.name)

    def log_row(self, run: FlowRun, facts: RunFacts | None) -> TaskLogRow:
        """The Task Log row of a finished run."""
        flow_name, label, object_name, task_name, step = self._describe(run)
        state_type = run.state.type.value if run.state else "FAILED"
        state_name = (run.state.name if run.state else None) or ""
        start = plain_utc(run.start_time or run.expected_start_time)
        end = plain_utc(run.end_time)
        result = result_of(state_type, state_name)
        attempts = max(run.run_count, facts.attempts if facts else 0)
        return TaskLogRow(
            start_time=start,
            end_time=end,
            object_name=object_name,
            task_name=task_name,
            duration=run_duration(plain_utc(run.start_time), end),
            size_kb=None if state_name == SKIPPED else size_kb(facts.bytes if facts else None),
            result=result,
            error=error_of(
                state_type,
                state_name,
                run.state.message if run.state else None,
                attempts,
                facts.first_error if facts else None,
            ),
            type=label,
            step=step,
            run_id=run.id,
            flow_name=flow_name,
            state=state_name,
            attempts=attempts,
            started_by=started_by(
                run.auto_scheduled,
                run.created_by.type if run.created_by else None,
                run.created_by.display_value if run.created_by else None,
                run.parameters or {},
            ),
        )

    def object_matcher(self, object_name: str) -> Callable[[FlowRun], bool]:
        """A client-side check that a run's object parameter is ``object_name``."""
        wanted = object_name.casefold()

        def keep(run: FlowRun) -> bool:
            ftype = flow_type(self.flow_names.get(run.flow_id, ""))
            if ftype is None:
                return False
            value = (run.parameters or {}).get(ftype.object_param)
            if value is None and run.deployment_id in self.deployments:
                value = self.deployments[run.deployment_id].parameters.get(ftype.object_param)
            return as_text(value).casefold() == wanted

        return keep


def plain_utc(value: datetime | None) -> datetime | None:
    """A standard-library UTC datetime (Prefect's are pendulum-based on Python < 3.13)."""
    if value is None:
        return None
    utc = value.astimezone(UTC)
    return datetime(
        utc.year, utc.month, utc.day, utc.hour, utc.minute, utc.second, utc.microsecond, UTC
    )


def as_text(value: Any) -> str:
    """A parameter value as text (``None`` is empty)."""
    return "" if value is None else str(value)


def _chunks(items: list[UUID], size: int) -> Iterator[list[UUID]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]
