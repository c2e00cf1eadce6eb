"""Phone numbers to E.164, vectorised, with the phonenumbers library as the authority.

:func:`normalise_phones` returns, for every value, exactly what
``phonenumbers.parse(value, default_country)`` followed by ``is_valid_number`` and
``format_number(..., E164)`` returns (a parse error or an invalid number gives NA).
:func:`normalise_phone` is that reference, one value at a time; it runs at about
20k values a second, far too slow for a million-row list. So:

1. A **fast path** decides the common shape — an optional leading ``+``, then ASCII
   digits and the separators ``space ( ) - .`` — for every country whose metadata
   needs no national-prefix *transform rule*. It is a step-by-step transcription of
   phonenumbers' own ``parse`` for that shape (the country code after ``+`` or after
   the default country's international prefix, e.g. ``011`` from the US; the default
   country's code written without ``+``; national-prefix stripping; the
   possible-length test) and of ``is_valid_number`` (the region among the regions of
   a calling code, then the number-type patterns with their possible lengths). Every
   pattern in it is phonenumbers' own metadata. Over whole arrays the patterns run
   as deterministic automata over digits, compiled from them (all the patterns of a
   calling code's ``is_valid_number`` in one automaton, so one pass of a few numpy
   operations per digit decides it); the few patterns an automaton does not take
   (anchors, groups for a transform) run in Arrow's RE2, which like Python's ``re``
   picks the leftmost-first match. Small arrays go value by value through Python's
   ``re``. Why the shape is safe: the library's
   extension patterns all need a letter, ``#``, ``,`` or ``;``; its "second number"
   cut needs ``/`` or ``\\``; its alpha conversion needs three letters: none of them
   can fire on it.
2. A value with fewer than two digits, in pure ASCII, cannot be a number for the
   library either (its viability check needs two digits): NA at once.
3. Everything else — letters, extensions, non-ASCII digits, a ``+`` followed by an
   unknown code, a country with a transform rule (e.g. AR, BR, JP) — goes to
   phonenumbers itself, once per *unique* value.

The fast path runs over arrays for large groups of numbers (one calling code) and
value by value, with the same steps and Python's ``re``, for small ones.

``tests/test_phones.py`` checks the equality on a large generated sample of mixed
formats and countries, and for several default countries; and each automaton against
``re`` for every pattern of the metadata.
"""

from __future__ import annotations

import re
import traceback
from collections.abc import Iterator
from dataclasses import dataclass, field
from enum import Enum
from functools import cache, lru_cache
from typing import Any

import numpy as np
import pandas as pd
import phonenumbers
import pyarrow as pa
import pyarrow.compute as pc
from phonenumbers import COUNTRY_CODE_TO_REGION_CODE, SUPPORTED_REGIONS, PhoneMetadata

from contact_center.exceptions import InvalidParameter
from contact_center.files import string_bytes
from contact_center.settings import DEFAULT_COUNTRY

__all__ = [
    "check_default_country",
    "normalise_phone",
    "normalise_phone_array",
    "normalise_phones",
]

# phonenumbers' limits (phonenumberutil: _MIN/_MAX_LENGTH_FOR_NSN, _MAX_INPUT_STRING_LENGTH).
_MIN_NSN = 2
_MAX_NSN = 17
_MAX_INPUT = 250
_NON_GEO_REGION = "001"
# Below this many values the same steps run value by value with Python's re
# (phonenumbers' own engine): Arrow's fixed costs (an RE2 compile of a large pattern
# is about 1 ms) would exceed the work.
_SMALL_ARRAY = 256


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


_normalise_phone_cached = lru_cache(maxsize=1 << 16)(normalise_phone)


def normalise_phones(values: pd.Series, default_country: str = DEFAULT_COUNTRY) -> pd.Series:
    """Normalise phone numbers to E.164, exactly as phonenumbers would, vectorised.

    Args:
        values: phone numbers as written (text; NA allowed).
        default_country: the region for national numbers; case does not matter.

    Returns:
        A ``str`` Series on the same index: the E.164 number, or NA where
        ``phonenumbers.parse(value, default_country.upper())`` fails or the number is
        not valid.

    Raises:
        InvalidParameter: ``default_country`` is not a known region.
    """
    array = pa.array(values, type=pa.string(), from_pandas=True)
    result = normalise_phone_array(array, default_country)
    return pd.Series(
        result.to_pandas(types_mapper=lambda _: _STR).array,
        index=values.index,
        name=values.name,
    )


def normalise_phone_array(
    values: pa.Array | pa.ChunkedArray, default_country: str = DEFAULT_COUNTRY
) -> pa.Array:
    """:func:`normalise_phones` for an Arrow string array: E.164 text or null per value.

    Raises:
        InvalidParameter: ``default_country`` is not a known region.
    """
    region = check_default_country(default_country)
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    if values.type != pa.string():
        values = values.cast(pa.string())
    return _normalise(values, region)


_STR = pd.StringDtype("pyarrow", na_value=np.nan)


# --- the fast path ---------------------------------------------------------------------


@dataclass
class _Results:
    """E.164 values (or nulls) decided so far, by row."""

    rows: list[np.ndarray] = field(default_factory=list)
    values: list[pa.Array] = field(default_factory=list)

    def add(self, rows: np.ndarray, values: pa.Array) -> None:
        if len(rows):
            self.rows.append(rows)
            self.values.append(values)

    def decided(self, count: int) -> np.ndarray:
        mask = np.zeros(count, dtype=bool)
        for rows in self.rows:
            mask[rows] = True
        return mask

    def assemble(self, count: int) -> pa.Array:
        """One array in row order; rows never decided are null."""
        if not self.rows:
            return pa.nulls(count, type=pa.string())
        rows = np.concatenate(self.rows)
        values = pa.concat_arrays(
            [v if v.type == pa.string() else v.cast(pa.string()) for v in self.values]
        )
        position = np.full(count, -1, dtype=np.int64)
        position[rows] = np.arange(len(rows))
        return values.take(pa.array(position, mask=position < 0))


def _normalise(array: pa.StringArray, region: str) -> pa.Array:
    count = len(array)
    results = _Results()
    shape = _Shape.of(array)
    fast_rows = np.flatnonzero(shape.fast)
    plus_rows = fast_rows[shape.plus[fast_rows]]
    for rows, values in _with_plus(plus_rows, shape.digits.take(pa.array(plus_rows))):
        results.add(rows, values)
    national_rows = fast_rows[~shape.plus[fast_rows]]
    for rows, values in _without_plus(
        national_rows, shape.digits.take(pa.array(national_rows)), region
    ):
        results.add(rows, values)
    # Too few digits for phonenumbers to see a number (it needs two): nothing to ask.
    results.add(np.flatnonzero(shape.hopeless), pa.nulls(int(shape.hopeless.sum()), pa.string()))
    # The rest, once per unique value, by the library itself.
    rest = np.flatnonzero(~results.decided(count))
    if len(rest):
        texts = array.take(pa.array(rest)).to_pylist()
        answers = {text: _normalise_phone_cached(text, region) for text in set(texts)}
        results.add(rest, pa.array([answers[text] for text in texts], type=pa.string()))
    return results.assemble(count)


@dataclass(frozen=True)
class _Shape:
    """Per row: the fast shape? a leading ``+``? its ASCII digits; hopeless (no number)?"""

    fast: np.ndarray
    plus: np.ndarray
    hopeless: np.ndarray
    digits: pa.StringArray

    @classmethod
    def of(cls, array: pa.StringArray) -> _Shape:
        count = len(array)
        valid = ~np.asarray(array.is_null(), dtype=bool)
        # Read from the UTF-8 bytes with numpy: cheaper than regex kernels over the text.
        offsets, data = string_bytes(array)
        starts, length = offsets[:-1], offsets[1:] - offsets[:-1]
        # (Comparisons: cheaper than a table look-up per byte.)
        is_digit = (data - np.uint8(ord("0"))) < 10
        digit_count = np.zeros(count, dtype=np.int64)
        filled = np.flatnonzero(length > 0)
        if len(filled):
            digit_count[filled] = np.add.reduceat(
                is_digit.view(np.uint8), offsets[filled], dtype=np.int64
            )
        # The fast shape, ^ *\+?[0-9 ().\-]+$ (with three digits, one is there after the
        # '+'): digits and separators " ().-", and at most one '+', with only spaces
        # before it. The other bytes are few: looked at one by one.
        separator = (
            (data == ord(" "))
            | ((data - np.uint8(ord("("))) < 2)  # ( )
            | ((data - np.uint8(ord("-"))) < 2)  # - .
        )
        odd = np.flatnonzero(~(is_digit | separator))
        owner = np.searchsorted(offsets, odd, side="right") - 1
        is_plus = data[odd] == ord("+")
        plus_at, plus_owner = odd[is_plus], owner[is_plus]
        shape = valid.copy()
        shape[owner[~is_plus]] = False
        shape[plus_owner[~_only_spaces_before(data, starts[plus_owner], plus_at)]] = False
        plus_count = np.bincount(plus_owner, minlength=count)
        shape[plus_count > 1] = False
        plus = shape & (plus_count == 1)
        fast = shape & (digit_count >= 3) & (length <= _MAX_INPUT)
        # phonenumbers needs two digits to see a number; in ASCII, only 0-9 are digits.
        ascii_only = np.ones(count, dtype=bool)
        ascii_only[owner[data[odd] >= 0x80]] = False
        hopeless = ~valid | (ascii_only & (digit_count < _MIN_NSN))
        digit_offsets = np.concatenate(([0], np.cumsum(digit_count)))
        if digit_offsets[-1] >= 2**31:
            raise InvalidParameter("too many phone digits in one call; pass smaller chunks")
        digits = pa.Array.from_buffers(
            pa.string(),
            count,
            [
                None,
                pa.py_buffer(digit_offsets.astype(np.int32)),
                pa.py_buffer(np.ascontiguousarray(data[is_digit])),
            ],
        )
        return cls(fast=fast, plus=plus, hopeless=hopeless, digits=digits)


_Pieces = Iterator[tuple[np.ndarray, pa.Array]]


def _with_plus(rows: np.ndarray, number: pa.StringArray, *, after_idd: bool = False) -> _Pieces:
    """``+<digits>`` (or digits after an international prefix): the code comes from the digits.

    Args:
        rows: the rows' positions.
        number: their digits after the ``+`` or the prefix.
        after_idd: the digits followed an international dialling prefix, not a ``+``.
    """
    if len(rows) == 0:
        return
    if after_idd:
        # TOO_SHORT_AFTER_IDD; and no known code is INVALID_COUNTRY_CODE, with no '+'
        # to retry without: both a parse error.
        short = _lengths(number) <= _MIN_NSN
        if short.any():
            yield rows[short], pa.nulls(int(short.sum()), pa.string())
            rows, number = rows[~short], number.filter(pa.array(~short))
    country, width = _country_codes(number)
    order = np.argsort(country, kind="stable")
    codes, starts = np.unique(country[order], return_index=True)
    for code, group in zip(codes, np.split(order, starts[1:]), strict=True):
        if code == 0:
            if after_idd:
                yield rows[group], pa.nulls(len(group), pa.string())
            continue  # after a '+', the library retries without it: its way
        meta = _region_rules(int(code), _main_region(int(code)))
        if meta is None or not meta.can_parse:
            continue
        national = pc.utf8_slice_codeunits(number.take(pa.array(group)), int(width[group[0]]))
        yield rows[group], _finish(int(code), national, meta)


def _without_plus(rows: np.ndarray, number: pa.StringArray, region: str) -> _Pieces:
    """A national number, the default country's code without ``+``, or an international prefix."""
    default = _region_rules(None, region)
    if len(rows) == 0 or default is None or not default.can_parse:
        return
    # _parse_prefix_as_idd: an international dialling prefix (e.g. 011 from the US) is
    # stripped unless a 0 follows it; then the digits carry a country code.
    idd = default.idd_match(number)
    if idd.any():
        assert default.international_prefix is not None
        after = _strip_prefix(number.filter(pa.array(idd)), default.international_prefix)
        stripped = ~_mask(pc.starts_with(after, "0"))
        yield from _with_plus(rows[idd][stripped], after.filter(pa.array(stripped)), after_idd=True)
        idd[np.flatnonzero(idd)[~stripped]] = False
        rows, number = rows[~idd], number.filter(pa.array(~idd))
    code = default.country_code
    code_text = str(code)
    # _maybe_extract_country_code, "from the default country" branch.
    candidate = _mask(pc.starts_with(number, code_text))
    extracted = np.zeros(len(rows), dtype=bool)
    if candidate.any():
        full = number.filter(pa.array(candidate))
        potential = default.strip_national_prefix(pc.utf8_slice_codeunits(full, len(code_text)))
        better = ~default.general_match(full) & default.general_match(potential)
        too_long = default.length_test(full) == _Length.TOO_LONG.value
        chosen = better | too_long
        extracted[np.flatnonzero(candidate)[chosen]] = True
        main = _main_region(code)
        meta = default if main == region else _region_rules(code, main)
        if chosen.any() and meta is not None and meta.can_parse:
            yield rows[extracted], _finish(code, potential.filter(pa.array(chosen)), meta)
    national = number if not extracted.any() else number.filter(pa.array(~extracted))
    yield rows[~extracted], _finish(code, national, default)


def _finish(code: int, national: pa.StringArray, meta: _Rules) -> pa.Array:
    """The rest of ``parse`` (national prefix, lengths), then ``is_valid_number``: E.164 or null."""
    if len(national) < _SMALL_ARRAY:
        return pa.array(
            [_finish_one(code, number, meta) for number in national.to_pylist()], pa.string()
        )
    long_enough = _lengths(national) >= _MIN_NSN
    potential = meta.strip_national_prefix(national)
    keep_prefix = _KEEPS_PREFIX[meta.length_test(potential)]
    number = pc.if_else(pa.array(keep_prefix), national, potential)
    length = _lengths(number)
    check = long_enough & (length >= _MIN_NSN) & (length <= _MAX_NSN)
    valid = np.zeros(len(number), dtype=bool)
    if check.all():
        valid = _is_valid(code, number)
    elif check.any():
        valid[check] = _is_valid(code, number.filter(pa.array(check)))
    joined = pc.utf8_replace_slice(number, 0, 0, f"+{code}")  # "+<code>" in front
    return pc.if_else(pa.array(valid), joined, pa.scalar(None, pa.string()))


def _is_valid(code: int, nsn: pa.StringArray) -> np.ndarray:
    """``is_valid_number`` for numbers of one calling code: pick the region, then its types."""
    validity = _validity(code)
    if validity is not None:
        automaton, decision = validity
        result: np.ndarray = decision[automaton.run(nsn), _lengths(nsn)]
        return result
    regions = COUNTRY_CODE_TO_REGION_CODE.get(code, ())
    valid = np.zeros(len(nsn), dtype=bool)
    if len(regions) == 1:
        meta = _region_rules(code, regions[0])
        return meta.type_known(nsn) if meta is not None else valid
    # _region_code_for_number_from_list: the first region that claims the number.
    open_rows = np.arange(len(nsn))
    for region in regions:
        if len(open_rows) == 0:
            break
        meta = _region_rules(code, region)
        if meta is None:
            continue
        subset = nsn if len(open_rows) == len(nsn) else nsn.take(pa.array(open_rows))
        if meta.leading_digits is not None:
            claimed = _prefix_match(subset, meta.leading_digits)
            if claimed.any():
                valid[open_rows[claimed]] = meta.type_known(subset.filter(pa.array(claimed)))
        else:
            claimed = meta.type_known(subset)
            valid[open_rows[claimed]] = True
        open_rows = open_rows[~claimed]
    return valid


def _finish_one(code: int, national: str, meta: _Rules) -> str | None:
    """:func:`_finish` for one value (the same steps, for small groups)."""
    if len(national) < _MIN_NSN:
        return None
    potential = meta.strip_national_prefix_one(national)
    if not _KEEPS_PREFIX[meta.length_table[min(len(potential), _MAX_INPUT)]]:
        national = potential
    if not _MIN_NSN <= len(national) <= _MAX_NSN:
        return None
    return f"+{code}{national}" if _is_valid_one(code, national) else None


def _is_valid_one(code: int, nsn: str) -> bool:
    """:func:`_is_valid` for one number."""
    regions = COUNTRY_CODE_TO_REGION_CODE.get(code, ())
    if len(regions) == 1:
        meta = _region_rules(code, regions[0])
        return meta is not None and meta.type_known_one(nsn)
    for region in regions:
        meta = _region_rules(code, region)
        if meta is None:
            continue
        if meta.leading_digits is not None:
            if _compiled(meta.leading_digits).match(nsn):
                return meta.type_known_one(nsn)
        elif meta.type_known_one(nsn):
            return True
    return False


# --- compiled metadata ---------------------------------------------------------------------


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


# --- automata over digits -----------------------------------------------------------------
#
# Every number the fast path matches is a string of ASCII digits, and every metadata
# pattern is a regular expression over digits (literals, classes, alternation,
# repetition: checked when compiled). So a set of patterns compiles to one
# deterministic automaton, which numpy runs over whole arrays a digit position at a
# time: a few array operations per digit instead of one regex engine call per pattern.
# It decides exactly what the regex decides: ``fullmatch`` is "the whole string is in
# the pattern's language" and ``match`` is "some prefix is".

_DIGITS = 10
_END = 10  # the symbol after a number's last digit: every state stays where it is
_OTHER = 11  # a byte that is not an ASCII digit: no pattern matches one
_SYMBOLS = (*range(_DIGITS), _OTHER)  # what a number's byte can be; a move's mask bits
_ALL_DIGITS = (1 << _DIGITS) - 1
_ANYTHING = _ALL_DIGITS | 1 << _OTHER
# An automaton with more states than this is not built (the regex engine is used).
_MAX_STATES = 20_000


class _NotDigitPattern(Exception):
    """A pattern uses syntax (or matches characters) outside what automata here handle."""


# A parsed pattern: ("digits", mask) | ("sequence", [node...]) | ("either", [node...])
# | ("repeat", (low, high or None, node)). A mask has bit d set when digit d matches.
_Node = tuple[str, Any]


class _PatternParser:
    """Parses the regular expressions of phonenumbers' metadata over digits.

    The syntax they use: digits, ``\\d``, classes of digits and ranges, groups
    (``(?:...)`` or ``(...)``), ``|`` and the quantifiers ``? * + {n} {n,} {n,m}``.
    Anything else raises :class:`_NotDigitPattern`.
    """

    def __init__(self, pattern: str) -> None:
        self.text = pattern
        self.at = 0

    def parse(self) -> _Node:
        node = self.either()
        if self.at != len(self.text):
            raise _NotDigitPattern(f"unexpected {self.text[self.at :]!r} in {self.text!r}")
        return node

    def peek(self) -> str:
        return self.text[self.at] if self.at < len(self.text) else ""

    def take(self, expected: str) -> None:
        if not self.text.startswith(expected, self.at):
            raise _NotDigitPattern(f"expected {expected!r} at {self.at} in {self.text!r}")
        self.at += len(expected)

    def either(self) -> _Node:
        branches = [self.sequence()]
        while self.peek() == "|":
            self.at += 1
            branches.append(self.sequence())
        return branches[0] if len(branches) == 1 else ("either", branches)

    def sequence(self) -> _Node:
        items = []
        while self.peek() not in ("", "|", ")"):
            items.append(self.repeated(self.atom()))
        return ("sequence", items)

    def atom(self) -> _Node:
        char = self.peek()
        if char == "(":
            self.at += 1
            if self.text.startswith("?:", self.at):
                self.at += 2
            node = self.either()
            self.take(")")
            return node
        if char == "[":
            return ("digits", self.digit_class())
        if char == "\\":
            self.take("\\d")
            return ("digits", _ALL_DIGITS)
        if char.isascii() and char.isdigit():
            self.at += 1
            return ("digits", 1 << int(char))
        raise _NotDigitPattern(f"unexpected {char!r} at {self.at} in {self.text!r}")

    def digit_class(self) -> int:
        self.take("[")
        mask = 0
        while self.peek() != "]":
            if self.text.startswith("\\d", self.at):
                self.at += 2
                mask = _ALL_DIGITS
                continue
            low = self.class_digit()
            high = low
            if self.peek() == "-" and self.text[self.at + 1 : self.at + 2] != "]":
                self.at += 1
                high = self.class_digit()
            if high < low:
                raise _NotDigitPattern(f"bad range in {self.text!r}")
            mask |= sum(1 << d for d in range(low, high + 1))
        self.take("]")
        return mask

    def class_digit(self) -> int:
        char = self.peek()
        if not (char.isascii() and char.isdigit()):
            raise _NotDigitPattern(f"unexpected {char!r} in a class in {self.text!r}")
        self.at += 1
        return int(char)

    def repeated(self, node: _Node) -> _Node:
        while True:
            char = self.peek()
            if char == "?":
                low, high = 0, 1
            elif char == "*":
                low, high = 0, None
            elif char == "+":
                low, high = 1, None
            elif char == "{":
                close = self.text.find("}", self.at)
                bounds = self.text[self.at + 1 : close].split(",") if close > 0 else []
                if not 1 <= len(bounds) <= 2 or not all(b.isdigit() for b in bounds[:1]):
                    raise _NotDigitPattern(f"bad repetition in {self.text!r}")
                if len(bounds) == 2 and bounds[1] and not bounds[1].isdigit():
                    raise _NotDigitPattern(f"bad repetition in {self.text!r}")
                low = int(bounds[0])
                high = low if len(bounds) == 1 else int(bounds[1]) if bounds[1] else None
                self.at = close
            else:
                return node
            self.at += 1
            if self.peek() in ("?", "+"):
                raise _NotDigitPattern(f"lazy or possessive repetition in {self.text!r}")
            node = ("repeat", (low, high, node))


class _Nfa:
    """A Thompson automaton: per state, digit moves (a 10-bit mask, target) and empty moves."""

    def __init__(self) -> None:
        self.moves: list[list[tuple[int, int]]] = []
        self.empty: list[list[int]] = []

    def state(self) -> int:
        self.moves.append([])
        self.empty.append([])
        return len(self.moves) - 1

    def add(self, node: _Node, start: int) -> int:
        """Add a parsed pattern after ``start``; return the state where it ends."""
        kind, value = node
        if kind == "digits":
            end = self.state()
            self.moves[start].append((value, end))
            return end
        if kind == "sequence":
            for item in value:
                start = self.add(item, start)
            return start
        if kind == "either":
            end = self.state()
            for branch in value:
                begin = self.state()
                self.empty[start].append(begin)
                self.empty[self.add(branch, begin)].append(end)
            return end
        low, high, item = value
        for _ in range(low):
            start = self.add(item, start)
        if high is None:
            loop = self.state()
            self.empty[start].append(loop)
            self.empty[self.add(item, loop)].append(loop)
            return loop
        for _ in range(high - low):
            skip = self.state()
            self.empty[start].append(skip)
            self.empty[self.add(item, start)].append(skip)
            start = skip
        return start


@dataclass(frozen=True)
class _Automaton:
    """A deterministic automaton over ASCII digits that runs several patterns at once.

    Attributes:
        table: the next state by state and symbol (the digits, then _END, then _OTHER);
            state 0 is the dead state, state 1 the start.
        accepts: ``accepts[state, i]``: pattern ``i`` matches a string that ends in ``state``.
    """

    table: np.ndarray
    accepts: np.ndarray

    def run(self, numbers: pa.StringArray) -> np.ndarray:
        """The state each number ends in."""
        offsets, data = string_bytes(numbers)
        starts, lengths = offsets[:-1], offsets[1:] - offsets[:-1]
        state = np.ones(len(numbers), dtype=np.intp)
        if len(data) == 0:
            return state
        symbols = data - np.uint8(ord("0"))
        if (symbols >= _DIGITS).any():
            symbols = np.where(symbols < _DIGITS, symbols, np.uint8(_OTHER))
        flat = self.table.ravel()
        width = self.table.shape[1]
        longest = int(lengths.max())
        if (lengths == longest).all():
            # All of one length (the common case): the symbols are a matrix's rows.
            matrix = symbols.reshape(len(numbers), longest)
            for position in range(longest):
                state = flat[state * width + matrix[:, position]]
            return state
        last = len(data) - 1
        for position in range(longest):
            symbol = np.where(
                lengths > position, symbols[np.minimum(starts + position, last)], _END
            )
            state = flat[state * width + symbol]
        return state


@cache
def _automaton(patterns: tuple[tuple[str, bool], ...]) -> _Automaton | None:
    """An automaton for ``(pattern, prefix)`` pairs: ``fullmatch``, or ``match`` when prefix.

    None when a pattern is not over digits only or the automaton would be too large.
    """
    nfa = _Nfa()
    start = nfa.state()
    accepting: dict[int, list[int]] = {}
    try:
        for index, (pattern, prefix) in enumerate(patterns):
            begin = nfa.state()
            nfa.empty[start].append(begin)
            end = nfa.add(_PatternParser(pattern).parse(), begin)
            if prefix:
                nfa.moves[end].append((_ANYTHING, end))  # anything may follow
            accepting.setdefault(end, []).append(index)
    except _NotDigitPattern:
        return None
    closures: dict[int, frozenset[int]] = {}

    def closure(state: int) -> frozenset[int]:
        found = closures.get(state)
        if found is None:
            seen, todo = {state}, [state]
            while todo:
                for target in nfa.empty[todo.pop()]:
                    if target not in seen:
                        seen.add(target)
                        todo.append(target)
            # Only states that move or accept tell two sets apart.
            found = frozenset(s for s in seen if nfa.moves[s] or s in accepting)
            closures[state] = found
        return found

    dead: frozenset[int] = frozenset()
    sets = [dead, closure(start)]
    number = {dead: 0, sets[1]: 1}
    rows = [[0] * (_OTHER + 1)]
    while len(rows) < len(sets):
        if len(sets) > _MAX_STATES:
            return None
        current = sets[len(rows)]
        targets: dict[int, set[int]] = {symbol: set() for symbol in _SYMBOLS}
        for state in current:
            for mask, target in nfa.moves[state]:
                reached = closure(target)
                for symbol in _SYMBOLS:
                    if mask >> symbol & 1:
                        targets[symbol] |= reached
        row = [0] * (_OTHER + 1)
        row[_END] = len(rows)  # after the end, a number stays where it is
        for symbol, symbol_targets in targets.items():
            key = frozenset(symbol_targets)
            if key not in number:
                number[key] = len(sets)
                sets.append(key)
            row[symbol] = number[key]
        rows.append(row)
    accepts = np.zeros((len(sets), len(patterns)), dtype=bool)
    for index, states in enumerate(sets):
        for state in states:
            accepts[index, accepting.get(state, [])] = True
    return _Automaton(table=np.array(rows, dtype=np.intp), accepts=accepts)


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


def _only_spaces_before(data: np.ndarray, starts: np.ndarray, stops: np.ndarray) -> np.ndarray:
    """Whether ``data[starts[i]:stops[i]]`` holds only spaces, for each i."""
    result = np.ones(len(starts), dtype=bool)
    some = np.flatnonzero(stops > starts)
    if len(some):
        bounds = np.column_stack((starts[some], stops[some])).ravel()
        not_spaces = np.add.reduceat((data != ord(" ")).view(np.uint8), bounds, dtype=np.int64)
        result[some] = not_spaces[::2] == 0
    return result


def _lengths(numbers: pa.StringArray) -> np.ndarray:
    """Each number's length, capped at ``_MAX_INPUT`` (numbers are ASCII: one byte a digit)."""
    offsets = string_bytes(numbers)[0]
    result: np.ndarray = np.minimum(offsets[1:] - offsets[:-1], _MAX_INPUT)
    return result


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
