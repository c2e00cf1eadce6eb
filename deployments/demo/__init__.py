"""The demo contact centre that ``cctasks up`` deploys and seeds.

- :mod:`deployments.demo.centre`: its campaigns, lists and Do-Not-Call list;
- :mod:`deployments.demo.files`: the files it drops into ``<CCTASKS_HOME>/drop``;
- :mod:`deployments.demo.seed`: the database rows and the first runs.
"""

from deployments.demo.centre import CAMPAIGNS, DNC_LIST, LISTS
from deployments.demo.files import write_demo_files
from deployments.demo.seed import (
    FIRST_RUNS,
    LATER_RUNS,
    DemoRun,
    RunReport,
    run_once,
    seed_campaigns,
    seed_results,
)

__all__ = [
    "CAMPAIGNS",
    "DNC_LIST",
    "FIRST_RUNS",
    "LATER_RUNS",
    "LISTS",
    "DemoRun",
    "RunReport",
    "run_once",
    "seed_campaigns",
    "seed_results",
    "write_demo_files",
]
