"""phonenumbers' metadata, compiled for the fast path: region rules, lengths, validity.

Private to :mod:`contact_center.parsing.phones`. Each region's metadata becomes a
:class:`_Rules` whose steps run over arrays, and each calling code's
``is_valid_number`` one automaton with a decision table (:func:`_validity`).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from functools import cache

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from phonenumbers import COUNTRY_CODE_TO_REGION_CODE, PhoneMetadata

from contact_center.parsing.arrow_text import string_bytes
from contact_center.parsing.phones._automata import _Automaton, _automaton
from contact_center.parsing.phones._match import (
    _compiled,
    _full_match,
    _prefix_match,
    _replace_rows,
    _strip_prefix,
)

# phonenumbers' limits (phonenumberutil: _MIN/_MAX_LENGTH_FOR_NSN, _MAX_INPUT_STRING_LENGTH).
_MIN_NSN = 2
_MAX_NSN = 17
_MAX_INPUT = 250
_NON_GEO_REGION = "001"


class _Length(Enum):
    """phonenumbers' ValidationResult, for the possible-length test."""

    POSSIBLE = 0
    LOCAL_ONLY = 1
    TOO_SHORT = 2
    INVALID = 3
    TOO_LONG = 4


# Results of the possible-length test that keep the national prefix on, by value.
_KEEPS_PREFIX = np.array(
    [r in (_Length.TOO_SHORT, _Length.LOCAL_ONLY, _Length.INVALID) for r in _Length], dtype=bool
)


@dataclass(frozen=True)
class _Desc:
    """A number description: which lengths it allows, and its pattern."""

    allowed: np.ndarray  # allowed[length]: the length is possible (all True: no list)
    pattern: str | None

    def matches_one(self, number: str) -> bool:
        """``_is_number_matching_desc`` for one number."""
        return (
            self.pattern is not None
            and bool(self.allowed[min(len(number), _MAX_INPUT)])
            and _compiled(self.pattern).fullmatch(number) is not None
        )

    def matches(self, numbers: pa.StringArray, length: np.ndarray) -> np.ndarray:
        """``_is_number_matching_desc`` over an array."""
        result = np.zeros(len(numbers), dtype=bool)
        if self.pattern is None:
            return result
        fits = self.allowed[length]
        if fits.all():
            return _full_match(numbers, self.pattern)
        if fits.any():
            result[fits] = _full_match(numbers.filter(pa.array(fits)), self.pattern)
        return result


@dataclass(frozen=True)
class _Rules:
    """What the fast path needs of one region's metadata, compiled for arrays."""

    country_code: int
    can_parse: bool  # no national-prefix transform rule: the fast path can parse for it
    international_prefix: str | None
    national_prefix: str | None
    general: _Desc
    types: tuple[_Desc, ...]  # fixed line first: most numbers stop there
    length_table: np.ndarray  # the _Length value for each length 0.._MAX_INPUT
    leading_digits: str | None

    def idd_match(self, numbers: pa.StringArray) -> np.ndarray:
        """Whether the international dialling prefix matches at the start."""
        if self.international_prefix is None:
            return np.zeros(len(numbers), dtype=bool)
        return _prefix_match(numbers, self.international_prefix)

    def general_match(self, numbers: pa.StringArray) -> np.ndarray:
        """``_match_national_number(number, general_desc)``: the pattern only, no lengths."""
        if self.general.pattern is None:
            return np.zeros(len(numbers), dtype=bool)
        return _full_match(numbers, self.general.pattern)

    def length_test(self, numbers: pa.StringArray) -> np.ndarray:
        """``_test_number_length`` (type UNKNOWN): a _Length value per number."""
        result: np.ndarray = self.length_table[_lengths(numbers)]
        return result

    def strip_national_prefix(self, numbers: pa.StringArray) -> pa.StringArray:
        """``_maybe_strip_national_prefix_carrier_code`` for metadata without a transform rule."""
        if self.national_prefix is None or len(numbers) == 0:
            return numbers
        matched = _prefix_match(numbers, self.national_prefix) & (_lengths(numbers) > 0)
        if not matched.any():
            return numbers
        rows = np.flatnonzero(matched)
        original = numbers.filter(pa.array(matched))
        rest = _strip_prefix(original, self.national_prefix)
        # The library keeps the prefix when it turns a viable number into a non-viable one.
        keep = self.general_match(original) & ~self.general_match(rest)
        rest = pc.if_else(pa.array(keep), original, rest)
        return _replace_rows(numbers, rows, rest)

    def strip_national_prefix_one(self, number: str) -> str:
        """:meth:`strip_national_prefix` for one number."""
        if self.national_prefix is None or not number:
            return number
        found = _compiled(self.national_prefix).match(number)
        if not found:
            return number
        rest = number[found.end() :]
        general = _compiled(self.general.pattern) if self.general.pattern else None
        if general and general.fullmatch(number) and not general.fullmatch(rest):
            return number
        return rest

    def type_known_one(self, nsn: str) -> bool:
        """:meth:`type_known` for one number."""
        return self.general.matches_one(nsn) and any(d.matches_one(nsn) for d in self.types)

    def type_known(self, nsn: pa.StringArray) -> np.ndarray:
        """``_number_type_helper(nsn) != UNKNOWN``: general, then any number type."""
        length = _lengths(nsn)
        pending = self.general.matches(nsn, length)
        known = np.zeros(len(nsn), dtype=bool)
        for desc in self.types:
            rows = np.flatnonzero(pending)
            if len(rows) == 0:
                break
            subset = nsn if len(rows) == len(nsn) else nsn.take(pa.array(rows))
            hit = desc.matches(subset, length[rows])
            known[rows[hit]] = True
            pending[rows[hit]] = False
        return known


def _desc(desc: object) -> _Desc | None:
    if desc is None:
        return None
    pattern = getattr(desc, "national_number_pattern", None)
    lengths = tuple(getattr(desc, "possible_length", ()) or ())
    allowed = np.zeros(_MAX_INPUT + 1, dtype=bool)
    if lengths:
        allowed[[n for n in lengths if 0 <= n <= _MAX_INPUT]] = True
    else:
        allowed[:] = True
    return _Desc(allowed=allowed, pattern=pattern or None)


@cache
def _region_rules(code: int | None, region: str) -> _Rules | None:
    """The compiled rules of a region (None if phonenumbers has no metadata for it)."""
    if region == _NON_GEO_REGION:
        meta = PhoneMetadata.metadata_for_nongeo_region(code) if code is not None else None
    else:
        meta = PhoneMetadata.metadata_for_region(region, None)
    if meta is None:
        return None
    general = _desc(meta.general_desc)
    lengths = tuple(getattr(meta.general_desc, "possible_length", ()) or ())
    if general is None or not lengths:
        return None
    local = tuple(getattr(meta.general_desc, "possible_length_local_only", ()) or ())
    fixed_first = [meta.fixed_line]
    others = [
        meta.premium_rate,
        meta.toll_free,
        meta.shared_cost,
        meta.voip,
        meta.personal_number,
        meta.pager,
        meta.uan,
        meta.voicemail,
    ]
    if not meta.same_mobile_and_fixed_line_pattern:
        others.append(meta.mobile)
    types = tuple(d for d in (_desc(x) for x in fixed_first + others) if d is not None)
    prefix = meta.national_prefix_for_parsing
    return _Rules(
        country_code=int(meta.country_code or 0),
        can_parse=not meta.national_prefix_transform_rule,
        international_prefix=meta.international_prefix or None,
        national_prefix=prefix or None,
        general=general,
        types=types,
        length_table=np.array(
            [_length_result(n, lengths, local).value for n in range(_MAX_INPUT + 1)], dtype=np.int8
        ),
        leading_digits=meta.leading_digits,
    )


def _length_result(length: int, possible: tuple[int, ...], local: tuple[int, ...]) -> _Length:
    """``_test_number_length`` for the general description (type UNKNOWN)."""
    if length in local:
        return _Length.LOCAL_ONLY
    if possible[0] == length:
        return _Length.POSSIBLE
    if possible[0] > length:
        return _Length.TOO_SHORT
    if possible[-1] < length:
        return _Length.TOO_LONG
    return _Length.POSSIBLE if length in possible[1:] else _Length.INVALID


def _main_region(code: int) -> str:
    """``region_code_for_country_code``: the first region of a calling code."""
    return COUNTRY_CODE_TO_REGION_CODE[code][0]


def _country_codes(number: pa.StringArray) -> tuple[np.ndarray, np.ndarray]:
    """``_extract_country_code``: the first of 1, 2, 3 leading digits that is a known code.

    Returns each number's code (0 when none) and how many digits it takes.
    """
    offsets, data = string_bytes(number)
    starts, length = offsets[:-1], offsets[1:] - offsets[:-1]
    country = np.zeros(len(number), dtype=np.int64)
    width = np.zeros(len(number), dtype=np.int64)
    if len(data) == 0:
        return country, width
    last = len(data) - 1
    first = data.take(np.minimum(starts, last))
    head = np.zeros(len(number), dtype=np.int64)
    heads = []
    for size in (1, 2, 3):
        digit = data.take(np.minimum(starts + size - 1, last)).astype(np.int64) - ord("0")
        head = head * 10 + digit
        heads.append((size, head, (length >= size) & (first != ord("0"))))
    for size, head, usable in reversed(heads):  # the shortest known code wins
        known = usable & _known_codes(size)[np.clip(head, 0, 10**size - 1)]
        country[known] = head[known]
        width[known] = size
    return country, width


@cache
def _known_codes(size: int) -> np.ndarray:
    """``known[code]``: the calling code of ``size`` digits exists."""
    known = np.zeros(10**size, dtype=bool)
    known[[c for c in COUNTRY_CODE_TO_REGION_CODE if len(str(c)) == size]] = True
    return known


@cache
def _validity(code: int) -> tuple[_Automaton, np.ndarray] | None:
    """``is_valid_number`` for national numbers of one calling code, as an automaton.

    Returns the automaton of every pattern :func:`_is_valid` looks at and
    ``decision[state, length]``: the answer for a number of that length (capped at
    ``_MAX_INPUT``) that ends in that state. None when a pattern cannot be compiled.
    """
    regions = COUNTRY_CODE_TO_REGION_CODE.get(code, ())
    rules = [r for r in (_region_rules(code, region) for region in regions) if r is not None]
    patterns: dict[tuple[str, bool], int] = {}
    for rule in rules:
        for desc in (rule.general, *rule.types):
            if desc.pattern is not None:
                patterns.setdefault((desc.pattern, False), len(patterns))
        if rule.leading_digits is not None:
            patterns.setdefault((rule.leading_digits, True), len(patterns))
    automaton = _automaton(tuple(patterns))
    if automaton is None:
        return None
    accepts = automaton.accepts
    shape = (len(accepts), _MAX_INPUT + 1)

    def matches(desc: _Desc) -> np.ndarray:
        """``desc.matches`` by end state and length."""
        if desc.pattern is None:
            return np.zeros(shape, dtype=bool)
        found: np.ndarray = accepts[:, patterns[(desc.pattern, False)], None] & desc.allowed
        return found

    def type_known(rule: _Rules) -> np.ndarray:
        """``rule.type_known`` by end state and length."""
        known = np.zeros(shape, dtype=bool)
        for desc in rule.types:
            known |= matches(desc)
        return matches(rule.general) & known

    if len(regions) == 1:
        return automaton, type_known(rules[0]) if rules else np.zeros(shape, dtype=bool)
    # _region_code_for_number_from_list: the first region that claims the number.
    decision = np.zeros(shape, dtype=bool)
    unclaimed = np.ones(shape, dtype=bool)
    for rule in rules:
        if rule.leading_digits is not None:
            ours = accepts[:, patterns[(rule.leading_digits, True)], None]
            claimed = np.broadcast_to(ours, shape)
            decision |= unclaimed & claimed & type_known(rule)
        else:
            claimed = type_known(rule)
            decision |= unclaimed & claimed
        unclaimed &= ~claimed
    return automaton, decision


def _lengths(numbers: pa.StringArray) -> np.ndarray:
    """Each number's length, capped at ``_MAX_INPUT`` (numbers are ASCII: one byte a digit)."""
    offsets = string_bytes(numbers)[0]
    result: np.ndarray = np.minimum(offsets[1:] - offsets[:-1], _MAX_INPUT)
    return result
