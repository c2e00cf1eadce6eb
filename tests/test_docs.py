"""The README stays a short front door, and no link of the manual points nowhere."""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

PROJECT = Path(__file__).resolve().parents[1]
README_MAX_LINES = 300
# [text](target) and ![alt](target), outside inline code.
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")
FENCE = re.compile(r"^```.*?^```", flags=re.M | re.S)
CODE = re.compile(r"`[^`\n]*`")


@pytest.fixture(scope="session", autouse=True)
def prefect_server() -> Iterator[None]:
    """No Prefect server: these tests read files."""
    yield


def _pages() -> list[Path]:
    return [PROJECT / "README.md", *sorted((PROJECT / "docs").glob("*.md"))]


def _anchor(heading: str) -> str:
    """GitHub's anchor for a heading."""
    text = CODE.sub(lambda m: m.group(0).strip("`"), heading.strip().lower())
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def _anchors(page: Path) -> set[str]:
    body = FENCE.sub("", page.read_text(encoding="utf-8"))
    return {_anchor(h) for h in re.findall(r"^#+ (.+)$", body, flags=re.M)}


def _links(page: Path) -> list[str]:
    body = CODE.sub("", FENCE.sub("", page.read_text(encoding="utf-8")))
    return [t for t in LINK.findall(body) if not re.match(r"[a-z]+:", t)]


def test_readme_is_at_most_300_lines() -> None:
    lines = (PROJECT / "README.md").read_text(encoding="utf-8").splitlines()
    assert len(lines) <= README_MAX_LINES, f"README.md has {len(lines)} lines"


@pytest.mark.parametrize("page", _pages(), ids=lambda p: p.name)
def test_every_relative_link_resolves(page: Path) -> None:
    broken = []
    for target in _links(page):
        path, _, fragment = target.partition("#")
        resolved = (page.parent / path).resolve() if path else page
        if not resolved.exists() or not resolved.is_relative_to(PROJECT):
            broken.append(target)
        elif fragment and resolved.suffix == ".md" and fragment not in _anchors(resolved):
            broken.append(target)
    assert not broken, f"{page.relative_to(PROJECT)}: links that resolve to nothing: {broken}"


def test_nothing_names_files_outside_the_repository() -> None:
    """The project stands alone: no document, configuration or source file points at a
    relative path above the repository. (The tests are left out: the confinement tests
    name such paths on purpose, as a hostile parameter would.)"""
    tracked = subprocess.run(
        ["git", "ls-files"], cwd=PROJECT, capture_output=True, text=True, check=True
    ).stdout.split()
    upward = re.compile(r"(?:\.\./)+[A-Za-z_][\w.-]*")
    found = []
    for name_in in tracked:
        path = PROJECT / name_in
        if name_in.startswith("tests/") or not path.is_file():
            continue
        for match in upward.finditer(path.read_text(encoding="utf-8", errors="replace")):
            target = Path(os.path.normpath(path.parent / match.group()))
            if not target.is_relative_to(PROJECT):
                found.append(f"{name_in}: {match.group()}")
    assert not found, found
