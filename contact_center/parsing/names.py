"""Object names: the one check that every name parameter passes before any database work.

A name (a calling list, an exclusion list, a campaign, a report) is stored in the
database, written into SQL as a bound value, shown in the task log and put into
file names. A NUL cannot be stored in a PostgreSQL text column at all (the driver
refuses it with a raw error), a lone surrogate cannot be encoded, and other control
characters, line breaks and bidirectional overrides make a name that a terminal or a
spreadsheet shows as something else. So such a name is refused up front with one
line naming the parameter, instead of failing later in the database or misleading a
reader.
"""

from __future__ import annotations

import unicodedata

from contact_center.exceptions import InvalidParameter

__all__ = ["MAX_NAME_LENGTH", "check_name", "forbidden_character"]

#: The longest name the database columns hold.
MAX_NAME_LENGTH = 200

# Unicode categories never allowed in a name: control characters (NUL, ESC, DEL,
# C1), lone surrogates, and line and paragraph separators.
_FORBIDDEN_CATEGORIES = frozenset({"Cc", "Cs", "Zl", "Zp"})
# Bidirectional embeddings, overrides and isolates: they reorder what a view shows.
_BIDI_CONTROLS = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
# How much of a refused value a message quotes.
_SHOWN_CHARACTERS = 60


def forbidden_character(text: str) -> str | None:
    """The first character of ``text`` that a name may not hold, or None."""
    for char in text:
        if char in _BIDI_CONTROLS or unicodedata.category(char) in _FORBIDDEN_CATEGORIES:
            return char
    return None


def _shown(text: str) -> str:
    """``text`` quoted on one line (``repr`` escapes control characters), cut short."""
    if len(text) > _SHOWN_CHARACTERS:
        return repr(text[:_SHOWN_CHARACTERS]) + "…"
    return repr(text)


def check_name(parameter: str, value: object, *, max_length: int = MAX_NAME_LENGTH) -> str:
    """Check a name parameter and return it without surrounding spaces.

    Args:
        parameter: the parameter's name, for the message (e.g. ``list_name``).
        value: the value given.
        max_length: the longest name allowed.

    Returns:
        The name, stripped.

    Raises:
        InvalidParameter: not a string, empty, too long, or holding a control
            character, a line break or a bidirectional control; one line that
            names the parameter.
    """
    if not isinstance(value, str) or not value.strip():
        raise InvalidParameter(f"{parameter} must be a non-empty name, not {value!r}")
    char = forbidden_character(value)
    if char is not None:
        raise InvalidParameter(
            f"{parameter} {_shown(value)} holds the control character U+{ord(char):04X}; "
            "a name must be printable text"
        )
    name = value.strip()
    if len(name) > max_length:
        raise InvalidParameter(
            f"{parameter} {_shown(name)} is {len(name)} characters long; "
            f"a name has at most {max_length}"
        )
    return name
