"""The time zone the views show times in: the contact centre's, or UTC.

The contact centre's zone is the setting ``CCTASKS_TIME_ZONE`` (an IANA name such as
``America/New_York``); without it, the machine's local zone. ``--utc`` shows UTC.
The views name the zone in their header, so a time is never read in the wrong zone.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from contact_center.exceptions import InvalidParameter
from contact_center.settings import get_settings

__all__ = ["DisplayZone", "display_zone"]


@dataclass(frozen=True)
class DisplayZone:
    """A zone to show times in.

    Attributes:
        zone: the zone; ``None`` is the machine's local zone.
        name: how the header names it (``America/New_York``, ``UTC``, ``local``).
    """

    zone: tzinfo | None
    name: str

    def convert(self, value: datetime) -> datetime:
        """``value`` (aware) as a time in this zone."""
        return value.astimezone(self.zone) if self.zone is not None else value.astimezone()

    def label(self, when: datetime | None = None) -> str:
        """The header's words: ``times in America/New_York (EST)``."""
        abbreviation = self.convert(when or datetime.now(UTC)).tzname() or ""
        if abbreviation and abbreviation != self.name:
            return f"times in {self.name} ({abbreviation})"
        return f"times in {self.name}"


def display_zone(utc: bool = False) -> DisplayZone:
    """UTC, the contact centre's zone (``CCTASKS_TIME_ZONE``), or the local zone.

    Raises:
        InvalidParameter: ``CCTASKS_TIME_ZONE`` is not an IANA time zone name.
    """
    if utc:
        return DisplayZone(UTC, "UTC")
    name = get_settings().time_zone
    if name is None:
        return DisplayZone(None, "local time")
    try:
        return DisplayZone(ZoneInfo(name), name)
    except (ZoneInfoNotFoundError, ValueError):
        raise InvalidParameter(
            f"CCTASKS_TIME_ZONE {name!r} is not a time zone; use an IANA name such as "
            "America/New_York, or unset it for the machine's local zone"
        ) from None
