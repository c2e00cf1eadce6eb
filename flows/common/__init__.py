"""Steps shared by every flow: file transfer, the database, outcome and progress."""

from flows.common.arrival import FetchedFile, IncomingFile
from flows.common.confine import check_before_io
from flows.common.database import contact_center_engine
from flows.common.outcome import RunProgress, final_state, record_outcome, recording_outcome
from flows.common.servers import load_sftp_block, sftp_session
from flows.common.transfer import (
    after_import,
    deliver,
    fetch,
    resolve_source,
)

__all__ = [
    "FetchedFile",
    "IncomingFile",
    "RunProgress",
    "after_import",
    "check_before_io",
    "contact_center_engine",
    "deliver",
    "fetch",
    "final_state",
    "load_sftp_block",
    "record_outcome",
    "recording_outcome",
    "resolve_source",
    "sftp_session",
]
