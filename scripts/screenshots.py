"""Screenshots of the Prefect UI's deployments and runs pages, for the README.

Run it against a running stack (``make up`` in another terminal)::

    .venv/bin/python scripts/screenshots.py                 # the stack of ./.cctasks
    .venv/bin/python scripts/screenshots.py --url http://127.0.0.1:4300

It drives headless Chromium (Debian's ``chromium`` package: ``apt-get install -y
chromium``) with a fresh profile and no background traffic, waits for each page to
load its data, writes ``docs/images/ui-deployments.png`` and ``docs/images/ui-runs.png``,
and refuses a result that looks like an error page or a blank one.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import httpx
from PIL import Image

PROJECT = Path(__file__).resolve().parents[1]
#: file -> (page, window height): the runs page lists its runs below a chart.
PAGES = {"ui-deployments.png": ("/deployments", 900), "ui-runs.png": ("/runs", 1200)}
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-default-apps",
    "--hide-scrollbars",
    "--force-device-scale-factor=1",
]
MIN_COLOURS = 40  # an error page or a blank one has a handful


def default_url() -> str:
    """The UI of the stack this shell points at, else of ``.cctasks/env``, else :4200."""
    api = os.environ.get("PREFECT_API_URL")
    env_file = PROJECT / ".cctasks" / "env"
    if not api and env_file.exists():
        for line in env_file.read_text().splitlines():
            if line.startswith("export PREFECT_API_URL="):
                api = line.split("=", 1)[1].strip("'\"")
    return (api or "http://127.0.0.1:4200/api").removesuffix("/api")


def find_chromium(given: str | None) -> str:
    """The Chromium binary to use."""
    for candidate in (given, "chromium", "chromium-browser", "google-chrome"):
        if candidate and (path := shutil.which(candidate)):
            return path
    sys.exit("error: Chromium not found; install it with `apt-get install -y chromium`")


def check_server(url: str) -> None:
    """Fail with a clear message unless the stack answers."""
    try:
        response = httpx.get(f"{url}/api/health", timeout=5)
    except httpx.HTTPError as exc:
        sys.exit(f"error: no Prefect server at {url} ({exc}); start one with `make up`")
    if response.status_code != 200:
        sys.exit(f"error: {url}/api/health answered {response.status_code}")


def shoot(chromium: str, url: str, target: Path, width: int, height: int, wait_ms: int) -> None:
    """One screenshot of ``url`` into ``target``, with a throwaway profile."""
    with tempfile.TemporaryDirectory(prefix="cctasks-chromium-") as profile:
        command = [
            chromium,
            *CHROMIUM_FLAGS,
            f"--user-data-dir={profile}",
            f"--window-size={width},{height}",
            # Let the single-page app fetch and render its data before the shot.
            f"--virtual-time-budget={wait_ms}",
            f"--screenshot={target}",
            url,
        ]
        done = subprocess.run(command, capture_output=True, text=True, timeout=180, check=False)
    if done.returncode != 0 or not target.exists():
        sys.exit(
            f"error: chromium failed on {url} (exit {done.returncode}):\n{done.stderr[-2000:]}"
        )


def check_image(path: Path) -> int:
    """The number of colours in the screenshot; exits when it looks blank."""
    with Image.open(path) as image:
        colours = image.convert("RGB").getcolors(maxcolors=1 << 20)
    count = len(colours) if colours else 1 << 20
    if count < MIN_COLOURS:
        sys.exit(f"error: {path} has only {count} colours: a blank or error page?")
    return count


def main(argv: list[str] | None = None) -> int:
    """Take the screenshots."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--url", default=None, help="The UI's address (default: the stack's).")
    parser.add_argument("--out", type=Path, default=PROJECT / "docs" / "images")
    parser.add_argument("--chromium", default=None, help="The Chromium binary.")
    parser.add_argument("--width", type=int, default=1440)
    parser.add_argument("--height", type=int, default=None, help="Window height (per page).")
    parser.add_argument("--wait-ms", type=int, default=40000, help="Render time per page.")
    args = parser.parse_args(argv)
    url = (args.url or default_url()).rstrip("/")
    check_server(url)
    chromium = find_chromium(args.chromium)
    args.out.mkdir(parents=True, exist_ok=True)
    for name, (page, height) in PAGES.items():
        target = args.out / name
        partial = target.with_name(f".{name}")
        shoot(chromium, f"{url}{page}", partial, args.width, args.height or height, args.wait_ms)
        colours = check_image(partial)
        partial.replace(target)
        print(f"{target.relative_to(PROJECT) if target.is_relative_to(PROJECT) else target}: "
              f"{url}{page} ({colours} colours)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
