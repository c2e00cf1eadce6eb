"""The Prefect UI in a real browser: one demo stack and one headless Chromium per module.

The browser is the distribution's Chromium (Debian's ``chromium`` package, installed by
``.ci/run``), driven by Playwright for Python through ``executable_path``: Playwright's
own browser builds are never downloaded. Without that binary, or without Playwright,
the tests skip with the reason.

Set ``CCTASKS_SCREENSHOTS_DIR`` (``make screenshots`` does) to save the pages the tests
check as the manual's pictures.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from support.stack_support import RunningStack, start_stack, stop_stack

#: Where the distribution installs Chromium (Debian's and Ubuntu's ``chromium``).
CHROMIUM = os.environ.get("CCTASKS_CHROMIUM", "/usr/bin/chromium")
VIEWPORT = {"width": 1440, "height": 900}


@pytest.fixture(scope="session", autouse=True)
def prefect_server() -> Iterator[None]:
    """No test harness: these tests talk to the stack they start."""
    yield


@pytest.fixture(scope="module")
def chromium() -> Iterator[Any]:
    """A headless Chromium of the distribution, through Playwright."""
    playwright_api = pytest.importorskip("playwright.sync_api", reason="Playwright not installed")
    executable = shutil.which(CHROMIUM) or CHROMIUM
    if not Path(executable).exists():
        pytest.skip(f"no Chromium at {CHROMIUM}: apt-get install -y chromium")
    with playwright_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=executable,
            headless=True,
            # No sandbox: CI runs as root. The rest keeps the browser from calling out.
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
            ],
        )
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def page(chromium: Any) -> Iterator[Any]:
    """A fresh browser page (its own profile) of a fixed size."""
    context = chromium.new_context(viewport=VIEWPORT, device_scale_factor=1)
    context.set_default_timeout(60_000)  # a loaded 2-core machine renders slowly
    try:
        yield context.new_page()
    finally:
        context.close()


@pytest.fixture(scope="module")
def demo_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningStack]:
    """``cctasks up`` on a free port: the demo deployed and its first runs done."""
    stack = start_stack(tmp_path_factory.mktemp("ui") / "home")
    try:
        yield stack
    finally:
        stop_stack(stack)  # kills what does not stop within a minute


@pytest.fixture(scope="session")
def screenshots_dir() -> Path | None:
    """Where to save the manual's pictures, when asked to."""
    folder = os.environ.get("CCTASKS_SCREENSHOTS_DIR")
    return Path(folder) if folder else None
