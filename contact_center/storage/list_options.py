"""The checked parameters of one calling-list import (:class:`ImportOptions`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from contact_center.parsing.gates import DEFAULT_MAX_REMOVED_RATIO
from contact_center.parsing.locations import parse_location
from contact_center.parsing.names import check_name
from contact_center.parsing.parameters import (
    check_default_country,
    check_encoding,
    check_mapping,
    check_widths_and_columns,
)
from contact_center.parsing.record_zones import (
    ZONE_SOURCES,
    ZoneAssigner,
    check_default_timezone,
    check_zone_precedence,
)

__all__ = ["ImportOptions"]


@dataclass(frozen=True)
class ImportOptions:
    """The checked parameters of one calling-list import.

    Build it with :meth:`from_parameters` from parameters whose types Prefect has
    checked; it raises :class:`InvalidParameter` for what a type cannot express,
    before any file is touched.
    """

    list_name: str
    source: str
    mapping: dict[str, str] | None = None
    update_policy: str = "update"
    key_field: str = "account"
    format: str = "auto"
    delimiter: str | None = None
    encoding: str | None = None
    sheet: str | None = None
    widths: list[int] | None = None
    columns: list[str] | None = None
    default_country: str = "US"
    expires_after_days: int | None = None
    min_rows: int = 0
    max_reject_ratio: float | None = None
    max_removed_ratio: float = DEFAULT_MAX_REMOVED_RATIO
    scrub_exclusions: tuple[str, ...] = ()
    after_import: str = "keep"
    force: bool = False
    timezone_precedence: tuple[str, ...] = ZONE_SOURCES
    default_timezone: str | None = None
    dry_run: bool = False
    decrypt_with: str | None = None

    @classmethod
    def from_parameters(cls, **params: Any) -> ImportOptions:
        """Build the options from the flow's parameters, whose types Prefect has checked.

        Here come the checks that a type cannot express (see
        :mod:`contact_center.parsing.parameters`); ``min_rows`` defaults to 1 for ``replace``
        (so an empty file never wipes a list) and to 0 otherwise.

        Raises:
            InvalidParameter: a value that is not valid; the message names it.
        """
        list_name = check_name("list_name", params.get("list_name"))
        source = params["source"]
        parse_location(source)
        policy = params.get("update_policy") or "update"
        widths, columns = params.get("widths"), params.get("columns")
        check_widths_and_columns(widths, columns)
        min_rows = params.get("min_rows")
        scrub = [check_name("scrub_exclusions", s) for s in params.get("scrub_exclusions") or []]
        decrypt_with = params.get("decrypt_with")
        return cls(
            list_name=list_name,
            source=source,
            mapping=check_mapping(params.get("mapping")),
            update_policy=policy,
            key_field=params.get("key_field") or "account",
            format=params.get("format") or "auto",
            delimiter=params.get("delimiter"),
            encoding=check_encoding(params.get("encoding")),
            sheet=params.get("sheet"),
            widths=widths,
            columns=columns,
            default_country=check_default_country(params.get("default_country") or "US"),
            expires_after_days=params.get("expires_after_days"),
            min_rows=(1 if policy == "replace" else 0) if min_rows is None else min_rows,
            max_reject_ratio=params.get("max_reject_ratio"),
            max_removed_ratio=params.get("max_removed_ratio", DEFAULT_MAX_REMOVED_RATIO),
            scrub_exclusions=tuple(dict.fromkeys(scrub)),
            after_import=params.get("after_import") or "keep",
            force=params.get("force", False),
            timezone_precedence=check_zone_precedence(params.get("timezone_precedence")),
            default_timezone=check_default_timezone(params.get("default_timezone")),
            dry_run=params.get("dry_run", False),
            decrypt_with=None if decrypt_with is None else check_name("decrypt_with", decrypt_with),
        )

    def zone_assigner(self) -> ZoneAssigner:
        """How this import gives each record its time zone."""
        return ZoneAssigner(self.timezone_precedence, self.default_timezone)
