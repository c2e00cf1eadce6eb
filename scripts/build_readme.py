"""Assemble README.md from the sections under docs/ (the README is generated; edit docs/).

Run: .venv/bin/python scripts/build_readme.py
"""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
SECTIONS = [
    "running.md",
    "architecture.md",
    "calling-list-import.md",
    "list-files.md",
    "exclusions.md",
    "campaign-trigger.md",
    "results-export.md",
    "report-execution.md",
    "task-log.md",
    "contracts.md",
    "development.md",
]


def section(name: str) -> str:
    """A docs file with its image links made relative to the repository root."""
    body = (DOCS / name).read_text().rstrip()
    return re.sub(r"\]\(images/", "](docs/images/", body)


def anchor(title: str) -> str:
    """GitHub's anchor for a heading."""
    return re.sub(r"[^\w\- ]", "", title.lower()).strip().replace(" ", "-")


def build() -> str:
    """The README's text."""
    body = "\n\n".join(section(name) for name in SECTIONS)
    titles = re.findall(r"^## (.+)$", body, flags=re.M)
    toc = "\n".join(["## Contents", ""] + [f"- [{t}](#{anchor(t)})" for t in titles])
    intro = (DOCS / "intro.md").read_text().rstrip()
    return f"{intro}\n\n{toc}\n\n{body}\n"


if __name__ == "__main__":
    (ROOT / "README.md").write_text(build())
