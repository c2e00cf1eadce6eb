"""JSON text built over whole Arrow string columns (the custom fields of list records).

The list parser writes each record's custom fields as one JSON object of text
values; building it column by column is far cheaper than ``json.dumps`` per row,
and gives the same text.
"""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from contact_center.parsing.arrow_text import string_bytes

__all__ = ["json_escaped", "json_objects"]

# json.dumps escapes the control characters, '"' and '\' in a string. These escapes
# are done over whole arrays, backslash first; the other control characters (written
# as \b, \f or \u00XX), rare, are left to json.dumps itself.
_SHORT_ESCAPES = (("\\", "\\\\"), ('"', '\\"'), ("\n", "\\n"), ("\r", "\\r"), ("\t", "\\t"))
_RARE_BYTES = np.zeros(256, dtype=bool)
_RARE_BYTES[range(0x20)] = True
_RARE_BYTES[[ord(c) for c, _ in _SHORT_ESCAPES]] = False


def json_objects(columns: dict[str, pa.Array]) -> pa.Array:
    """One JSON object of text values per row, built over whole columns."""
    parts: list[pa.Array | str] = []
    for position, (name, values) in enumerate(columns.items()):
        # The quotes around each value go into the constant parts around it.
        opening = "{" if position == 0 else '",'
        parts.append(f'{opening}{json.dumps(name.strip())}:"')
        parts.append(json_escaped(values))
    parts.append('"}')
    return pc.binary_join_element_wise(*parts, "")


def json_escaped(text: pa.Array) -> pa.Array:
    """Each value escaped for the inside of a JSON string literal, as ``json.dumps`` does.

    Backslash, quote, newline, carriage return and tab are replaced over the whole
    array (the ones that occur); a value with another control character (rare) goes
    through ``json.dumps`` itself.
    """
    offsets, data = string_bytes(text)
    # Comparisons are cheaper than a table look-up per byte.
    at = np.flatnonzero((data < 0x20) | (data == ord('"')) | (data == ord("\\")))
    if len(at) == 0:
        return text
    original = text
    present = set(data[at].tobytes().decode("ascii"))
    for char, escape in _SHORT_ESCAPES:
        if char in present:
            text = pc.replace_substring(text, char, escape)
    rare_at = at[_RARE_BYTES[data[at]]]
    if len(rare_at):
        # The values that hold them (offsets are sorted; empty values hold no byte).
        rare = np.zeros(len(text), dtype=bool)
        rare[np.searchsorted(offsets, rare_at, side="right") - 1] = True
        values = original.filter(pa.array(rare)).to_pylist()
        dumped = [json.dumps(value, ensure_ascii=False)[1:-1] for value in values]
        text = pc.replace_with_mask(text, pa.array(rare), pa.array(dumped, pa.string()))
    return text
