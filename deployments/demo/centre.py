"""The demo contact centre: its campaigns, calling lists and Do-Not-Call list.

``prefect.yaml`` deploys the tasks of exactly this centre;
``tests/deployments/test_stack_setup.py`` checks that the two agree.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "CAMPAIGNS",
    "DNC_FILE",
    "DNC_LIST",
    "LISTS",
    "RESULTS_DAYS",
    "RESULTS_PER_CAMPAIGN",
    "DemoCampaign",
    "DemoList",
]


@dataclass(frozen=True)
class DemoList:
    """A calling list and the file in the drop folder that feeds it.

    Attributes:
        name: the list's name (the import's object).
        file: the file name under ``<CCTASKS_HOME>/drop/lists/``.
        rows: how many data rows the file has (a few of them are rejected on purpose).
        delimiter: the file's delimiter (the import detects it).
        seed: the random seed of its content.
    """

    name: str
    file: str
    rows: int
    delimiter: str
    seed: int


@dataclass(frozen=True)
class DemoCampaign:
    """An outbound campaign, its time zone and its lists."""

    name: str
    time_zone: str
    lists: tuple[str, ...]
    exclusion_lists: tuple[str, ...]


SPRING_LEADS = DemoList("Spring Leads", "spring_leads.csv", rows=400, delimiter=",", seed=11)
RETENTION = DemoList("Retention Q2", "retention_q2.csv", rows=250, delimiter=";", seed=12)
LISTS: tuple[DemoList, ...] = (SPRING_LEADS, RETENTION)

#: The Do-Not-Call list (Record Exclusion type, matched by account).
DNC_LIST = "Company DNC"
DNC_FILE = "company_dnc.csv"

CAMPAIGNS: tuple[DemoCampaign, ...] = (
    DemoCampaign("Spring Sales", "America/New_York", (SPRING_LEADS.name,), (DNC_LIST,)),
    DemoCampaign("Retention West", "America/Los_Angeles", (RETENTION.name,), (DNC_LIST,)),
)

#: Campaign results (call attempts) written per campaign over the last days, so that
#: the export and the reports have data from the first start.
RESULTS_PER_CAMPAIGN = 1500
RESULTS_DAYS = 7
