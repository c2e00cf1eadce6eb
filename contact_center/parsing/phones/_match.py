"""Metadata patterns matched over arrays of digit strings, as ``re`` would match them.

Private to :mod:`contact_center.parsing.phones`. A pattern runs as an automaton over the
whole array when it compiles to one (:mod:`._automata`), as Arrow's RE2 when it does
not (RE2, like Python's ``re``, picks the leftmost-first match), and value by value
with Python's ``re`` for small arrays, where Arrow's fixed costs would exceed the work.
"""

from __future__ import annotations

import re
from functools import cache

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from contact_center.parsing.phones._automata import _automaton

# Below this many values the same steps run value by value with Python's re
# (phonenumbers' own engine): compiling a large pattern for Arrow costs more.
_SMALL_ARRAY = 256


def _automaton_match(numbers: pa.StringArray, pattern: str, *, prefix: bool) -> np.ndarray | None:
    """``re.fullmatch`` (or ``re.match`` when prefix) by automaton; None if it has none."""
    automaton = _automaton(((pattern, prefix),))
    if automaton is None:
        return None
    found: np.ndarray = automaton.accepts[automaton.run(numbers), 0]
    return found


# --- array helpers ---------------------------------------------------------------------


def _full_match(numbers: pa.StringArray, pattern: str) -> np.ndarray:
    """``re.fullmatch(pattern, number)`` for each number (of ASCII digits)."""
    if len(numbers) < _SMALL_ARRAY:
        match = _compiled(pattern).fullmatch
        return np.fromiter((match(n) is not None for n in numbers.to_pylist()), bool, len(numbers))
    found = _automaton_match(numbers, pattern, prefix=False)
    if found is not None:
        return found
    return _mask(pc.match_substring_regex(numbers, f"^(?:{pattern})$"))


def _prefix_match(numbers: pa.StringArray, pattern: str) -> np.ndarray:
    """``re.match(pattern, number)`` (a match at the start) for each number."""
    literals = _literals(pattern)
    if literals is not None and len(numbers) >= _SMALL_ARRAY:
        found = np.zeros(len(numbers), dtype=bool)
        for literal in literals:
            found |= _mask(pc.starts_with(numbers, literal))
        return found
    if len(numbers) < _SMALL_ARRAY:
        match = _compiled(pattern).match
        return np.fromiter((match(n) is not None for n in numbers.to_pylist()), bool, len(numbers))
    matched = _automaton_match(numbers, pattern, prefix=True)
    if matched is not None:
        return matched
    return _mask(pc.match_substring_regex(numbers, f"^(?:{pattern})"))


def _strip_prefix(numbers: pa.StringArray, pattern: str) -> pa.StringArray:
    """``number[re.match(pattern, number).end():]`` for numbers where the pattern matches.

    RE2, like Python's re, picks the leftmost-first match, so both end it at the same place.
    """
    if len(numbers) < _SMALL_ARRAY:
        match = _compiled(pattern).match
        rest = []
        for number in numbers.to_pylist():
            found = match(number)
            rest.append(number[found.end() :] if found else number)
        return pa.array(rest, type=pa.string())
    literals = _literals(pattern)
    if literals is not None:
        # Like re.match: the first alternative that is a prefix is the one removed.
        rest = numbers
        open_rows = np.ones(len(numbers), dtype=bool)
        for literal in literals:
            hit = open_rows & _mask(pc.starts_with(numbers, literal))
            if hit.any():
                cut = pc.utf8_slice_codeunits(numbers.filter(pa.array(hit)), len(literal))
                rest = _replace_rows(rest, np.flatnonzero(hit), cut)
                open_rows &= ~hit
        return rest
    return pc.replace_substring_regex(numbers, f"^(?:{pattern})", "", max_replacements=1)


@cache
def _literals(pattern: str) -> tuple[str, ...] | None:
    """The alternatives of a pattern made only of digit strings (``0|180020``), else None."""
    parts = tuple(pattern.split("|"))
    return parts if all(part.isascii() and part.isdigit() for part in parts) else None


@cache
def _compiled(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern)


def _mask(array: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """A boolean Arrow array as numpy, nulls as False."""
    filled = pc.fill_null(array, False)
    return np.asarray(filled, dtype=bool)


def _replace_rows(
    array: pa.StringArray, rows: np.ndarray, values: pa.StringArray
) -> pa.StringArray:
    """``array`` with ``array[rows] = values`` (a take: cheaper than replace_with_mask)."""
    index = np.arange(len(array))
    index[rows] = len(array) + np.arange(len(rows))
    return pa.concat_arrays([array, values]).take(pa.array(index))
