"""Each list record's time zone, from its own data.

Pure: Arrow arrays in, Arrow arrays out; no Prefect, and no I/O but the cache of
the ZIP table (see :func:`_zip_table`). The list parser
(:mod:`contact_center.parsing.lists`) calls :meth:`ZoneAssigner.assign` on each chunk's
valid rows.

A record's zone comes from the first source, in the import's precedence, that
decides it (the default precedence is :data:`ZONE_SOURCES`):

- ``column``: the file's ``timezone`` field, an IANA name (checked by the parser:
  an unknown name rejects the row as ``invalid_timezone``);
- ``zip``: the US ZIP code, through the ``zipcodes`` package's ZIP -> zone table;
- ``phone``: the first valid phone, through ``phonenumbers``' prefix -> zones table
  (the data behind ``phonenumbers.timezone.time_zones_for_number``; a number
  known only by its country code, when the country has several zones, is left
  to the next source);
- ``state``: the US state or territory, through the ``us`` package;

then the import's ``default_timezone`` (source ``default``), else none. A source
may give several zones (an area code or a state that spans two): the record keeps
them all, sorted and separated by a space (``America/Chicago America/New_York``),
and the calling-hours check wants every one of them open
(:mod:`contact_center.storage.calling_hours`).

Every look-up is done once per distinct value: the libraries' tables are turned
into Arrow arrays once per process, and a chunk's values are matched against them
with ``pyarrow.compute.index_in`` (a hash look-up in C++), never one Python call a
row.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Iterable, Mapping, Sequence
from functools import cache
from pathlib import Path
from typing import Literal
from zoneinfo import available_timezones

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pyarrow import feather

from contact_center.exceptions import InvalidParameter
from contact_center.parsing.arrow_text import string_bytes
from contact_center.settings import get_settings

__all__ = [
    "DEFAULT_SOURCE",
    "ZONE_SEPARATOR",
    "ZONE_SOURCES",
    "ZoneAssigner",
    "ZoneSource",
    "canonical_zone",
    "check_default_timezone",
    "check_zone_precedence",
    "invalid_zone_mask",
    "split_zones",
    "warm_zone_tables",
]

#: A source of a record's zone (typed, so that Prefect's parameter form offers them).
ZoneSource = Literal["column", "zip", "phone", "state"]
#: The sources a zone can come from, in the default precedence.
ZONE_SOURCES: tuple[ZoneSource, ...] = ("column", "zip", "phone", "state")
#: ``timezone_source`` of a record whose zone is the import's default.
DEFAULT_SOURCE = "default"
#: Between the zones of a record that has several.
ZONE_SEPARATOR = " "

#: The lengths of a ZIP as written: 02134, 021341234, 02134-1234.
_ZIP_LENGTHS = (5, 9, 10)


def check_zone_precedence(value: object) -> tuple[str, ...]:
    """The sources of a record's zone, in order (``None``: :data:`ZONE_SOURCES`).

    Raises:
        InvalidParameter: not a list of distinct names from :data:`ZONE_SOURCES`.
    """
    if value is None:
        return ZONE_SOURCES
    if isinstance(value, str) or not isinstance(value, Sequence):
        raise InvalidParameter(
            f"timezone_precedence {value!r} must be a list of sources, e.g. {list(ZONE_SOURCES)!r}"
        )
    unknown = [v for v in value if v not in ZONE_SOURCES]
    if unknown:
        raise InvalidParameter(
            f"timezone_precedence names {unknown[0]!r}, which is not one of "
            f"{', '.join(ZONE_SOURCES)}"
        )
    if len(set(value)) != len(value):
        raise InvalidParameter(f"timezone_precedence {list(value)!r} names a source twice")
    return tuple(str(v) for v in value)


def check_default_timezone(value: object) -> str | None:
    """The list's default zone as its IANA name, or ``None``.

    Raises:
        InvalidParameter: not a known IANA time zone.
    """
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    name = canonical_zone(value) if isinstance(value, str) else None
    if name is None:
        raise InvalidParameter(
            f"default_timezone {value!r} is not an IANA time zone (e.g. 'America/New_York')"
        )
    return name


def canonical_zone(name: str) -> str | None:
    """The IANA zone ``name`` as the tz database spells it (any case), or ``None``."""
    return _known_zones().get(name.strip().lower())


def split_zones(value: str | None) -> tuple[str, ...]:
    """The zones of a stored ``timezone`` value (empty for none)."""
    return tuple(value.split()) if value else ()


def invalid_zone_mask(values: pa.Array) -> np.ndarray:
    """Which values are filled but not an IANA zone name (any case).

    Args:
        values: trimmed text, blank for none (no nulls).
    """
    encoded = pc.dictionary_encode(values)
    distinct = encoded.dictionary.to_pylist()
    bad = np.array([bool(v) and canonical_zone(v) is None for v in distinct], dtype=bool)
    return bad[np.asarray(encoded.indices)] if len(bad) else np.zeros(len(values), dtype=bool)


class ZoneAssigner:
    """Gives each record a zone and the source it came from.

    Args:
        precedence: the sources, first decides (see :func:`check_zone_precedence`).
        default: the zone of records no source decides (an IANA name), or ``None``.
    """

    def __init__(self, precedence: Iterable[str] = ZONE_SOURCES, default: str | None = None):
        self.precedence = tuple(precedence)
        self.default = default
        self._source_text = pa.array([None, *self.precedence, DEFAULT_SOURCE], pa.string())

    def assign(
        self, fields: Mapping[str, pa.Array], phone_fields: Sequence[str]
    ) -> tuple[pa.Array, pa.Array]:
        """The ``timezone`` and ``timezone_source`` of each row.

        Args:
            fields: the record fields of the valid rows (``timezone``, ``zip``,
                ``state`` and the phones, E.164 or null), all the same length; a
                field the file does not fill may be missing.
            phone_fields: the phone fields, in the order they are tried.

        Returns:
            Two string arrays: the zones (several separated by a space) and the
            source (``column``, ``zip``, ``phone``, ``state`` or ``default``), null
            where nothing decided.
        """
        count = len(next(iter(fields.values()))) if fields else 0
        # Zones travel as codes into one vocabulary (numpy int32) until the end: the
        # text of each row is made once, not once per source.
        zone = np.zeros(count, dtype=np.int32)
        source = np.zeros(count, dtype=np.int8)
        for position, name in enumerate(self.precedence, start=1):
            open_rows = source == 0
            if not open_rows.any():
                break
            found = _codes_from(name, fields, phone_fields, open_rows)
            if found is None:
                continue
            got = open_rows & (found > 0)
            zone[got] = found[got]
            source[got] = position
        if self.default is not None:
            open_rows = source == 0
            zone[open_rows] = _VOCABULARY.code(self.default)
            source[open_rows] = len(self.precedence) + 1
        return _VOCABULARY.text(zone), self._source_text.take(pa.array(source))


class _Vocabulary:
    """Every zone text met so far (one zone or several), numbered from 1; 0 is none."""

    def __init__(self) -> None:
        self._codes: dict[str, int] = {}
        self._texts: list[str | None] = [None]
        self._array: pa.Array | None = None

    def code(self, text: str | None) -> int:
        if text is None:
            return 0
        found = self._codes.get(text)
        if found is None:
            found = self._codes[text] = len(self._texts)
            self._texts.append(text)
            self._array = None
        return found

    def codes(self, texts: Iterable[str | None]) -> np.ndarray:
        return np.array([self.code(t) for t in texts], dtype=np.int32)

    def text(self, codes: np.ndarray) -> pa.Array:
        if self._array is None:
            self._array = pa.array(self._texts, pa.string())
        return self._array.take(pa.array(codes))


_VOCABULARY = _Vocabulary()


def _codes_from(
    source: str,
    fields: Mapping[str, pa.Array],
    phone_fields: Sequence[str],
    open_rows: np.ndarray,
) -> np.ndarray | None:
    """The zone code one source gives each row (0: it does not decide)."""
    if source == "phone":
        return _phone_codes([fields[f] for f in phone_fields if f in fields], open_rows)
    values = fields.get({"column": "timezone", "zip": "zip", "state": "state"}[source])
    if values is None or values.null_count == len(values):
        return None
    if source == "column":
        return _map_distinct(values, canonical_zone)
    if source == "zip":
        return _zip_codes(values)
    return _map_distinct(values, lambda v: _state_table().get(v.strip().upper()))


# --- the look-ups ----------------------------------------------------------------------


def _map_distinct(values: pa.Array, lookup: Callable[[str], str | None]) -> np.ndarray:
    """``lookup`` of each distinct value (few of them: states, zone names), row by row."""
    encoded = pc.dictionary_encode(values)
    codes = _VOCABULARY.codes(lookup(v) for v in encoded.dictionary.to_pylist())
    return _spread(codes, encoded.indices)


def _spread(codes: np.ndarray, indices: pa.Array) -> np.ndarray:
    """``codes[indices]``, with 0 where an index is null."""
    at = np.asarray(pc.fill_null(indices, -1))
    return np.where(at >= 0, np.append(codes, 0)[at], 0).astype(np.int32)


def _zip_codes(values: pa.Array) -> np.ndarray:
    """The zone of each US ZIP (ZIP+4 too), by its first five digits.

    The five digits, read as a number, index the dense table of :func:`_zip_table`:
    one array look-up a row, where a hash look-up built its hash table of 42,000
    ZIPs again for every chunk.
    """
    offsets = string_bytes(values)[0]  # ZIPs are ASCII: bytes are characters
    lengths = offsets[1:] - offsets[:-1]
    digits, numbers = _as_numbers(pc.utf8_slice_codeunits(values, 0, 5), 5)
    shaped = np.isin(lengths, _ZIP_LENGTHS) & digits
    return np.where(shaped, _zip_table()[numbers], 0).astype(np.int32)


def _as_numbers(text: pa.Array, width: int) -> tuple[np.ndarray, np.ndarray]:
    """Which values are exactly ``width`` ASCII digits, and those values read as
    numbers (0 in the other rows), to index a dense table of ``10**width`` entries."""
    digits = np.asarray(
        pc.fill_null(
            pc.and_(pc.equal(pc.utf8_length(text), width), pc.ascii_is_decimal(text)), False
        )
    )
    numbers = np.zeros(len(text), dtype=np.int64)
    if digits.any():
        numbers[digits] = np.asarray(pc.cast(text.filter(pa.array(digits)), pa.int64()))
    return digits, numbers


#: The prefixes of one length: (length, the prefixes, their zone codes).
_PrefixTable = tuple[int, pa.Array, np.ndarray]
#: The digits a number is first grouped by: a NANP country code and area code.
_SHORT_PREFIX = 4


def _phone_codes(phones: list[pa.Array], open_rows: np.ndarray) -> np.ndarray | None:
    """The zones of each row's first valid phone, by the longest known prefix."""
    if not phones:
        return None
    first = phones[0] if len(phones) == 1 else pc.coalesce(*phones)
    if first.null_count == len(first):
        return None
    # Only the rows still open are looked up (the others are decided already).
    rows = np.flatnonzero(open_rows & ~np.asarray(first.is_null()))
    found = np.zeros(len(open_rows), dtype=np.int32)
    found[rows] = _prefix_codes(first.take(pa.array(rows)), _SHORT_PREFIX)
    return found


def _prefix_codes(numbers: pa.Array, digits: int) -> np.ndarray:
    """The zones of E.164 numbers, grouped by their first ``digits`` digits.

    The longest prefix of the table decides. Each group's zone is looked up once per
    process, in a dense table indexed by the group's digits read as a number (see
    :func:`_phone_groups`). The few groups that a longer prefix of the table splits
    (an area code whose exchanges lie in two zones) are looked up again by
    :func:`_longer_prefix_codes`.
    """
    codes, split_groups = _phone_groups(digits)
    # After the '+'. Valid E.164 numbers have 7 digits or more; a shorter or odd one
    # gets no zone.
    whole, at = _as_numbers(pc.utf8_slice_codeunits(numbers, 1, 1 + digits), digits)
    found = np.where(whole, codes[at], 0).astype(np.int32)
    rows = np.flatnonzero(whole & split_groups[at])
    if len(rows):
        deeper = _longer_prefix_codes(numbers.take(pa.array(rows)), digits)
        found[rows] = np.where(deeper > 0, deeper, found[rows])
    return found


@cache
def _phone_groups(digits: int) -> tuple[np.ndarray, np.ndarray]:
    """For every group of ``digits`` digits, read as a number: its zone code by the
    longest prefix of the table (0: none), and whether a longer prefix splits it."""
    by_prefix, refined, _ = _phone_tables()
    names = [f"{group:0{digits}d}" for group in range(10**digits)]
    codes = _VOCABULARY.codes(_longest_match(name, by_prefix) for name in names)
    split = np.array([name in refined for name in names], dtype=bool)
    return codes, split


def _longer_prefix_codes(numbers: pa.Array, digits: int) -> np.ndarray:
    """The zones by the table's prefixes longer than ``digits``, longest first.

    These numbers are few (their groups are split); each length is one hash look-up
    over all of them.
    """
    found = np.zeros(len(numbers), dtype=np.int32)
    for length, keys, codes in _phone_tables()[2]:
        if length <= digits:
            break
        prefix = pc.utf8_slice_codeunits(numbers, 1, 1 + length)  # after the '+'
        hit = _spread(codes, pc.index_in(prefix, value_set=keys))
        found = np.where(found > 0, found, hit)
    return found


def _longest_match(digits: str, by_prefix: Mapping[str, str]) -> str | None:
    for length in range(len(digits), 0, -1):
        zone = by_prefix.get(digits[:length])
        if zone is not None:
            return zone
    return None


def _joined(zones: Iterable[str]) -> str | None:
    known = sorted({z for z in (canonical_zone(z) for z in zones) if z is not None})
    return ZONE_SEPARATOR.join(known) or None


@cache
def _known_zones() -> dict[str, str]:
    return {name.lower(): name for name in available_timezones()}


@cache
def _zip_table() -> np.ndarray:
    """The zone code of every five-digit ZIP, indexed by the ZIP as a number (0: none).

    The ZIP -> zone table is kept on disk per ``zipcodes`` version:
    ``zipcodes.list_all()`` makes a dict of each of its 42,789 ZIPs, which takes
    seconds and 170 MB, and each flow run is a process of its own; the two columns
    we need, saved once in the cache folder, read back in milliseconds.
    """
    saved = _zip_zone_file(get_settings().cache_dir)
    five_digits, numbers = _as_numbers(saved["zip"].combine_chunks(), 5)
    zones = saved["zone"].combine_chunks().filter(pa.array(five_digits)).to_pylist()
    dense = np.zeros(100_000, dtype=np.int32)
    dense[numbers[five_digits]] = _VOCABULARY.codes(zones)
    return dense


def warm_zone_tables(cache_dir: Path) -> str:
    """Save the ZIP -> zone table in ``cache_dir`` now, unless it is there already, so
    that no import pays for it (``cctasks up`` calls it). Returns "built" or "kept"."""
    import zipcodes

    kept = (cache_dir / _zip_zone_name(zipcodes.__version__)).exists()
    _zip_zone_file(cache_dir)
    return "kept" if kept else "built"


def _zip_zone_name(version: str) -> str:
    return f"zip-zones-{version}.arrow"


def _zip_zone_file(cache_dir: Path) -> pa.Table:
    """The saved table of ZIPs and their zones, built from ``zipcodes`` if missing."""
    import zipcodes

    path = cache_dir / _zip_zone_name(zipcodes.__version__)
    try:
        return feather.read_table(path)
    except (OSError, KeyError, pa.ArrowInvalid):
        pass  # not saved yet (or unreadable): built from the package below
    table: dict[str, str] = {}
    for entry in zipcodes.list_all():  # type: ignore[no-untyped-call]
        zone = _joined([entry.get("timezone") or ""])
        if zone is not None:
            table[str(entry["zip_code"])] = zone
    built = pa.table({
        "zip": pa.array(list(table), pa.string()),
        "zone": pa.array(list(table.values()), pa.string()),
    })
    _save_atomically(built, path)
    return built


def _save_atomically(table: pa.Table, path: Path) -> None:
    """Write ``table`` to ``path`` under a temporary name, then rename it into place.

    Two runs building it at once each write their own file; the last rename wins
    and a reader never sees half a file. A cache that cannot be written is skipped.
    """
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path.parent, suffix=".part", delete=False) as tmp:
            feather.write_feather(table, tmp.name, compression="uncompressed")
        os.replace(tmp.name, path)
    except OSError:
        return


@cache
def _phone_tables() -> tuple[dict[str, str], frozenset[str], list[_PrefixTable]]:
    """phonenumbers' prefix -> zones table; the prefixes a longer one refines; and
    the table by prefix length, longest first, as Arrow arrays."""
    from phonenumbers import COUNTRY_CODE_TO_REGION_CODE
    from phonenumbers.tzdata import TIMEZONE_DATA

    table: dict[str, str] = {}
    for prefix, zones in TIMEZONE_DATA.items():
        # A country code alone (``1``: every NANP zone, 42 of them) is no location: a
        # number that only matches it is left to the next source.
        if int(prefix) in COUNTRY_CODE_TO_REGION_CODE and len(zones) > 1:
            continue
        joined = _joined(zones)  # drops "Etc/Unknown", which is no zone
        if joined is not None:
            table[prefix] = joined
    refined = frozenset(p[:length] for p in table for length in range(1, len(p)))
    by_length: dict[int, dict[str, str]] = {}
    for prefix, joined in table.items():
        by_length.setdefault(len(prefix), {})[prefix] = joined
    arrays = [
        (length, pa.array(list(t), pa.string()), _VOCABULARY.codes(t.values()))
        for length, t in sorted(by_length.items(), reverse=True)
    ]
    return table, refined, arrays


@cache
def _state_table() -> dict[str, str]:
    import us

    table: dict[str, str] = {}
    for state in us.states.STATES_AND_TERRITORIES + [us.states.DC]:
        zones = _joined(state.time_zones or [])
        if zones is not None:
            table[state.abbr.upper()] = zones
            table[state.name.upper()] = zones
    return table
