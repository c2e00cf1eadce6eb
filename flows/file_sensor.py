"""The ``watch-drop-folders`` flow: announce files that landed, as Prefect events.

A small deployment runs it every 30 s (``prefect.yaml``). Each run:

1. ``list_watched``: lists every watched location's folder (local or SFTP, through the
   same locations code and base-folder checks as the imports) and keeps the files
   that match its glob;
2. waits ``settle_seconds`` and lists again: only files whose size and modification
   time did not change are *stable* (a file still being written is left for a later
   run);
3. ``announce_arrivals``: emits one ``cctasks.file.arrived`` event per stable file it
   has not announced before (same name, size and time), then remembers them in the
   Prefect variable ``cctasks-file-sensor``.

The sensor starts nothing itself: an import deployment's ``triggers:`` in
``prefect.yaml`` match the event by its ``cctasks.watch`` label and pass
``cctasks.location`` as the run's ``source`` (see ``docs/events.md``). Whether a file is
loaded stays the import's decision: its checksum check skips a file already imported.
"""

from __future__ import annotations

import posixpath
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.events import emit_event
from prefect.variables import Variable

from contact_center.exceptions import InvalidParameter, SourceUnavailable
from contact_center.parsing.arrivals import SeenFile, matching, new_arrivals, stable_files
from contact_center.parsing.locations import Location, parse_location
from flows.common import sftp_session
from flows.common.confine import check_local, check_remote
from flows.common.retries import NETWORK_TASK

__all__ = [
    "ARRIVED_EVENT",
    "MEMORY_VARIABLE",
    "announce_arrivals",
    "arrival_event",
    "list_watched",
    "watch_drop_folders",
]

#: The event a stable new file raises.
ARRIVED_EVENT = "cctasks.file.arrived"
#: The Prefect variable that remembers what was announced (watch -> file -> size:mtime).
MEMORY_VARIABLE = "cctasks-file-sensor"
#: Seconds between the two listings of a run (a partner's upload changes a file faster).
DEFAULT_SETTLE_SECONDS = 5


def _parse_watches(watches: dict[str, str]) -> dict[str, Location]:
    parsed: dict[str, Location] = {}
    for name, text in watches.items():
        location = parse_location(text)
        if "{" in location.path:
            raise InvalidParameter(
                f"watches[{name!r}] {text!r}: a watched location takes a glob, not a date template"
            )
        parsed[name] = location
    return parsed


def _list_local(location: Location, watch: str) -> list[SeenFile]:
    folder = check_local(location.directory, f"watches[{watch!r}]", location.text)
    if not folder.exists():
        # Nothing has been dropped yet (a drop folder is often made by its first upload).
        get_run_logger().warning("watch %s: folder %s does not exist yet", watch, folder)
        return []
    try:
        entries = list(Path(folder).iterdir())
        stats = [(e.name, e.stat()) for e in entries if e.is_file()]
    except OSError as exc:
        raise SourceUnavailable(
            f"cannot list folder {str(folder)!r} of watch {watch!r}: {exc.strerror}"
        ) from None
    return [SeenFile(name, st.st_size, st.st_mtime) for name, st in stats]


def _list_sftp(location: Location, watch: str) -> list[SeenFile]:
    with sftp_session(location) as session:
        folder = check_remote(session, location.directory, f"watches[{watch!r}]", location.text)
        return [SeenFile(f.name, f.size, f.mtime) for f in session.list(folder)]


@task(**NETWORK_TASK)
def list_watched(watch: str, location: Location) -> list[SeenFile]:
    """The files of the watched folder whose name matches the location's glob."""
    lister = _list_sftp if location.scheme == "sftp" else _list_local
    return matching(lister(location, watch), location.pattern)


def arrival_event(watch: str, location: Location, file: SeenFile) -> dict[str, Any]:
    """The ``cctasks.file.arrived`` event's arguments for ``file`` of ``watch``.

    The resource names the file by its location (what an import takes as ``source``);
    its labels carry the watch, the name, the size and the modification time (UTC).
    """
    folder = location.directory
    path = posixpath.join(folder, file.name) if folder != "." else file.name
    where = location.with_path(path).text
    modified = datetime.fromtimestamp(file.mtime, UTC).isoformat()
    return {
        "event": ARRIVED_EVENT,
        "resource": {
            "prefect.resource.id": f"cctasks.file.{where}",
            "prefect.resource.name": file.name,
            "cctasks.watch": watch,
            "cctasks.location": where,
            "cctasks.file.name": file.name,
            "cctasks.file.size": str(file.size),
            "cctasks.file.modified": modified,
        },
        "payload": {"size": file.size, "modified": modified},
    }


@task(cache_policy=NO_CACHE)
def announce_arrivals(watch: str, location: Location, files: list[SeenFile]) -> int:
    """Emit one ``cctasks.file.arrived`` event per file; returns how many."""
    logger = get_run_logger()
    for file in files:
        emitted = emit_event(**arrival_event(watch, location, file))
        if emitted is None:  # events are off (no server to send them to)
            raise SourceUnavailable(
                f"could not emit {ARRIVED_EVENT} for {file.name!r}: Prefect events are off"
            )
        logger.info("%s: %s arrived (%d bytes)", watch, file.name, file.size)
    return len(files)


@flow(name="watch-drop-folders", log_prints=False)
def watch_drop_folders(
    watches: dict[str, str], settle_seconds: int = DEFAULT_SETTLE_SECONDS
) -> int:
    """Announce the new, stable files of the watched locations as Prefect events.

    Args:
        watches: watch name -> location with a glob, e.g. ``spring-leads:
            sftp://partner-drop/in/leads_*.csv``. An import deployment's trigger
            matches the name (the event's ``cctasks.watch`` label).
        settle_seconds: the pause between the two listings that tell a finished
            file from one still being written.

    Returns:
        The number of files announced.
    """
    if settle_seconds < 0:
        raise InvalidParameter(f"settle_seconds {settle_seconds} is negative")
    locations = _parse_watches(watches)
    first = {name: list_watched(name, loc) for name, loc in locations.items()}
    time.sleep(settle_seconds)
    memory: dict[str, dict[str, str]] = dict(Variable.get(MEMORY_VARIABLE, default={}) or {})
    announced = 0
    for name, location in locations.items():
        stable = stable_files(first[name], list_watched(name, location))
        fresh, memory[location.text] = new_arrivals(stable, memory.get(location.text, {}))
        announced += announce_arrivals(name, location, fresh)
    # Only the current watches' folders are remembered: the variable stays small.
    memory = {loc.text: memory[loc.text] for loc in locations.values() if memory[loc.text]}
    Variable.set(MEMORY_VARIABLE, memory, overwrite=True)
    return announced
