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
   pattern in it is phonenumbers' own metadata, run over whole arrays by Arrow's RE2
   (which phonenumbers' C++ sibling uses too; both pick the leftmost-first match) or,
   for small arrays, by Python's ``re``. Why the shape is safe: the library's
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
formats and countries, and for several default countries.
"""

from __future__ import annotations

import re
import traceback
from collections.abc import Iterator
from dataclasses import dataclass, field
from enum import Enum
from functools import cache, lru_cache

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
# The shape the fast path decides (see the module docstring).
_FAST_SHAPE = r"^ *\+?[0-9 ().\-]+$"
_LEADING_PLUS = r"^ *\+"
_NON_DIGITS = r"[^0-9]"
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
        shape = _mask(pc.match_substring_regex(array, _FAST_SHAPE))
        plus = shape & _mask(pc.starts_with(pc.utf8_ltrim(array, " "), "+"))
        # The digits: kept from the UTF-8 bytes with numpy (Arrow's regex replace is slow).
        offsets, data = string_bytes(array)
        length = offsets[1:] - offsets[:-1]
        is_digit = (data - np.uint8(0x30)) < 10
        digit_count = np.zeros(count, dtype=np.int64)
        filled = np.flatnonzero(length > 0)
        if len(filled):
            digit_count[filled] = np.add.reduceat(
                is_digit.view(np.uint8), offsets[filled], dtype=np.int64
            )
        fast = shape & (digit_count >= 3) & (length <= _MAX_INPUT)
        # phonenumbers needs two digits to see a number; in ASCII, only 0-9 are digits.
        ascii_only = _mask(pc.string_is_ascii(array))
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
    country = np.zeros(len(rows), dtype=np.int64)
    width = np.zeros(len(rows), dtype=np.int64)
    not_zero = ~_mask(pc.starts_with(number, "0"))
    # _extract_country_code: the first of 1, 2, 3 leading digits that is a known code.
    for size in (3, 2, 1):
        head = pc.utf8_slice_codeunits(number, 0, size)
        known = _mask(pc.is_in(head, value_set=_country_code_strings(size))) & not_zero
        country[known] = np.asarray(pc.cast(head.filter(pa.array(known)), pa.int64()))
        width[known] = size
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
    joined = pc.binary_join_element_wise(f"+{code}", number, "")
    return pc.if_else(pa.array(valid), joined, pa.scalar(None, pa.string()))


def _is_valid(code: int, nsn: pa.StringArray) -> np.ndarray:
    """``is_valid_number`` for numbers of one calling code: pick the region, then its types."""
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


@cache
def _country_code_strings(size: int) -> pa.Array:
    return pa.array(sorted(str(c) for c in COUNTRY_CODE_TO_REGION_CODE if len(str(c)) == size))


# --- array helpers ---------------------------------------------------------------------


def _full_match(numbers: pa.StringArray, pattern: str) -> np.ndarray:
    """``re.fullmatch(pattern, number)`` for each number."""
    if len(numbers) < _SMALL_ARRAY:
        match = _compiled(pattern).fullmatch
        return np.fromiter((match(n) is not None for n in numbers.to_pylist()), bool, len(numbers))
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


def _lengths(numbers: pa.StringArray) -> np.ndarray:
    result: np.ndarray = np.minimum(np.asarray(pc.utf8_length(numbers)), _MAX_INPUT)
    return result


def _mask(array: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """A boolean Arrow array as numpy, nulls as False."""
    filled = pc.fill_null(array, False)
    return np.asarray(filled, dtype=bool)


def _replace_rows(
    array: pa.StringArray, rows: np.ndarray, values: pa.StringArray
) -> pa.StringArray:
    """``array`` with ``array[rows] = values``."""
    mask = np.zeros(len(array), dtype=bool)
    mask[rows] = True
    return pc.replace_with_mask(array, pa.array(mask), values)
