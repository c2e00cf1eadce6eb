"""The reference: phonenumbers itself, one value at a time.

:func:`normalise_phone` is what every other path in :mod:`contact_center.parsing.phones`
must equal: ``phonenumbers.parse`` then ``is_valid_number`` then ``format_number``
to E.164. It is too slow for whole lists, so the package decides most values over
arrays and asks this module only about the rest.
"""

from __future__ import annotations

import traceback

import phonenumbers
from phonenumbers import SUPPORTED_REGIONS

from contact_center.exceptions import InvalidParameter
from contact_center.settings import DEFAULT_COUNTRY

__all__ = ["check_default_country", "normalise_phone"]


def check_default_country(default_country: str) -> str:
    """Validate a default country (region code) and return it upper-cased.

    Raises:
        InvalidParameter: it is not a region phonenumbers knows.
    """
    region = str(default_country or "").strip().upper()
    if region not in SUPPORTED_REGIONS:
        raise InvalidParameter(
            f"default_country must be a two-letter region code such as US, CA or GB, "
            f"not {default_country!r}"
        )
    return region


def normalise_phone(value: str | None, default_country: str = DEFAULT_COUNTRY) -> str | None:
    """The reference: one value through phonenumbers (parse, is_valid_number, E.164).

    Args:
        value: the phone as written.
        default_country: the region for national numbers (upper-case region code).

    Returns:
        The E.164 text, or ``None`` when it does not parse or is not valid.
    """
    if value is None:
        return None
    try:
        number = phonenumbers.parse(value, default_country)
    except phonenumbers.NumberParseException as exc:
        # phonenumbers keeps the exception in a local of its own frame: a reference
        # cycle through the traceback, which would hold our callers' frames, and the
        # arrays in them, until the next garbage collection. Clearing breaks it.
        traceback.clear_frames(exc.__traceback__)
        return None
    if not phonenumbers.is_valid_number(number):
        return None
    return str(phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164))
