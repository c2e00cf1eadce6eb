"""Calling-list rows: the mapping of file columns to fields, and the row rules.

Pure: a :class:`~contact_center.parsing.table_reader.Chunk` goes in, a :class:`ParsedChunk` of
valid rows and rejects comes out; no Prefect and no I/O. The load (and the
exclusion scrub, done in SQL at load time) is :mod:`contact_center.storage.list_load`.

Row rules, applied in this order; users rely on the counts:

1. a blank key -> reject ``missing_key``;
2. a key seen on an earlier row (in this chunk or an earlier one) -> reject
   ``duplicate_key``: the first row with a key decides, even when it was itself
   rejected;
3. no valid phone -> reject ``no_valid_phone``;
4. a ``timezone`` that is not an IANA zone name -> reject ``invalid_timezone``.

A row that passes keeps its valid phones (E.164, in their own fields) and drops the
invalid ones, which are counted in ``invalid_phones``, and gets its time zone
(:mod:`contact_center.parsing.record_zones`). Values are kept as text as written, trimmed
of surrounding white space; a blank typed field is stored as NULL.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from contact_center.exceptions import InvalidFile, InvalidParameter, quoted_columns
from contact_center.parsing.arrow_text import string_bytes
from contact_center.parsing.headers import match_column, normalise_header
from contact_center.parsing.json_text import json_objects
from contact_center.parsing.phones import check_default_country, normalise_phone_array
from contact_center.parsing.record_fields import (
    FIELD_LENGTHS,
    LOADED_FIELDS,
    PHONE_FIELDS,
    RECORD_FIELDS,
)
from contact_center.parsing.record_zones import ZoneAssigner, invalid_zone_mask
from contact_center.parsing.table_reader import Chunk
from contact_center.settings import DEFAULT_COUNTRY

__all__ = [
    "MISSING_KEY",
    "DUPLICATE_KEY",
    "NO_VALID_PHONE",
    "INVALID_TIMEZONE",
    "REJECT_REASONS",
    "VALID_COLUMNS",
    "ParsedChunk",
    "RecordParser",
    "validate_mapping",
]

MISSING_KEY = "missing_key"
DUPLICATE_KEY = "duplicate_key"
NO_VALID_PHONE = "no_valid_phone"
INVALID_TIMEZONE = "invalid_timezone"
#: Every reject reason, in the order the rules are applied.
REJECT_REASONS = (MISSING_KEY, DUPLICATE_KEY, NO_VALID_PHONE, INVALID_TIMEZONE)
#: The columns of :attr:`ParsedChunk.valid`, in order.
VALID_COLUMNS = ("row", "record_key", *LOADED_FIELDS, "custom_fields")
# A row's reason as a small code while a chunk is parsed: 0 for a valid row, else the
# position of its reason in _REASON_TEXT.
_VALID = 0
_REASON_TEXT = pa.array([None, *REJECT_REASONS], type=pa.string())
_REASON_CODE = {reason: code for code, reason in enumerate(REJECT_REASONS, start=1)}

_STR = pd.StringDtype("pyarrow", na_value=np.nan)


@dataclass(frozen=True)
class ParsedChunk:
    """One chunk's rows after the mapping and the row rules.

    Attributes:
        valid: the rows to load, an Arrow table with exactly the columns of
            :data:`VALID_COLUMNS`: ``row`` (int64, the file row), ``record_key``, the
            record fields, ``timezone_source`` and ``custom_fields`` (JSON text of the
            unmapped columns, or null when the file has none), all ``string`` with
            null for blank.
        rejects: the rejected rows as they were in the file, plus ``row`` and
            ``reason`` (one of :data:`REJECT_REASONS`), as a DataFrame.
        invalid_phones: phone values dropped from valid rows because they are not
            valid numbers.
    """

    valid: pa.Table
    rejects: pd.DataFrame
    invalid_phones: int

    @property
    def rows_read(self) -> int:
        """The data rows of the chunk."""
        return int(self.valid.num_rows) + len(self.rejects)


def validate_mapping(
    mapping: Mapping[str, str] | None,
    header: list[str],
    key_field: str,
    *,
    file: str,
) -> dict[str, str]:
    """Check a mapping against a file's header and return it in the file's spelling.

    Args:
        mapping: file column -> field, for typed fields only. Columns are matched
            ignoring case and surrounding spaces; field names must be record fields.
            ``None`` maps each column whose name (ignoring case and spaces) is a field
            name to that field.
        header: the file's column names.
        key_field: the field that identifies a record (e.g. ``account``).
        file: the file name for messages.

    Returns:
        File column (exactly as in the header) -> field. Other columns are custom.

    Raises:
        InvalidParameter: an unknown field or key field, two columns for one field,
            or a mapping that maps no phone or no key.
        InvalidFile: a mapped column is not in the file, or (without a mapping) the
            file has no key column or no phone column.
    """
    key = _field_name(key_field, "key_field")
    if mapping is None:
        fields = {normalise_header(name): name for name in RECORD_FIELDS}
        resolved = {
            column: fields[normalise_header(column)]
            for column in header
            if normalise_header(column) in fields
        }
        have = quoted_columns(header)
        if key not in resolved.values():
            raise InvalidFile(
                f"no column is named {key!r} (the key field); the file has {have}; "
                "name the key column in `mapping`",
                file=file,
            )
        if not set(PHONE_FIELDS) & set(resolved.values()):
            raise InvalidFile(
                f"no column is named phone1..phone10; the file has {have}; "
                "map the phone columns in `mapping`",
                file=file,
            )
        return resolved
    if not isinstance(mapping, Mapping):
        raise InvalidParameter(f"mapping must map file columns to fields, not {mapping!r}")
    resolved = {}
    for column, field in mapping.items():
        name = _field_name(field, f"mapping[{column!r}]")
        found = match_column(header, str(column), file=file)
        if found in resolved:
            raise InvalidParameter(f"mapping names the column {found!r} more than once")
        if name in resolved.values():
            raise InvalidParameter(f"mapping maps more than one column to the field {name!r}")
        resolved[found] = name
    if key not in resolved.values():
        raise InvalidParameter(
            f"mapping maps no column to the key field {key!r}; add '<column>: {key}'"
        )
    if not set(PHONE_FIELDS) & set(resolved.values()):
        raise InvalidParameter("mapping maps no column to a phone field (phone1..phone10)")
    return resolved


def _field_name(field: object, what: str) -> str:
    name = normalise_header(str(field)) if isinstance(field, str) else None
    if name not in RECORD_FIELDS:
        raise InvalidParameter(
            f"{what}: {field!r} is not a list field; fields are {', '.join(RECORD_FIELDS)} "
            "(other columns are kept as custom fields without mapping them)"
        )
    return name


class RecordParser:
    """Applies the mapping and the row rules chunk after chunk.

    It remembers every key it has seen, so that a key repeated in a later chunk is
    a ``duplicate_key`` too: parse the chunks of one file, in order, with one parser.

    Args:
        mapping: file column -> field, from :func:`validate_mapping`.
        key_field: the field that identifies a record.
        default_country: the region for national phone numbers.
        file: the file name for messages.
        zones: how records get their time zone (default: every source, no default).
    """

    def __init__(
        self,
        mapping: Mapping[str, str],
        key_field: str = "account",
        default_country: str = DEFAULT_COUNTRY,
        file: str = "",
        zones: ZoneAssigner | None = None,
    ) -> None:
        self.mapping = dict(mapping)
        self.key_field = _field_name(key_field, "key_field")
        self.default_country = check_default_country(default_country)
        self.file = file
        by_field = {field: column for column, field in self.mapping.items()}
        if self.key_field not in by_field:
            raise InvalidParameter(f"the mapping has no column for the key field {key_field!r}")
        self._key_column = by_field[self.key_field]
        self._phone_columns = {f: by_field[f] for f in PHONE_FIELDS if f in by_field}
        self._field_columns = by_field
        self._seen = _SeenKeys()
        self._limits = FIELD_LENGTHS
        self._zones = zones or ZoneAssigner()

    def parse(self, chunk: Chunk) -> ParsedChunk:
        """Map one chunk's rows to fields and apply the row rules.

        Args:
            chunk: rows of the file, with their file row numbers.

        Returns:
            The valid rows, the rejects and the count of dropped phone values.

        Raises:
            InvalidFile: a mapped column is missing from the chunk, or a value to load
                is longer than its field allows (names the row and column).
        """
        table = chunk.table
        missing = [c for c in self.mapping if c not in table.column_names]
        if missing:
            raise InvalidFile(f"the column {missing[0]!r} is missing", file=self.file)
        count = table.num_rows
        rows = np.arange(chunk.first_row, chunk.first_row + count, dtype=np.int64)
        trimmed = {
            column: _trimmed(values)
            for column, values in zip(table.column_names, table.columns, strict=True)
        }
        phones, phone_valid, phone_given = self._phones(trimmed, count)
        key = self._key(trimmed, phones)
        zone_column = self._field_columns.get("timezone")
        bad_zone = invalid_zone_mask(trimmed[zone_column]) if zone_column else None
        reason = self._reasons(key, np.asarray(phone_valid.any(axis=1), dtype=bool), bad_zone)
        keep = reason == _VALID
        valid = self._valid_frame(trimmed, phones, key, rows, keep)
        rejects = self._rejects(table, rows, reason, keep)
        invalid = int((phone_given & ~phone_valid)[keep].sum())
        # A chunk's temporaries are large; hand their pages back so that the peak
        # memory of a long file stays that of one chunk.
        pa.default_memory_pool().release_unused()
        return ParsedChunk(valid=valid, rejects=rejects, invalid_phones=invalid)

    # --- steps ------------------------------------------------------------------------

    @staticmethod
    def _rejects(
        table: pa.Table, rows: np.ndarray, reason: np.ndarray, keep: np.ndarray
    ) -> pd.DataFrame:
        """The rejected rows as they are in the file, with ``row`` and ``reason``."""
        drop = pa.array(~keep)
        columns = {"row": pa.array(rows).filter(drop)}
        names = _reject_column_names(table.column_names)
        for name, original in zip(names, table.columns, strict=True):
            columns[name] = original.filter(drop).cast(pa.string())
        columns["reason"] = _REASON_TEXT.take(pa.array(reason[~keep]))
        rejects: pd.DataFrame = pa.table(columns).to_pandas(types_mapper=_str_only)
        return rejects

    def _phones(
        self, trimmed: dict[str, pa.Array], count: int
    ) -> tuple[dict[str, pa.Array], np.ndarray, np.ndarray]:
        """E.164 per phone field (one vectorised call for all of them) and masks."""
        fields = list(self._phone_columns)
        if not fields:
            return {}, np.zeros((count, 0), bool), np.zeros((count, 0), bool)
        stacked = pa.concat_arrays([trimmed[self._phone_columns[f]] for f in fields])
        offsets = string_bytes(stacked)[0]
        filled = offsets[1:] > offsets[:-1]  # not blank (no cell is null)
        # Blank cells (most of phone2..phone10, usually) need no work: they become null.
        found = normalise_phone_array(stacked.filter(pa.array(filled)), self.default_country)
        index = np.full(len(stacked), -1, dtype=np.int64)
        index[filled] = np.arange(len(found))
        normalised = found.take(pa.array(index, mask=~filled))
        given = filled.reshape(len(fields), count).T
        valid = ~np.asarray(normalised.is_null()).reshape(len(fields), count).T
        phones = {f: normalised.slice(i * count, count) for i, f in enumerate(fields)}
        return phones, valid, given

    def _key(self, trimmed: dict[str, pa.Array], phones: dict[str, pa.Array]) -> pa.Array:
        """The record key: the key field's text; for a phone key, its E.164 when valid."""
        raw = trimmed[self._key_column]
        if self.key_field in phones:
            return pc.coalesce(phones[self.key_field], raw)
        return raw

    def _reasons(
        self, key: pa.Array, has_phone: np.ndarray, bad_zone: np.ndarray | None
    ) -> np.ndarray:
        """Each row's reject reason as a code (see :data:`_REASON_CODE`); remembers the keys."""
        count = len(key)
        offsets = string_bytes(key)[0]
        blank = offsets[1:] == offsets[:-1]  # the key has no null
        # The first row with a key decides: within the chunk by the keys' text (codes
        # are given in order of first appearance), across chunks by the keys remembered.
        encoded = pc.dictionary_encode(key)
        first_rows = np.unique(np.asarray(encoded.indices), return_index=True)[1]
        first = np.zeros(count, dtype=bool)
        first[first_rows] = True
        filled = ~blank[first_rows]
        seen_before = np.zeros(count, dtype=bool)
        seen_before[first_rows[filled]] = self._seen.remember(
            encoded.dictionary.filter(pa.array(filled))
        )
        reason = np.zeros(count, dtype=np.int8)
        if bad_zone is not None:
            reason[bad_zone] = _REASON_CODE[INVALID_TIMEZONE]
        reason[~has_phone] = _REASON_CODE[NO_VALID_PHONE]
        reason[(~first | seen_before) & ~blank] = _REASON_CODE[DUPLICATE_KEY]
        reason[blank] = _REASON_CODE[MISSING_KEY]
        return reason

    def _valid_frame(
        self,
        trimmed: dict[str, pa.Array],
        phones: dict[str, pa.Array],
        key: pa.Array,
        rows: np.ndarray,
        keep: np.ndarray,
    ) -> pa.Table:
        """The valid rows: the rows kept, in :data:`VALID_COLUMNS`."""
        if not keep.all():
            # Only kept rows go further, so that the custom fields' JSON is built once.
            mask = pa.array(keep)
            trimmed = {c: values.filter(mask) for c, values in trimmed.items()}
            phones = {f: values.filter(mask) for f, values in phones.items()}
            key, rows = key.filter(mask), rows[keep]
        none = pa.nulls(len(rows), pa.string())
        columns: dict[str, pa.Array] = {"row": pa.array(rows), "record_key": key}
        for field in RECORD_FIELDS:
            if field in phones:
                columns[field] = phones[field]
            elif field in self._field_columns:
                columns[field] = _blank_to_null(trimmed[self._field_columns[field]])
            else:
                columns[field] = none
        zones = self._zones.assign(columns, list(self._phone_columns))
        columns["timezone"], columns["timezone_source"] = zones
        custom = {c: values for c, values in trimmed.items() if c not in self.mapping}
        columns["custom_fields"] = json_objects(custom) if custom else none
        valid = pa.table(columns)
        self._check_lengths(valid)
        return valid

    def _check_lengths(self, valid: pa.Table) -> None:
        """A value longer than its database column is a file error, named by row and column."""
        for field, limit in self._limits.items():
            if valid.num_rows == 0:
                return
            values = valid[field]
            if values.null_count == len(values):
                continue
            # A character takes one byte or more: most columns are short enough by bytes.
            offsets = string_bytes(values)[0]
            if int((offsets[1:] - offsets[:-1]).max()) <= limit:
                continue
            lengths = np.asarray(pc.fill_null(pc.utf8_length(values), 0))
            too_long = np.flatnonzero(lengths > limit)
            if len(too_long):
                at = int(too_long[0])
                column = self._field_columns.get(field, self._key_column)
                raise InvalidFile(
                    f"the value is {int(lengths[at])} characters long; {field} takes at "
                    f"most {limit}",
                    file=self.file,
                    row=int(valid["row"][at].as_py()),
                    column=column,
                )


# --- keys seen in earlier chunks -----------------------------------------------------------


class _SeenKeys:
    """The keys of earlier chunks, as pandas' 64-bit hashes in one sorted array.

    8 bytes a key, so memory stays small for long files. Two different keys share a
    hash with probability 2**-64 (docs/performance.md gives the odds per file); the
    later one would then be rejected as ``duplicate_key``, never merged silently.
    """

    def __init__(self) -> None:
        self._hashes = np.empty(0, dtype=np.uint64)

    def remember(self, keys: pa.Array) -> np.ndarray:
        """Whether each key was seen before; remember the ones that were not.

        Args:
            keys: distinct keys (no two the same text).
        """
        # As bytes objects, which pandas hashes as they are (text it would encode first).
        as_bytes = keys.cast(pa.binary()).to_numpy(zero_copy_only=False)
        hashes = pd.util.hash_array(as_bytes, categorize=False)
        # Sorted, the look-ups walk the sorted array forward, and the places they find
        # are where the new hashes go.
        order = np.argsort(hashes)
        ordered = hashes[order]
        at = np.searchsorted(self._hashes, ordered)
        inside = at < len(self._hashes)
        found_sorted = np.zeros(len(ordered), dtype=bool)
        found_sorted[inside] = self._hashes[at[inside]] == ordered[inside]
        new = ~found_sorted
        self._hashes = np.insert(self._hashes, at[new], ordered[new])
        found = np.empty(len(order), dtype=bool)
        found[order] = found_sorted
        return found


# --- helpers ---------------------------------------------------------------------------


def _trimmed(values: pa.ChunkedArray | pa.Array) -> pa.Array:
    """Text without surrounding white space, as one Arrow array; null becomes blank."""
    array = values.combine_chunks() if isinstance(values, pa.ChunkedArray) else values
    if array.type != pa.string():
        array = array.cast(pa.string())
    if array.null_count:
        array = pc.fill_null(array, "")
    # Most columns have nothing to trim: a look at each value's first and last byte
    # is cheaper than a copy. It may say yes for nothing (any non-ASCII end byte), never
    # no for something, and the trim itself is exact.
    if _may_need_trim(array):
        array = pc.utf8_trim_whitespace(array)
    return array


def _may_need_trim(array: pa.Array) -> bool:
    """Whether some value starts or ends with white space, or with a non-ASCII byte.

    The bytes that may be (part of) white space that utf8_trim_whitespace removes:
    ASCII 0x09-0x0D and 0x1C-0x20, and any non-ASCII byte (Unicode spaces, U+00A0...).
    """
    if len(array) == 0:
        return False
    offsets, data = string_bytes(array)
    if len(data) == 0:
        return False
    # An empty value reads a neighbour's byte (clipped at the ends): at worst a yes.
    for ends in (data.take(offsets[:-1], mode="clip"), data.take(offsets[1:] - 1, mode="clip")):
        # Comparisons are cheaper than a table look-up per byte.
        if ((ends - np.uint8(0x09) < 5) | (ends - np.uint8(0x1C) < 5) | (ends >= 0x80)).any():
            return True
    return False


def _blank_to_null(values: pa.Array) -> pa.Array:
    return pc.if_else(pc.equal(values, ""), pa.scalar(None, pa.string()), values)


def _str_only(arrow_type: pa.DataType) -> pd.api.extensions.ExtensionDtype | None:
    return _STR if pa.types.is_string(arrow_type) else None


def _reject_column_names(columns: list[str]) -> list[str]:
    """The file's column names, with ``row`` and ``reason`` renamed so that ours fit."""
    ours = {"row", "reason"}
    return [f"{c} (file)" if normalise_header(c) in ours else c for c in columns]
