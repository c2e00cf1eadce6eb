"""Unicode byte-order marks, and the encodings whose text is not ASCII-compatible.

Pure helpers for :mod:`contact_center.parsing.files`: which encoding a byte-order mark
(BOM) names, which encoding to decode with when one is given and the file also has
a BOM, and how to look at the characters of UTF-16 or UTF-32 text, whose bytes
hold NULs, when judging whether a file is text at all.
"""

from __future__ import annotations

import codecs

__all__ = ["bom_encoding", "decoding_encoding", "is_wide", "text_for_shape_check"]

# Longest first: a UTF-32-LE BOM starts with the UTF-16-LE one.
_BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32"),
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)
_WIDE = ("utf-16", "utf-32")


def bom_encoding(head: bytes) -> str | None:
    """The encoding that a BOM at the start of ``head`` names (one that skips the BOM).

    Returns:
        ``utf-8-sig``, ``utf-16`` or ``utf-32``; None without a BOM.
    """
    for bom, encoding in _BOMS:
        if head.startswith(bom):
            return encoding
    return None


def decoding_encoding(given: str, head: bytes) -> str:
    """The codec to decode with when the encoding is given: the given one, or, when the
    file starts with a BOM of the same Unicode form, the codec that reads and skips it.

    ``utf-16-le`` on a file that starts with the UTF-16 LE BOM is read as ``utf-16``
    (which takes the byte order from the BOM and drops it), so that the BOM does not
    become part of the first column's name.

    Args:
        given: a Python codec name, as :func:`codecs.lookup` spells it.
        head: the file's first bytes.
    """
    bom = bom_encoding(head)
    if bom is not None and _family(given) == _family(bom):
        return bom
    return given


def is_wide(encoding: str | None) -> bool:
    """Whether the encoding is UTF-16 or UTF-32 (of either byte order): text whose bytes
    hold NULs and other control bytes."""
    return encoding is not None and _family(encoding) in _WIDE


def text_for_shape_check(head: bytes, encoding: str | None) -> bytes:
    """The bytes to judge as text or binary: ``head`` itself, or for UTF-16 and UTF-32 its
    characters as UTF-8 (a character that does not decode counts as binary)."""
    if not is_wide(encoding):
        return head
    assert encoding is not None
    decoder = codecs.getincrementaldecoder(encoding)(errors="replace")
    return decoder.decode(head).replace("\ufffd", "\x01").encode("utf-8")


def _family(encoding: str) -> str:
    """``utf-8``, ``utf-16`` or ``utf-32`` for the Unicode forms; else the name itself."""
    name = codecs.lookup(encoding).name
    for family in ("utf-8", *_WIDE):
        if name == family or name.startswith(family + "-"):
            return family
    return name
