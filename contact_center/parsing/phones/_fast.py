"""The fast path: phonenumbers' ``parse`` + ``is_valid_number`` over whole arrays.

Private to :mod:`contact_center.parsing.phones`. It decides the common shape -- an optional
leading ``+``, then ASCII digits and the separators ``space ( ) - .`` -- for every
country whose metadata needs no national-prefix *transform rule*. It is a
step-by-step transcription of phonenumbers' own ``parse`` for that shape (the
country code after ``+`` or after the default country's international prefix, e.g.
``011`` from the US; the default country's code written without ``+``;
national-prefix stripping; the possible-length test) and of ``is_valid_number``
(the region among the regions of a calling code, then the number-type patterns with
their possible lengths). Every pattern in it is phonenumbers' own metadata
(:mod:`._metadata`). Large groups of numbers (one calling code) run over arrays,
small ones value by value with the same steps and Python's ``re``.

Why the shape is safe: the library's extension patterns all need a letter, ``#``,
``,`` or ``;``; its "second number" cut needs ``/`` or ``\\``; its alpha conversion
needs three letters: none of them can fire on it. A value with fewer than two
digits, in pure ASCII, cannot be a number for the library either (its viability
check needs two digits). Everything else goes to the reference, once per unique value.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from phonenumbers import COUNTRY_CODE_TO_REGION_CODE

from contact_center.exceptions import InvalidParameter
from contact_center.parsing.arrow_text import string_bytes
from contact_center.parsing.phones._match import (
    _SMALL_ARRAY,
    _compiled,
    _mask,
    _prefix_match,
    _strip_prefix,
)
from contact_center.parsing.phones._metadata import (
    _KEEPS_PREFIX,
    _MAX_INPUT,
    _MAX_NSN,
    _MIN_NSN,
    _country_codes,
    _Length,
    _lengths,
    _main_region,
    _region_rules,
    _Rules,
    _validity,
)

#: The reference for the values the fast path does not decide: phonenumbers itself.
Reference = Callable[[str, str], str | None]


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


def _normalise(array: pa.StringArray, region: str, reference: Reference) -> pa.Array:
    """E.164 text or null for each value: the fast path, then ``reference`` for the rest.

    Args:
        array: the phones as written.
        region: the default country (a region code phonenumbers knows).
        reference: answers one value as phonenumbers does (see
            :func:`contact_center.parsing.phones.normalise_phone`); called once per unique value
            that the fast path leaves.
    """
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
        answers = {text: reference(text, region) for text in set(texts)}
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


def _only_spaces_before(data: np.ndarray, starts: np.ndarray, stops: np.ndarray) -> np.ndarray:
    """Whether ``data[starts[i]:stops[i]]`` holds only spaces, for each i."""
    result = np.ones(len(starts), dtype=bool)
    some = np.flatnonzero(stops > starts)
    if len(some):
        bounds = np.column_stack((starts[some], stops[some])).ravel()
        not_spaces = np.add.reduceat((data != ord(" ")).view(np.uint8), bounds, dtype=np.int64)
        result[some] = not_spaces[::2] == 0
    return result
