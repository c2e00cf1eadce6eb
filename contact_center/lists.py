"""Calling-list rows: the mapping of file columns to fields, and the row rules.

Pure: a :class:`~contact_center.files.Chunk` goes in, a :class:`ParsedChunk` of
valid rows and rejects comes out; no Prefect and no I/O. The load (and the
exclusion scrub, done in SQL at load time) is :mod:`contact_center.list_load`.

Row rules, applied in this order; users rely on the counts:

1. a blank key -> reject ``missing_key``;
2. a key seen on an earlier row (in this chunk or an earlier one) -> reject
   ``duplicate_key``: the first row with a key decides, even when it was itself
   rejected;
3. no valid phone -> reject ``no_valid_phone``.

A row that passes keeps its valid phones (E.164, in their own fields) and drops the
invalid ones, which are counted in ``invalid_phones``. Values are kept as text as
written, trimmed of surrounding white space; a blank typed field is stored as NULL.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from contact_center.exceptions import InvalidFile, InvalidParameter
from contact_center.files import Chunk, match_column, normalise_header
from contact_center.models import PHONE_FIELDS, RECORD_FIELDS, ListRecord
from contact_center.phones import check_default_country, normalise_phones
from contact_center.settings import DEFAULT_COUNTRY

__all__ = [
    "MISSING_KEY",
    "DUPLICATE_KEY",
    "NO_VALID_PHONE",
    "REJECT_REASONS",
    "VALID_COLUMNS",
    "ParsedChunk",
    "RecordParser",
    "validate_mapping",
]

MISSING_KEY = "missing_key"
DUPLICATE_KEY = "duplicate_key"
NO_VALID_PHONE = "no_valid_phone"
#: Every reject reason, in the order the rules are applied.
REJECT_REASONS = (MISSING_KEY, DUPLICATE_KEY, NO_VALID_PHONE)
#: The columns of :attr:`ParsedChunk.valid`, in order.
VALID_COLUMNS = ("row", "record_key", *RECORD_FIELDS, "custom_fields")

_STR = pd.StringDtype("pyarrow", na_value=np.nan)
# JSON needs these escaped; other control characters are rare and go through json.dumps.
_JSON_ESCAPES = (("\\", "\\\\"), ('"', '\\"'), ("\n", "\\n"), ("\r", "\\r"), ("\t", "\\t"))
_OTHER_CONTROL = r"[\x00-\x08\x0b\x0c\x0e-\x1f]"


@dataclass(frozen=True)
class ParsedChunk:
    """One chunk's rows after the mapping and the row rules.

    Attributes:
        valid: the rows to load, with exactly the columns of :data:`VALID_COLUMNS`:
            ``row`` (int, the file row), ``record_key``, the record fields and
            ``custom_fields`` (JSON text of the unmapped columns, or NA when the file
            has none), all ``str`` with NA for blank.
        rejects: the rejected rows as they were in the file, plus ``row`` and
            ``reason`` (one of :data:`REJECT_REASONS`).
        invalid_phones: phone values dropped from valid rows because they are not
            valid numbers.
    """

    valid: pd.DataFrame
    rejects: pd.DataFrame
    invalid_phones: int

    @property
    def rows_read(self) -> int:
        """The data rows of the chunk."""
        return len(self.valid) + len(self.rejects)


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
        have = ", ".join(repr(column) for column in header)
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
    """

    def __init__(
        self,
        mapping: Mapping[str, str],
        key_field: str = "account",
        default_country: str = DEFAULT_COUNTRY,
        file: str = "",
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
        self._seen: set[str] = set()
        self._limits = _field_limits()

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
        frame = chunk.frame
        missing = [c for c in self.mapping if c not in frame.columns]
        if missing:
            raise InvalidFile(f"the column {missing[0]!r} is missing", file=self.file)
        count = len(frame)
        rows = np.arange(chunk.first_row, chunk.first_row + count, dtype=np.int64)
        trimmed = {column: _trimmed(frame[column]) for column in frame.columns}
        phones, phone_valid, phone_given = self._phones(trimmed)
        key = self._key(trimmed, phones)
        reason = self._reasons(key, np.asarray(phone_valid.any(axis=1), dtype=bool))
        keep = reason.isna().to_numpy()
        valid = self._valid_frame(trimmed, phones, key, rows, keep)
        rejects = frame.iloc[np.flatnonzero(~keep)].copy()
        rejects.columns = pd.Index(_reject_column_names(list(frame.columns)))
        rejects.insert(0, "row", rows[~keep])
        rejects["reason"] = reason[~keep].astype(_STR)
        rejects = rejects.reset_index(drop=True)
        invalid = int((phone_given & ~phone_valid)[keep].sum())
        return ParsedChunk(valid=valid, rejects=rejects, invalid_phones=invalid)

    # --- steps ------------------------------------------------------------------------

    def _phones(
        self, trimmed: dict[str, pd.Series]
    ) -> tuple[dict[str, pd.Series], np.ndarray, np.ndarray]:
        """E.164 per phone field (one vectorised call for all of them) and masks."""
        fields = list(self._phone_columns)
        count = len(next(iter(trimmed.values()))) if trimmed else 0
        if not fields:
            return {}, np.zeros((count, 0), bool), np.zeros((count, 0), bool)
        stacked = pd.concat(
            [trimmed[self._phone_columns[f]] for f in fields], ignore_index=True
        ).astype(_STR)
        normalised = normalise_phones(stacked, self.default_country)
        values = np.asarray(normalised.array, dtype=object).reshape(len(fields), count)
        given = (stacked.fillna("") != "").to_numpy().reshape(len(fields), count).T
        valid = normalised.notna().to_numpy().reshape(len(fields), count).T
        phones = {f: pd.Series(values[i], dtype=_STR) for i, f in enumerate(fields)}
        return phones, valid, given

    def _key(self, trimmed: dict[str, pd.Series], phones: dict[str, pd.Series]) -> pd.Series:
        """The record key: the key field's text; for a phone key, its E.164 when valid."""
        raw = trimmed[self._key_column].fillna("")
        if self.key_field in phones:
            raw = phones[self.key_field].fillna(raw)
        return raw.reset_index(drop=True)

    def _reasons(self, key: pd.Series, has_phone: np.ndarray) -> pd.Series:
        """The reject reason of each row (NA: the row is valid); updates the seen keys."""
        blank = (key == "").to_numpy()
        key_list = key.tolist()
        # The first row with a key decides, across chunks too.
        seen_before = np.fromiter(map(self._seen.__contains__, key_list), bool, len(key_list))
        repeated = key.duplicated(keep="first").to_numpy() | seen_before
        reason = np.full(len(key), None, dtype=object)
        reason[~has_phone] = NO_VALID_PHONE
        reason[repeated & ~blank] = DUPLICATE_KEY
        reason[blank] = MISSING_KEY
        self._seen.update(k for k, b in zip(key_list, blank, strict=True) if not b)
        return pd.Series(reason, dtype=object)

    def _valid_frame(
        self,
        trimmed: dict[str, pd.Series],
        phones: dict[str, pd.Series],
        key: pd.Series,
        rows: np.ndarray,
        keep: np.ndarray,
    ) -> pd.DataFrame:
        columns: dict[str, object] = {"row": pd.array(rows[keep], dtype="int64")}
        columns["record_key"] = _blank_to_na(key[keep])
        for field in RECORD_FIELDS:
            if field in phones:
                columns[field] = phones[field][keep].reset_index(drop=True)
            elif field in self._field_columns:
                values = trimmed[self._field_columns[field]].reset_index(drop=True)
                columns[field] = _blank_to_na(values[keep])
            else:
                columns[field] = pd.Series([np.nan] * int(keep.sum()), dtype=_STR)
        custom = [c for c in trimmed if c not in self.mapping]
        if custom:
            kept = {c: trimmed[c].reset_index(drop=True)[keep] for c in custom}
            columns["custom_fields"] = pd.Series(_json_objects(kept), dtype=_STR)
        else:
            columns["custom_fields"] = pd.Series([np.nan] * int(keep.sum()), dtype=_STR)
        valid = pd.DataFrame(
            {name: _reindexed(value) for name, value in columns.items()},
            columns=list(VALID_COLUMNS),
        )
        self._check_lengths(valid)
        return valid

    def _check_lengths(self, valid: pd.DataFrame) -> None:
        """A value longer than its database column is a file error, named by row and column."""
        for field, limit in self._limits.items():
            if field not in valid.columns or len(valid) == 0:
                continue
            lengths = valid[field].str.len().fillna(0).to_numpy()
            too_long = np.flatnonzero(lengths > limit)
            if len(too_long):
                at = int(too_long[0])
                column = self._field_columns.get(field, self._key_column)
                raise InvalidFile(
                    f"the value is {int(lengths[at])} characters long; {field} takes at "
                    f"most {limit}",
                    file=self.file,
                    row=int(valid["row"].iloc[at]),
                    column=column,
                )


# --- helpers ---------------------------------------------------------------------------


def _trimmed(values: pd.Series) -> pd.Series:
    """Text without surrounding white space; NA becomes blank."""
    return values.astype(_STR).fillna("").str.strip().reset_index(drop=True)


def _blank_to_na(values: pd.Series) -> pd.Series:
    out = values.reset_index(drop=True).astype(_STR)
    return out.mask(out == "")


def _reindexed(value: object) -> object:
    return value.reset_index(drop=True) if isinstance(value, pd.Series) else value


def _reject_column_names(columns: list[str]) -> list[str]:
    """The file's column names, with ``row`` and ``reason`` renamed so that ours fit."""
    ours = {"row", "reason"}
    return [f"{c} (file)" if normalise_header(c) in ours else c for c in columns]


def _json_objects(columns: dict[str, pd.Series]) -> pa.Array:
    """One JSON object of text values per row, built over whole columns."""
    parts: list[pa.Array | str] = []
    for position, (name, values) in enumerate(columns.items()):
        parts.append(("{" if position == 0 else ",") + json.dumps(name.strip()) + ":")
        parts.append(_json_strings(values))
    parts.append("}")
    return pc.binary_join_element_wise(*parts, "")


def _json_strings(values: pd.Series) -> pa.Array:
    """Each value as a JSON string literal (quoted and escaped)."""
    text = pa.array(values.fillna(""), type=pa.string(), from_pandas=True)
    rare = np.asarray(pc.match_substring_regex(text, _OTHER_CONTROL).fill_null(False))
    for raw, escaped in _JSON_ESCAPES:
        text = pc.replace_substring(text, raw, escaped)
    quoted = pc.binary_join_element_wise('"', text, '"', "")
    if rare.any():
        # Other control characters: json.dumps for these few rows.
        originals = values.to_numpy(dtype=object)
        fixed = quoted.to_pylist()
        for index in np.flatnonzero(rare):
            fixed[index] = json.dumps(originals[index], ensure_ascii=False)
        quoted = pa.array(fixed, type=pa.string())
    return quoted


def _field_limits() -> dict[str, int]:
    """The longest text each length-limited column of list_records takes."""
    limits = {}
    for name in ("record_key", *RECORD_FIELDS):
        length = getattr(ListRecord.__table__.c[name].type, "length", None)
        if length:
            limits[name] = int(length)
    return limits
