"""An ``import-exclusions`` run's parameters, checked before anything is fetched.

:func:`validate_request` checks the parameters of :func:`flows.exclusion_import.import_exclusions`
that their types cannot express (the list's name, the source, ``dry_run`` only for an import).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from contact_center.exceptions import InvalidParameter
from contact_center.parsing.gates import DEFAULT_MAX_REMOVED_RATIO, RemovalGate
from contact_center.parsing.locations import parse_location
from contact_center.parsing.names import check_name
from contact_center.parsing.parameters import (
    ExclusionStep,
    check_encoding,
    choices,
)
from contact_center.settings import DEFAULT_EXCLUSION_EXPIRY_DAYS

__all__ = ["STEPS", "ExclusionRequest", "validate_request"]

#: The flow's steps: ``import`` a file, or ``reset`` (empty) the list.
STEPS = choices(ExclusionStep)


@dataclass(frozen=True)
class ExclusionRequest:
    """The flow's parameters, as Prefect validated them.

    See :func:`flows.exclusion_import.import_exclusions`.
    """

    exclusion_list: str
    source: str | None = None
    step: str = "import"
    key_column: str = "account"
    update_policy: str = "add"
    expires_after_days: int | None = DEFAULT_EXCLUSION_EXPIRY_DAYS
    expiry_column: str | None = None
    case_sensitive: bool = True
    match_field: str = "account"
    min_rows: int = 1
    format: str = "auto"
    encoding: str | None = None
    delimiter: str | None = None
    sheet: str | None = None
    after_import: str = "keep"
    max_removed_ratio: float = DEFAULT_MAX_REMOVED_RATIO
    force: bool = False
    dry_run: bool = False
    decrypt_with: str | None = None

    @property
    def removal(self) -> RemovalGate:
        """The ``max_removed_ratio`` gate of a ``replace``."""
        return RemovalGate(self.max_removed_ratio, self.force)


def validate_request(**parameters: Any) -> ExclusionRequest:
    """The flow's parameters after the checks that their types cannot express.

    Raises:
        InvalidParameter: a parameter is not valid; the message names it.
    """
    request = ExclusionRequest(**parameters)
    name = check_name("exclusion_list", request.exclusion_list)
    source = (request.source or "").strip() or None
    if request.step == "import":
        if source is None:
            raise InvalidParameter("source is required for step 'import'")
        parse_location(source)
    elif request.dry_run:
        raise InvalidParameter(f"dry_run is for step 'import', not {request.step!r}")
    decrypt_with = request.decrypt_with
    return replace(
        request,
        exclusion_list=name,
        source=source,
        encoding=check_encoding(request.encoding),
        decrypt_with=None if decrypt_with is None else check_name("decrypt_with", decrypt_with),
    )
